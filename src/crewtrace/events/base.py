"""The base every event shares: identity, time, and who it belongs to.

Events are plain data (no live Agent/Task/Crew objects) so a listener in
another layer, or another process, can read them without importing the
orchestration code.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, computed_field

__all__ = ["BaseEvent", "FailureMixin", "TokenUsage"]


def _new_event_id() -> str:
    return f"{random.getrandbits(64):016x}"  # unique enough to tell events apart, and no syscall per chunk


class BaseEvent(BaseModel):
    """Fields every event carries.

    The attribution fields (``run_id`` ... ``agent_role``) are filled whenever
    the event happens inside a crew run, task or agent execution; outside one
    they are ``None``. They are the keys of :class:`~crewtrace.events.ExecutionScope`,
    which emitters spread into events (``Event(**scope, ...)``); a test keeps the two lists equal.
    """

    model_config = ConfigDict(extra="forbid")

    type: str
    event_id: str = Field(default_factory=_new_event_id)
    timestamp_ns: int = Field(default_factory=time.time_ns, description="Wall clock, ns since the epoch.")
    run_id: str | None = None
    crew_name: str | None = None
    task_id: str | None = None
    task_name: str | None = None
    agent_id: str | None = None
    agent_role: str | None = Field(default=None, description="The role as written (its template), never filled in.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ns / 1e9, tz=timezone.utc)


class TokenUsage(BaseModel):
    """Token counts as the provider reported them in the stream."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class FailureMixin(BaseModel):
    """What failure events add: the message and a short, low-cardinality cause."""

    error: str
    error_type: str = Field(description="Short cause, e.g. 'RateLimitError', 'Timeout', 'cancelled'.")
