"""An OTLP receiver on this machine for ``crewtrace watch``: gRPC and HTTP at once, spans handed on as decoded.

gRPC uses grpcio with opentelemetry-proto's generated services; HTTP uses the standard library's
server with the same messages, as protobuf (``application/x-protobuf``, what the exporters send) or
OTLP/JSON (``application/json``, hex ids), optionally gzip- or deflate-compressed. Metrics and logs
are accepted and counted, so an application exporting all three signals sees no errors; only
traces are used.
"""

from __future__ import annotations

import base64
import errno
import gzip
import json
import socket
import threading
import zlib
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from crewtrace.cli._errors import CommandFailed, UsageError
from crewtrace.cli.spans import SpanRecord, spans_from_otlp

__all__ = ["OTLPReceiver", "ReceivedCounts"]

SpanSink = Callable[[list[SpanRecord]], None]

_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # far above an SDK batch (512 spans); bounds what one request may cost


@dataclass(frozen=True)
class _Signal:
    """One OTLP signal: its name (what is counted), HTTP path, messages and gRPC service registration."""

    name: str
    path: str
    request: type[Message]
    response: type[Message]
    register: Callable[[Any, grpc.Server], None]


_TRACES = _Signal(
    "traces",
    "/v1/traces",
    trace_service_pb2.ExportTraceServiceRequest,
    trace_service_pb2.ExportTraceServiceResponse,
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server,
)
_SIGNALS = (
    _TRACES,
    _Signal(
        "metrics",
        "/v1/metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server,
    ),
    _Signal(
        "logs",
        "/v1/logs",
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server,
    ),
)
_BY_PATH = {signal.path: signal for signal in _SIGNALS}
# OTLP/JSON writes these ids as hex; protobuf's JSON mapping reads bytes as base64.
_HEX_IDS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


class ReceivedCounts:
    """Export requests received per signal (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.traces = 0
        self.spans = 0
        self.metrics = 0
        self.logs = 0

    def add(self, signal: str, spans: int = 0) -> None:
        with self._lock:
            setattr(self, signal, getattr(self, signal) + 1)
            self.spans += spans


class OTLPReceiver:
    """Listens for OTLP over gRPC and HTTP on ``host``; each trace export's spans go to ``sink``.

    ``start()`` raises :class:`CommandFailed` naming the option to change when a port is taken.
    """

    def __init__(self, sink: SpanSink, *, host: str, grpc_port: int, http_port: int) -> None:
        self.counts = ReceivedCounts()
        self._sink = sink
        self._host = host
        self._grpc_port = grpc_port
        self._http_port = http_port
        self._grpc: grpc.Server | None = None
        self._http: _HTTPServer | None = None
        self._http_thread: threading.Thread | None = None

    @property
    def grpc_address(self) -> str:
        return f"{_bracketed(self._host)}:{self._grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://{_bracketed(self._host)}:{self._http_port}"

    def accept(self, signal: _Signal, request: Message) -> None:
        """One export request, from either transport: traces go on as spans, the others are counted."""
        spans = spans_from_otlp(request) if signal is _TRACES else []
        self.counts.add(signal.name, len(spans))
        if spans:
            self._sink(spans)

    def start(self) -> OTLPReceiver:
        family = _family(self._host)
        _check_free(family, self._host, self._grpc_port, "--grpc-port")
        _check_free(family, self._host, self._http_port, "--http-port")
        try:
            self._http = _HTTPServer(self, family, (self._host, self._http_port))
        except OSError as exc:
            raise _port_error(exc, self._host, self._http_port, "--http-port") from None
        self._http_port = self._http.server_address[1]
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="crewtrace-watch-grpc"),
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES)],
        )
        for signal in _SIGNALS:
            signal.register(_Servicer(self, signal), server)
        try:
            self._grpc_port = server.add_insecure_port(self.grpc_address)
        except RuntimeError:  # taken between the check and the bind
            self._http.server_close()
            raise CommandFailed(_in_use(self._host, self._grpc_port, "--grpc-port")) from None
        server.start()
        self._grpc = server
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.2}, name="crewtrace-watch-http", daemon=True
        )
        self._http_thread.start()
        return self

    def stop(self, grace: float = 1.0) -> None:
        """Stop both servers; requests under way get ``grace`` seconds."""
        if self._grpc is not None:
            self._grpc.stop(grace).wait(grace + 1)
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._http_thread is not None:
            self._http_thread.join(grace + 1)
            self._http_thread = None


class _Servicer:
    """The ``Export`` method of every OTLP gRPC service: the request to the receiver, an empty response back."""

    def __init__(self, receiver: OTLPReceiver, signal: _Signal) -> None:
        self._receiver = receiver
        self._signal = signal

    def Export(self, request: Message, context: grpc.ServicerContext) -> Message:
        self._receiver.accept(self._signal, request)
        return self._signal.response()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, receiver: OTLPReceiver, family: socket.AddressFamily, address: tuple[str, int]) -> None:
        self.address_family = family
        self.receiver = receiver
        super().__init__(address, _OTLPHandler)


class _OTLPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a connection may stay silent; an idle client does not hold a thread forever
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not news: the traces they bring are."""

    def do_POST(self) -> None:
        signal = _BY_PATH.get(self.path.split("?")[0])
        if signal is None:
            self._reply(404, b"OTLP/HTTP takes /v1/traces, /v1/metrics and /v1/logs\n", "text/plain")
            return
        is_json = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower() == "application/json"
        try:
            body = self._body()
            if body is None:
                self._reply(413, b"request too large\n", "text/plain")
                self.close_connection = True
                return
            request = _decode(body, self.headers.get("Content-Encoding"), signal.request(), is_json)
        except (OSError, EOFError, ValueError, DecodeError, json_format.ParseError) as exc:
            self._reply(400, f"cannot decode the request: {type(exc).__name__}\n".encode(), "text/plain")
            return
        self.server.receiver.accept(signal, request)
        if is_json:
            self._reply(200, b"{}", "application/json")
        else:
            self._reply(200, signal.response().SerializeToString(), "application/x-protobuf")

    def _body(self) -> bytes | None:
        """The request body, sized or chunked; None when it is larger than any export should be."""
        if (self.headers.get("Transfer-Encoding") or "").strip().lower() != "chunked":
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length <= _MAX_MESSAGE_BYTES else None
        body = bytearray()
        while size := int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16):
            if len(body) + size > _MAX_MESSAGE_BYTES:
                return None
            body += self.rfile.read(size)
            self.rfile.readline(64)  # the CRLF after the chunk
        while self.rfile.readline(1024).strip():  # trailers, up to the blank line
            pass
        return bytes(body)

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _decode(raw: bytes, encoding: str | None, message: Message, is_json: bool) -> Message:
    encoding = (encoding or "").strip().lower()
    if encoding == "gzip":
        raw = gzip.decompress(raw)
    elif encoding == "deflate":
        raw = zlib.decompress(raw)
    if is_json:
        json_format.ParseDict(_base64_ids(json.loads(raw)), message, ignore_unknown_fields=True)
    else:
        message.ParseFromString(raw)
    return message


def _base64_ids(value: Any) -> Any:
    """OTLP/JSON's hex trace and span ids, rewritten as protobuf's JSON mapping reads bytes (base64)."""
    if isinstance(value, dict):
        return {
            key: _hex_to_base64(item) if key in _HEX_IDS and isinstance(item, str) else _base64_ids(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_base64_ids(item) for item in value]
    return value


def _hex_to_base64(text: str) -> str:
    return base64.b64encode(bytes.fromhex(text)).decode("ascii")


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: not an address this machine can listen on ({exc.strerror})") from None


def _check_free(family: socket.AddressFamily, host: str, port: int, option: str) -> None:
    """Bind and release the port first: grpc would print its own error lines and not name the option."""
    if port == 0:
        return
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is not "in use"
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise _port_error(exc, host, port, option) from None


def _port_error(exc: OSError, host: str, port: int, option: str) -> CommandFailed:
    if exc.errno == errno.EADDRINUSE:
        return CommandFailed(_in_use(host, port, option))
    return CommandFailed(f"{option} {port}: cannot listen on {_bracketed(host)}:{port}: {exc.strerror or exc}")


def _in_use(host: str, port: int, option: str) -> str:
    return (
        f"{option} {port}: {_bracketed(host)}:{port} is already in use (a collector, or another crewtrace watch?); "
        f"choose another port with {option} (0 picks a free one)"
    )


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
