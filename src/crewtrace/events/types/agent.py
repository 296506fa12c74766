"""Events of one agent executing one task."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from crewtrace.events.base import BaseEvent, FailureMixin

__all__ = ["AgentExecutionCompletedEvent", "AgentExecutionErrorEvent", "AgentExecutionStartedEvent"]


class AgentExecutionStartedEvent(BaseEvent):
    """``agent_role`` is the role as written; ``role`` and ``goal`` are filled in (content)."""

    type: Literal["agent_execution_started"] = "agent_execution_started"
    role: str
    goal: str
    model: str | None = Field(default=None, description="The agent's model, as its provider names it.")
    provider: str | None = Field(default=None, description="The agent's model provider, e.g. 'openai'.")


class AgentExecutionCompletedEvent(BaseEvent):
    type: Literal["agent_execution_completed"] = "agent_execution_completed"
    output: str
    duration_s: float


class AgentExecutionErrorEvent(BaseEvent, FailureMixin):
    type: Literal["agent_execution_error"] = "agent_execution_error"
    duration_s: float
