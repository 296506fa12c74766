"""The ``/metrics`` endpoint: crewtrace's OpenTelemetry metrics for Prometheus, with exemplars.

A :class:`PrometheusReader` on the meter provider, a :class:`PrometheusCollector`
over it in a prometheus_client registry, and prometheus_client's HTTP server for
that registry. Names follow the OpenTelemetry-to-Prometheus rules, so dashboards
work the same here and through the Collector.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from crewtrace.errors import MetricsServerError
from crewtrace.telemetry import _settings
from crewtrace.telemetry._prometheus_collector import DEFAULT_RESOURCE_LABELS, PrometheusCollector
from crewtrace.telemetry._prometheus_reader import PrometheusReader

if TYPE_CHECKING:  # typeshed's names (wsgiref.types exists from Python 3.11 only)
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["MetricsServer", "start_metrics_server"]


class MetricsServer:
    """A running ``/metrics`` endpoint; ``shutdown()`` stops it, frees the port and leaves the registry as it was."""

    def __init__(
        self,
        httpd: Any,
        thread: threading.Thread,
        host: str,
        registry: CollectorRegistry,
        collector: PrometheusCollector,
    ) -> None:
        self._httpd = httpd
        self._thread = thread
        self._registry = registry
        self._collector = collector
        self._lock = threading.Lock()
        self._closed = False
        self.host: str = host
        self.port: int = int(httpd.server_port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{host}:{self.port}/metrics"

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket; idempotent, and waits at most about ``timeout`` seconds."""
        timeout = _settings.seconds(timeout)
        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout
        # httpd.shutdown() blocks forever if serve_forever is not running: run it aside, bounded.
        stopper = threading.Thread(target=self._httpd.shutdown, name="crewtrace-metrics-stop", daemon=True)
        stopper.start()
        stopper.join(timeout)
        self._httpd.server_close()
        self._registry.unregister(self._collector)
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"MetricsServer(url={self.url!r}, closed={self._closed})"


def start_metrics_server(
    reader: PrometheusReader,
    *,
    host: str | None = _settings.LOOPBACK,
    port: int,
    registry: CollectorRegistry | None = None,
    resource_labels: Sequence[str] = DEFAULT_RESOURCE_LABELS,
) -> MetricsServer:
    """Serve ``reader`` at ``http://host:port/metrics`` on a daemon thread (``port=0``: any free port).

    ``host=None`` means loopback: nothing listens beyond this machine unless a host is named.
    ``registry`` is the prometheus_client registry served (the reader's collector joins it);
    by default a fresh private one, which keeps the process-global ``REGISTRY`` (and whatever
    else registered there) out of this endpoint. Raises :class:`MetricsServerError` when the
    address cannot be bound.
    """
    port = _settings.port(port, "port")
    host = _settings.host(host, "host")
    registry = CollectorRegistry(auto_describe=False) if registry is None else registry
    collector = PrometheusCollector(reader, resource_labels=resource_labels, registry=registry)
    try:
        httpd, thread = _serve(_answer_head(make_wsgi_app(registry)), host, port)
    except OSError as exc:
        registry.unregister(collector)
        if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", None)):
            hint = (
                "the address is already in use; choose another port (port=0 picks a free one) "
                "or stop the process that listens on it"
            )
        else:
            hint = f"{exc.strerror or exc}; check the host name and that this process may listen on that port"
        raise MetricsServerError(exc.errno, f"cannot serve Prometheus metrics on {host}:{port}: {hint}") from exc
    return MetricsServer(httpd, thread, host, registry, collector)


# prometheus_client's own server (start_http_server) answers HEAD with 405; probes and load balancers
# send HEAD. The same WSGI app, served the same way, with HEAD answered as GET without the body.


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in flight never holds the process at exit


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # no access log on stderr
        pass


def _answer_head(app: WSGIApplication) -> WSGIApplication:
    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "HEAD":
            body: Iterable[bytes] = app(environ, start_response)
            return body
        app({**environ, "REQUEST_METHOD": "GET"}, start_response)
        return []

    return serve


def _serve(app: WSGIApplication, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server_class = type("_Server", (_Server,), {"address_family": family})
    httpd: WSGIServer = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, name="crewtrace-metrics", daemon=True)
    thread.start()
    return httpd, thread
