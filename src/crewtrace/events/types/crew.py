"""Events of one crew run (``kickoff``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from crewtrace.events.base import BaseEvent, FailureMixin, TokenUsage

__all__ = ["CrewKickoffCompletedEvent", "CrewKickoffFailedEvent", "CrewKickoffStartedEvent"]


class CrewKickoffStartedEvent(BaseEvent):
    type: Literal["crew_kickoff_started"] = "crew_kickoff_started"
    inputs: dict[str, Any] = Field(default_factory=dict)


class CrewKickoffCompletedEvent(BaseEvent):
    type: Literal["crew_kickoff_completed"] = "crew_kickoff_completed"
    output: str
    token_usage: TokenUsage
    duration_s: float


class CrewKickoffFailedEvent(BaseEvent, FailureMixin):
    type: Literal["crew_kickoff_failed"] = "crew_kickoff_failed"
    duration_s: float
