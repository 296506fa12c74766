"""The opt-in ``gen_ai.client.inference.operation.details`` event: one per call, through the Logs API.

Emitted when the capture mode asks for events (``EVENT_ONLY``, ``SPAN_AND_EVENT``) or
``OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT=true`` does; it carries the call's request and
response attributes, and its messages only under a mode with events. Tied to the chat
span (its trace and span ids), so a backend can join them; independent of the span's
sampling.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry._logs import LoggerProvider, LogRecord, get_logger
from opentelemetry.trace import Span
from opentelemetry.util.genai.types import ContentCapturingMode

from crewtrace._version import __version__
from crewtrace.telemetry import _settings, names
from crewtrace.telemetry._attributes import defined

__all__ = ["DetailsEvents"]

_CONTENT_MODES = frozenset({ContentCapturingMode.EVENT_ONLY, ContentCapturingMode.SPAN_AND_EVENT})


class DetailsEvents:
    """Emits each call's details event, if asked to (``enabled``); the bridge keeps what it needs per call."""

    def __init__(self, mode: ContentCapturingMode, logger_provider: LoggerProvider | None, scope: str) -> None:
        self.enabled = _settings.details_events(mode)
        self.content = self.enabled and mode in _CONTENT_MODES
        """Whether the events carry the call's messages."""
        self._logger = get_logger(scope, __version__, logger_provider=logger_provider)

    def emit(self, span: Span, attributes: dict[str, Any], timestamp_ns: int) -> None:
        """One call's event; ``attributes`` are its span's, with its messages as structured values."""
        self._logger.emit(
            LogRecord(
                timestamp=timestamp_ns,
                context=trace.set_span_in_context(span),
                event_name=names.INFERENCE_DETAILS_EVENT,
                attributes=defined(attributes),
            )
        )
