"""Events of one tool call an agent makes on the model's request."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from crewtrace.events.base import BaseEvent, FailureMixin

__all__ = ["ToolUsageErrorEvent", "ToolUsageEvent", "ToolUsageFinishedEvent", "ToolUsageStartedEvent"]


class ToolUsageEvent(BaseEvent):
    """Base of the tool events; ``arguments`` is the JSON text the model sent (content).

    ``tool_name`` is the name the model asked for. When it is not one of the agent's
    tools (``declared`` is False), the model made it up: it is content (any length, any
    characters), which telemetry records only with content capture on.
    """

    tool_name: str
    declared: bool = Field(description="Whether tool_name is one of the tools the agent was given.")
    tool_call_id: str
    arguments: str
    iteration: int = Field(description="Which round of the agent's tool loop, from 0.")
    tool_type: Literal["function", "extension", "datastore"] = Field(
        default="function",
        description="The GenAI conventions' tool type: ``extension`` for a tool another process serves (MCP).",
    )


class ToolUsageStartedEvent(ToolUsageEvent):
    type: Literal["tool_usage_started"] = "tool_usage_started"


class ToolUsageFinishedEvent(ToolUsageEvent):
    type: Literal["tool_usage_finished"] = "tool_usage_finished"
    output: str
    duration_s: float


class ToolUsageErrorEvent(ToolUsageEvent, FailureMixin):
    """The call could not run or failed; the error went back to the model as the tool's result."""

    type: Literal["tool_usage_error"] = "tool_usage_error"
    duration_s: float
