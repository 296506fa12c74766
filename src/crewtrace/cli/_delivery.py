"""Keep exporter complaints out of the demo's live output, and say once, at the end, what went wrong.

With no collector at ``--otlp-endpoint`` the SDK's exporters log a warning per retry from their
background threads; printed as they happen they land inside the streamed answer. The CLI owns its
process, so while it runs it holds these records and, at the end, either prints one line about the
endpoint or replays what it held.
"""

from __future__ import annotations

import logging
import socket
import sys
from types import TracebackType
from urllib.parse import urlsplit

from crewtrace.cli.stack import compose_up_command

__all__ = ["HeldTelemetryLogs", "nothing_listens_at", "undelivered_message"]

_HELD_LOGGERS = ("opentelemetry", "crewtrace.telemetry")
_EXPORTER_LOGGERS = "opentelemetry.exporter"


def nothing_listens_at(endpoint: str, timeout: float = 0.5) -> bool:
    """True if a TCP connection to the endpoint's host and port is refused (or cannot be made in time).

    Lets the demo skip waiting on exporters that retry a dead collector with backoff.
    """
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout):
            return False
    except OSError:
        return True


def undelivered_message(endpoint: str) -> str:
    return (
        f"telemetry could not be delivered to {endpoint}: no collector answered there. "
        f"Start the local stack with: crewtrace stack crewtrace-stack && {compose_up_command('crewtrace-stack')}"
    )


class _Holder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self.closed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.closed:
            self.records.append(record)


class HeldTelemetryLogs:
    """Holds WARNING+ records of the SDK's and crewtrace.telemetry's loggers from entry on.

    Exporter threads can outlive a bounded shutdown and go on retrying: after exit their records
    are dropped, not printed, for the rest of the process.
    """

    def __init__(self) -> None:
        self._holder = _Holder()

    def __enter__(self) -> HeldTelemetryLogs:
        for name in _HELD_LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(self._holder)
            logger.propagate = False
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._holder.closed = True

    @property
    def export_failed(self) -> bool:
        return any(record.name.startswith(_EXPORTER_LOGGERS) for record in self._holder.records)

    def replay(self) -> None:
        """Print what was held (each distinct message once), after the demo's own output."""
        seen: set[str] = set()
        for record in self._holder.records:
            line = f"{record.levelname.lower()}: {' '.join(record.getMessage().split())}"
            if line not in seen:
                seen.add(line)
                print(line, file=sys.stderr)
