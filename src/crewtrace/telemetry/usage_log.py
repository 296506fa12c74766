"""One structured record per LLM call, through Python ``logging``.

Records go to the ``crewtrace.usage`` logger with the fields in
``record.crewtrace_usage``, so any logging handler can collect them;
:class:`JsonLinesFormatter` writes just those fields as one JSON object per
line. No prompt or completion text is ever part of a record.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from crewtrace.events import BaseEventListener, EventBus, LLMCallCompletedEvent, LLMCallFailedEvent
from crewtrace.telemetry.names import ATTRIBUTION, USAGE_LOGGER

__all__ = ["JsonLinesFormatter", "UsageLog"]

_logger = logging.getLogger(USAGE_LOGGER)
_FIELD = "crewtrace_usage"


class UsageLog(BaseEventListener):
    """Logs every finished LLM call (completed or failed) to ``crewtrace.usage`` at INFO."""

    def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
        crewtrace_event_bus.register_handler(LLMCallCompletedEvent, self._on_end)
        crewtrace_event_bus.register_handler(LLMCallFailedEvent, self._on_end)

    def _on_end(self, source: Any, event: LLMCallCompletedEvent | LLMCallFailedEvent) -> None:
        if not _logger.isEnabledFor(logging.INFO):
            return
        failed = isinstance(event, LLMCallFailedEvent)
        completed = event if isinstance(event, LLMCallCompletedEvent) else None
        usage = completed.usage if completed else None
        record = {
            "timestamp": event.timestamp.isoformat(),
            "call_id": event.call_id,
            **{key.usage_key: getattr(event, key.field) for key in ATTRIBUTION},
            "model": event.model,
            "provider": event.provider,
            "input_tokens": usage.input_tokens if usage else None,
            "output_tokens": usage.output_tokens if usage else None,
            "cost_usd": completed.cost_usd if completed else None,
            "duration_s": round(event.duration_s, 6),
            "time_to_first_chunk_s": event.time_to_first_chunk_s,
            "chunk_count": event.chunk_count,
            "outcome": "error" if failed else "ok",
            "error_type": event.error_type if isinstance(event, LLMCallFailedEvent) else None,
        }
        _logger.info(
            "llm call %s agent=%s task=%s model=%s tokens=%s/%s duration=%.3fs outcome=%s",
            event.call_id,
            event.agent_role,
            event.task_name,
            event.model,
            record["input_tokens"],
            record["output_tokens"],
            event.duration_s,
            record["outcome"],
            extra={_FIELD: record},
        )


class JsonLinesFormatter(logging.Formatter):
    """Formats usage records as JSON lines (other records as a JSON message)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, _FIELD, None)
        return json.dumps(fields if fields is not None else {"message": record.getMessage()}, default=str)
