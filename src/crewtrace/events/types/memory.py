"""Events of one save into a memory store (CrewAI saves in the background, after the agent's work).

A save can outlive the agent and the task it saves for; it keeps their attribution, and the LLM
calls that analyse what to save run inside it (``step_id``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from crewtrace.events.base import BaseEvent, FailureMixin

__all__ = ["MemorySaveCompletedEvent", "MemorySaveFailedEvent", "MemorySaveStartedEvent"]


class MemorySaveStartedEvent(BaseEvent):
    type: Literal["memory_save_started"] = "memory_save_started"
    data_source_id: str | None = Field(default=None, description="Which store: a memory scope.")


class MemorySaveCompletedEvent(BaseEvent):
    type: Literal["memory_save_completed"] = "memory_save_completed"
    duration_s: float


class MemorySaveFailedEvent(BaseEvent, FailureMixin):
    type: Literal["memory_save_failed"] = "memory_save_failed"
    duration_s: float
