"""Events of one look-up in a memory or a knowledge store (the GenAI conventions' ``retrieval``).

The step's ``step_id`` is on its events and on the LLM calls it makes (a query rewrite, a
memory's analysis), which run inside it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from crewtrace.events.base import BaseEvent, FailureMixin

__all__ = ["RetrievalCompletedEvent", "RetrievalFailedEvent", "RetrievalStartedEvent"]


class RetrievalStartedEvent(BaseEvent):
    type: Literal["retrieval_started"] = "retrieval_started"
    data_source: Literal["memory", "knowledge"]
    data_source_id: str | None = Field(default=None, description="Which store: a memory scope, a collection.")
    query: str = Field(default="", description="What was looked up (content).")
    limit: int | None = None


class RetrievalCompletedEvent(BaseEvent):
    type: Literal["retrieval_completed"] = "retrieval_completed"
    duration_s: float
    result_count: int | None = Field(default=None, description="How many results came back, where the store says.")


class RetrievalFailedEvent(BaseEvent, FailureMixin):
    type: Literal["retrieval_failed"] = "retrieval_failed"
    duration_s: float
