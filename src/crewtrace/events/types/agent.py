"""Events of one agent executing one task."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from crewtrace.events.base import BaseEvent, FailureMixin

__all__ = ["AgentExecutionCompletedEvent", "AgentExecutionErrorEvent", "AgentExecutionStartedEvent"]


class AgentExecutionStartedEvent(BaseEvent):
    """``agent_role`` is the role as written; ``role`` and ``goal`` are filled in (content).

    An agent that another agent's tool started (CrewAI's delegation to a coworker) names that tool
    call: ``parent_tool_call_id``, with the delegating agent in ``parent_agent_id``. Its ``step_id``
    is the step it runs in, if any (its own events run in no step until one starts).
    """

    type: Literal["agent_execution_started"] = "agent_execution_started"
    role: str
    goal: str
    model: str | None = Field(default=None, description="The agent's model, as its provider names it.")
    provider: str | None = Field(default=None, description="The agent's model provider, e.g. 'openai'.")
    parent_agent_id: str | None = None
    parent_tool_call_id: str | None = None


class AgentExecutionCompletedEvent(BaseEvent):
    type: Literal["agent_execution_completed"] = "agent_execution_completed"
    output: str
    duration_s: float


class AgentExecutionErrorEvent(BaseEvent, FailureMixin):
    type: Literal["agent_execution_error"] = "agent_execution_error"
    duration_s: float
