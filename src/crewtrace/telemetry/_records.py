"""What the bridge keeps of an open span, whatever its kind, and how one ends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import Span
from opentelemetry.util.genai.invocation import InferenceData

from crewtrace.events import BaseEvent
from crewtrace.telemetry._chunks import ChunkTimeline

__all__ = ["Ending", "OpenSpan"]


@dataclass(frozen=True, slots=True)
class Ending:
    """How an open span ends: its ending event, or the bridge closing first (``event`` is None)."""

    end_ns: int
    duration_s: float
    error_type: str | None = None
    message: str = ""
    event: BaseEvent | None = None


@dataclass(slots=True)
class OpenSpan:
    """One open span, whatever its kind, between its start and its end."""

    span: Span
    name: str
    start_ns: int
    finish: Callable[[OpenSpan, Ending], None] | None = None
    """The kind's hook, run as the span ends (:class:`~crewtrace.telemetry._finish.FinishHooks`)."""
    metric_attributes: dict[str, Any] = field(default_factory=dict)
    timeline: ChunkTimeline | None = None
    """A streamed call's chunks."""
    inference: InferenceData | None = None
    """A call's: what nested GenAI instrumentations published during its request."""
    details: dict[str, Any] | None = None
    """A call's details event so far (with the details events on)."""
