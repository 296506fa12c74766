"""Events of one task's execution within a run."""

from __future__ import annotations

from typing import Literal

from crewtrace.events.base import BaseEvent, FailureMixin

__all__ = ["TaskCompletedEvent", "TaskFailedEvent", "TaskStartedEvent"]


class TaskStartedEvent(BaseEvent):
    type: Literal["task_started"] = "task_started"
    description: str
    expected_output: str


class TaskCompletedEvent(BaseEvent):
    type: Literal["task_completed"] = "task_completed"
    output: str
    duration_s: float


class TaskFailedEvent(BaseEvent, FailureMixin):
    type: Literal["task_failed"] = "task_failed"
    duration_s: float
