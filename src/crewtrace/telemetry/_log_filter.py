"""Keep a dead collector from flooding the application's log.

With the backend down, the SDK and the OTLP exporters warn on every retry and
every failed batch (and the batch processor on every span it drops). The
filter lets each distinct warning through once per interval and says how many
repeats it held back, so the problem is visible once, not per span.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

# Where the SDK and exporters log export trouble (module loggers: filters do not inherit).
SDK_EXPORT_LOGGERS = (
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk.metrics._internal.export",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
)


class RepeatFilter(logging.Filter):
    """Passes each (logger, message template) at most once per ``interval`` seconds."""

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[tuple[str, object], float] = {}
        self._held: dict[tuple[str, object], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {self._interval:.0f} s]"
        return True


def install(interval: float = 60.0) -> Callable[[], None]:
    """Attach one filter to the SDK's export loggers; returns the function that detaches it."""
    repeat_filter = RepeatFilter(interval)
    loggers = [logging.getLogger(name) for name in SDK_EXPORT_LOGGERS]
    for logger in loggers:
        logger.addFilter(repeat_filter)

    def uninstall() -> None:
        for logger in loggers:
            logger.removeFilter(repeat_filter)

    return uninstall
