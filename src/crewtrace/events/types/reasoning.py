"""Events of one reasoning step: an agent planning its work before it starts (CrewAI's ``reasoning=True``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from crewtrace.events.base import BaseEvent, FailureMixin

__all__ = ["ReasoningCompletedEvent", "ReasoningFailedEvent", "ReasoningStartedEvent"]


class ReasoningStartedEvent(BaseEvent):
    type: Literal["reasoning_started"] = "reasoning_started"
    attempt: int = Field(default=1, description="1 for the first plan, more for each refinement.")


class ReasoningCompletedEvent(BaseEvent):
    type: Literal["reasoning_completed"] = "reasoning_completed"
    duration_s: float
    attempt: int = 1
    ready: bool = Field(default=True, description="Whether the agent judged its plan ready to execute.")
    plan: str = Field(default="", description="The plan (content).")


class ReasoningFailedEvent(BaseEvent, FailureMixin):
    type: Literal["reasoning_failed"] = "reasoning_failed"
    duration_s: float
