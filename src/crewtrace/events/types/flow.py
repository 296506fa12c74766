"""Events of one flow run (CrewAI's ``Flow.kickoff``) and of each of its method executions.

A flow run's events carry ``flow_run_id`` (one per kickoff) and ``flow_name``; a method's also
``flow_method``. Runs, agents and LLM calls started inside a method carry all three.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from crewtrace.events.base import BaseEvent, FailureMixin

__all__ = [
    "FlowCompletedEvent",
    "FlowFailedEvent",
    "FlowMethodCompletedEvent",
    "FlowMethodFailedEvent",
    "FlowMethodPausedEvent",
    "FlowMethodStartedEvent",
    "FlowPausedEvent",
    "FlowStartedEvent",
]

MethodKind = Literal["start", "listen", "router"]


class FlowStartedEvent(BaseEvent):
    type: Literal["flow_started"] = "flow_started"
    inputs: dict[str, Any] = Field(default_factory=dict, description="The kickoff inputs (content).")


class FlowCompletedEvent(BaseEvent):
    type: Literal["flow_completed"] = "flow_completed"
    duration_s: float


class FlowFailedEvent(BaseEvent, FailureMixin):
    type: Literal["flow_failed"] = "flow_failed"
    duration_s: float


class FlowPausedEvent(BaseEvent):
    """The run stopped to wait for human feedback; ``flow_method`` is the method waiting.

    Resuming it (``Flow.from_pending(...).resume()``) is a new flow run.
    """

    type: Literal["flow_paused"] = "flow_paused"
    duration_s: float


class FlowMethodStartedEvent(BaseEvent):
    type: Literal["flow_method_started"] = "flow_method_started"
    method_kind: MethodKind = Field(description="``start``, ``listen`` or ``router`` (the method's decorator).")


class FlowMethodCompletedEvent(BaseEvent):
    type: Literal["flow_method_completed"] = "flow_method_completed"
    duration_s: float
    route: str | None = Field(default=None, description="For a router: the route it chose, as a label.")


class FlowMethodFailedEvent(BaseEvent, FailureMixin):
    type: Literal["flow_method_failed"] = "flow_method_failed"
    duration_s: float


class FlowMethodPausedEvent(BaseEvent):
    """The method stopped to wait for human feedback (its flow run pauses with it)."""

    type: Literal["flow_method_paused"] = "flow_method_paused"
    duration_s: float
