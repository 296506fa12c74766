"""Real OTLP receivers (gRPC and HTTP/protobuf) on 127.0.0.1.

Tests point the SDK's real exporters at these, so what they assert on is what a
collector would receive: decoded spans, metric points and log records.
"""

from __future__ import annotations

import abc
import gzip
import threading
import time
import zlib
from collections.abc import Callable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from .otlp_decode import (
    LogsRequest,
    MetricsRequest,
    ReceivedEvent,
    ReceivedLog,
    ReceivedSpan,
    TraceRequest,
    decode_logs,
    decode_metric_names,
    decode_metric_points,
    decode_spans,
)

__all__ = ["OTLPGrpcReceiver", "OTLPHttpReceiver", "ReceivedEvent", "ReceivedLog", "ReceivedSpan", "SpanCheck"]

SpanCheck = int | Callable[[list[ReceivedSpan]], bool]
_R = TypeVar("_R", bound="_Receiver")
_T = TypeVar("_T")


class _Receiver(abc.ABC):
    """Storage and queries shared by both transports."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._traces: list[TraceRequest] = []
        self._metrics: list[MetricsRequest] = []
        self._logs: list[LogsRequest] = []

    @abc.abstractmethod
    def start(self: _R) -> _R:
        """Bind a random free port and serve in the background."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop serving; stored data stays readable."""

    def __enter__(self: _R) -> _R:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _store(self, request: Message) -> None:
        with self._cond:
            if isinstance(request, TraceRequest):
                self._traces.append(request)
            elif isinstance(request, MetricsRequest):
                self._metrics.append(request)
            else:
                self._logs.append(request)
            self._cond.notify_all()

    @property
    def trace_requests(self) -> list[TraceRequest]:
        with self._cond:
            return list(self._traces)

    @property
    def metric_requests(self) -> list[MetricsRequest]:
        with self._cond:
            return list(self._metrics)

    @property
    def log_requests(self) -> list[LogsRequest]:
        with self._cond:
            return list(self._logs)

    def clear(self) -> None:
        """Forget everything received so far (e.g. between phases of one test)."""
        with self._cond:
            self._traces.clear()
            self._metrics.clear()
            self._logs.clear()

    def spans(self) -> list[ReceivedSpan]:
        """All spans received, in export order."""
        return [s for r in self.trace_requests for s in decode_spans(r)]

    def metric_names(self) -> set[str]:
        return {n for r in self.metric_requests for n in decode_metric_names(r)}

    def metric_points(self, name: str) -> list[dict[str, Any]]:
        """Every data point of metric `name` across exports, oldest first.

        Always: type, unit, attributes, time_unix_nano, exemplars (value, trace_id,
        span_id, attributes, time_unix_nano).  gauge/sum: value (+ is_monotonic);
        histogram: count, sum, bucket_counts, explicit_bounds, min, max.
        Cumulative metrics are re-exported, so the newest point is the total.
        """
        return [p for r in self.metric_requests for p in decode_metric_points(r, name)]

    def log_records(self) -> list[ReceivedLog]:
        return [rec for r in self.log_requests for rec in decode_logs(r)]

    def wait_for_spans(self, check: SpanCheck, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Block until `check` (a minimum count, or a predicate on all spans) holds; return the spans."""

        def ready() -> list[ReceivedSpan] | None:
            spans = self.spans()
            ok = len(spans) >= check if isinstance(check, int) else check(spans)
            return spans if ok else None

        return self._wait(ready, timeout, lambda: f"spans not as expected; got {[s.name for s in self.spans()]}")

    def _wait(self, ready: Callable[[], _T | None], timeout: float, describe: Callable[[], str]) -> _T:
        """Re-check `ready` on every export until it returns non-None or `timeout` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (result := ready()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"after {timeout}s: {describe()}")
                self._cond.wait(remaining)
            return result


class _TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: _Receiver) -> None:
        self._receiver = receiver

    def Export(self, request: TraceRequest, context: grpc.ServicerContext) -> Message:
        self._receiver._store(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: _Receiver) -> None:
        self._receiver = receiver

    def Export(self, request: MetricsRequest, context: grpc.ServicerContext) -> Message:
        self._receiver._store(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _LogsServicer(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: _Receiver) -> None:
        self._receiver = receiver

    def Export(self, request: LogsRequest, context: grpc.ServicerContext) -> Message:
        self._receiver._store(request)
        return logs_service_pb2.ExportLogsServiceResponse()


class OTLPGrpcReceiver(_Receiver):
    """OTLP/gRPC collector stand-in; give `.endpoint` to the exporter with insecure=True."""

    def __init__(self) -> None:
        super().__init__()
        self._server: grpc.Server | None = None
        self.port = 0

    def start(self) -> OTLPGrpcReceiver:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceServicer(self), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsServicer(self), server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsServicer(self), server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


_HTTP_ROUTES: dict[str, tuple[type[Message], type[Message]]] = {
    "/v1/traces": (TraceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "/v1/metrics": (MetricsRequest, metrics_service_pb2.ExportMetricsServiceResponse),
    "/v1/logs": (LogsRequest, logs_service_pb2.ExportLogsServiceResponse),
}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, receiver: OTLPHttpReceiver) -> None:
        super().__init__(("127.0.0.1", 0), _OTLPHandler)
        self.receiver = receiver


class _OTLPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        route = _HTTP_ROUTES.get(self.path.split("?")[0])
        if route is None:
            self._reply(404, b"", "text/plain")
            return
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        request_type, response_type = route
        request = request_type()
        request.ParseFromString(raw)
        self.server.receiver._store(request)
        self._reply(200, response_type().SerializeToString(), "application/x-protobuf")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class OTLPHttpReceiver(_Receiver):
    """OTLP/HTTP (protobuf) collector stand-in.

    `.endpoint` is the base URL (what OTEL_EXPORTER_OTLP_ENDPOINT takes); the Python
    exporters' `endpoint=` argument wants the full URL: use `.traces_url` etc.
    """

    def __init__(self) -> None:
        super().__init__()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> OTLPHttpReceiver:
        self._httpd = _HTTPServer(self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="otlp-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_url(self) -> str:
        return f"{self.endpoint}/v1/traces"

    @property
    def metrics_url(self) -> str:
        return f"{self.endpoint}/v1/metrics"
