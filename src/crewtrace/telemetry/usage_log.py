"""One structured record per LLM call, through Python ``logging``.

Records go to the ``crewtrace.usage`` logger with the fields in
``record.crewtrace_usage``, so any logging handler can collect them;
:class:`JsonLinesFormatter` writes just those fields as one JSON object per
line. No prompt or completion text is ever part of a record.

A usage log *file* is written by its own listener, not by a handler on that
logger: it gets the calls of its own bus only, whatever other telemetry the
process runs, and the application's logging levels (and console) are left as
the application set them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanContext

from crewtrace.events import BaseEventListener, EventBus, LLMCallCompletedEvent, LLMCallFailedEvent, LLMCallStartedEvent
from crewtrace.telemetry.names import ATTRIBUTION, USAGE_LOGGER

__all__ = ["JsonLinesFormatter", "UsageLog"]

_logger = logging.getLogger(USAGE_LOGGER)
_FIELD = "crewtrace_usage"


class UsageLog(BaseEventListener):
    """Logs every finished LLM call (completed or failed) to ``crewtrace.usage`` at INFO.

    Args:
        bus: the event bus to listen on; defaults to ``crewtrace_event_bus``.
        path: also write this bus's records to this file, one JSON line per call (its directory is
            created). Usage logs of the same file share it: each call on a bus is written once.
        spans: the chat span of a call by its id, while it is open (``OTelBridge.span_context`` of a
            bridge on the same bus, created before this log): records then carry ``trace_id`` and
            ``span_id``, to go from a log line to its trace.
    """

    def __init__(
        self,
        bus: EventBus | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        spans: Callable[[str], SpanContext | None] | None = None,
    ) -> None:
        self._spans = spans
        self._span_ids: dict[str, tuple[str, str]] = {}  # call id -> (trace id, span id), while the call runs
        self._file = None if path is None else _UsageFile.attach(Path(path), self)
        try:
            super().__init__(bus)
        except BaseException:
            if self._file is not None:
                self._file.detach(self)
            raise

    def close(self) -> None:
        """Stop listening and let go of the file (closed once no usage log writes to it)."""
        super().close()
        if self._file is not None:
            self._file.detach(self)
            self._file = None

    def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
        if self._spans is not None:
            crewtrace_event_bus.register_handler(LLMCallStartedEvent, self._on_start)
        crewtrace_event_bus.register_handler(LLMCallCompletedEvent, self._on_end)
        crewtrace_event_bus.register_handler(LLMCallFailedEvent, self._on_end)

    def _on_start(self, source: Any, event: LLMCallStartedEvent) -> None:
        context = self._spans(event.call_id) if self._spans is not None else None
        if context is not None and context.is_valid:
            self._span_ids[event.call_id] = (format(context.trace_id, "032x"), format(context.span_id, "016x"))

    def _on_end(self, source: Any, event: LLMCallCompletedEvent | LLMCallFailedEvent) -> None:
        trace_id, span_id = self._span_ids.pop(event.call_id, (None, None))
        if not _logger.isEnabledFor(logging.INFO) and self._file is None:
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
            "trace_id": trace_id,
            "span_id": span_id,
        }
        self._log(
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

    def _log(self, message: str, *args: object, extra: dict[str, Any]) -> None:
        if _logger.isEnabledFor(logging.INFO):
            _logger.info(message, *args, extra=extra, stacklevel=2)
        usage_file = self._file
        if usage_file is not None:
            usage_file.write(
                self, _logger.makeRecord(_logger.name, logging.INFO, "", 0, message, args, None, extra=extra)
            )


class _UsageFile:
    """One open usage file, shared by the usage logs that write to it; one line per call and bus."""

    def __init__(self, path: Path, key: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.key = key
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(JsonLinesFormatter())
        self.writers: tuple[UsageLog, ...] = ()  # replaced, never changed in place: read without the lock

    @classmethod
    def attach(cls, path: Path, writer: UsageLog) -> _UsageFile:
        key = path.resolve()
        with _files_lock:
            shared = _open_files.get(key)
            if shared is None:
                shared = _open_files[key] = cls(path, key)
            shared.writers = (*shared.writers, writer)
            return shared

    def detach(self, writer: UsageLog) -> None:
        with _files_lock:
            self.writers = tuple(w for w in self.writers if w is not writer)
            if not self.writers and _open_files.get(self.key) is self:
                del _open_files[self.key]
                self.handler.close()

    def write(self, writer: UsageLog, record: logging.LogRecord) -> None:
        # Two usage logs on one bus see the same calls: the first one writes them.
        if next((w for w in self.writers if w.bus is writer.bus), None) is writer:
            self.handler.handle(record)


_open_files: dict[Path, _UsageFile] = {}
_files_lock = threading.Lock()


class JsonLinesFormatter(logging.Formatter):
    """Formats usage records as JSON lines (other records as a JSON message)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, _FIELD, None)
        return json.dumps(fields if fields is not None else {"message": record.getMessage()}, default=str)
