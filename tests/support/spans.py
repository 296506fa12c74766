"""Counting spans through the SDK's own span-processor hooks: what was started, ended, and is still open."""

from __future__ import annotations

import threading

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor


class SpanCounter(SpanProcessor):
    """Spans started and ended on the provider it is added to; ``open`` is their difference."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0
        self._open: dict[int, str] = {}
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        with self._lock:
            self.started += 1
            self._open[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.ended += 1
            if span.context is not None:
                self._open.pop(span.context.span_id, None)

    @property
    def open(self) -> int:
        return self.started - self.ended

    def open_names(self) -> list[str]:
        """Names of the spans started and not ended yet, sorted."""
        with self._lock:
            return sorted(self._open.values())
