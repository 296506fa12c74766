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
from crewtrace.cli.terminal import visible

__all__ = ["HeldTelemetryLogs", "jaeger_trace_url", "nothing_listens_at", "undelivered_message"]

_HELD_LOGGERS = ("opentelemetry", "crewtrace.telemetry")
_EXPORTER_LOGGERS = "opentelemetry.exporter"
_JAEGER_UI_PORT = 16686  # the stack's Jaeger (docker-compose.yml), next to its collector


def nothing_listens_at(endpoint: str, timeout: float = 0.5) -> bool:
    """True if a TCP connection to the endpoint's host and port is refused (or cannot be made in time).

    Lets the demo skip waiting on exporters that retry a dead collector with backoff.
    """
    try:
        with _connect(endpoint, timeout):
            return False
    except OSError:
        return True


def speaks_http1(endpoint: str, timeout: float = 0.5) -> bool:
    """Whether the endpoint answers an HTTP/1.1 request as HTTP/1.1 (OTLP/HTTP does; gRPC, HTTP/2 only, does not)."""
    try:
        with _connect(endpoint, timeout) as connection:
            connection.sendall(b"GET / HTTP/1.1\r\nHost: crewtrace\r\nConnection: close\r\n\r\n")
            return connection.recv(8).startswith(b"HTTP/1.")
    except OSError:
        return False


def _connect(endpoint: str, timeout: float) -> socket.socket:
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return socket.create_connection((parts.hostname or "localhost", port), timeout=timeout)


def undelivered_message(endpoint: str, protocol: str, *, listening: bool) -> str:
    """One line on what to change when telemetry did not reach ``endpoint``.

    A collector that answers in the other protocol (OTLP/HTTP on 4318, gRPC on 4317) is the usual
    reason when something listens; nothing listening means no collector runs there.
    """
    if not listening:
        return (
            f"telemetry could not be delivered to {endpoint}: no collector answered there. Start the local "
            f"stack with: crewtrace stack crewtrace-stack && {compose_up_command('crewtrace-stack')}"
        )
    http = speaks_http1(endpoint)
    if protocol == "grpc" and http:
        return (
            f"telemetry could not be delivered to {endpoint}: it answers OTLP/HTTP, not gRPC "
            "(4318 is OTLP/HTTP's port, 4317 gRPC's): add --otlp-protocol http/protobuf, or use port 4317"
        )
    if protocol == "http/protobuf" and not http:
        return (
            f"telemetry could not be delivered to {endpoint}: it does not answer HTTP/1.1, as an OTLP/gRPC "
            "port does (4317 is gRPC's, 4318 OTLP/HTTP's): use --otlp-protocol grpc, or port 4318"
        )
    return f"telemetry could not be delivered to {endpoint} over {protocol}: the collector did not take it"


def jaeger_trace_url(endpoint: str, trace_id: str) -> str:
    """Where Jaeger shows the trace, if it runs beside the collector at ``endpoint`` (as in ``crewtrace stack``)."""
    host = urlsplit(endpoint).hostname or "localhost"
    return f"http://{f'[{host}]' if ':' in host else host}:{_JAEGER_UI_PORT}/trace/{trace_id}"


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
            line = f"{record.levelname.lower()}: {visible(' '.join(record.getMessage().split()))}"
            if line not in seen:
                seen.add(line)
                print(line, file=sys.stderr)
