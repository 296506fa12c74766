"""The ``/metrics`` endpoint: crewtrace's OpenTelemetry metrics for Prometheus, with exemplars.

A :class:`PrometheusReader` on the meter provider, a :class:`PrometheusCollector`
over it in a prometheus_client registry, and prometheus_client's HTTP server for
that registry. Names follow the OpenTelemetry-to-Prometheus rules, so dashboards
work the same here and through the Collector.

One endpoint serves one process. A process forked while it serves keeps serving
alone: the child lets go of its copy of the socket, and what the child records
never shows here (the parent says so once).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterable, Sequence
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, make_wsgi_app

from crewtrace.errors import MetricsServerError
from crewtrace.telemetry import _settings
from crewtrace.telemetry._prometheus_collector import DEFAULT_RESOURCE_LABELS, PrometheusCollector
from crewtrace.telemetry._prometheus_reader import PrometheusReader

if TYPE_CHECKING:  # typeshed's names (wsgiref.types exists from Python 3.11 only)
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["MetricsServer", "start_metrics_server"]

_logger = logging.getLogger("crewtrace.telemetry")

IDENTITY_PATH = "/-/crewtrace"
"""Where the endpoint says which process serves it (pid, parent pid, command line hash), for :func:`serving_sibling`."""
CONNECTION_TIMEOUT = 10.0
"""Seconds a connection may stay silent (while a request is read or its answer written) before it is closed."""
MAX_CONNECTIONS = 16
"""Connections served at once; further ones get a 503 straight away."""


class MetricsServer:
    """A running ``/metrics`` endpoint; ``shutdown()`` stops it, frees the port and leaves the registry as it was."""

    def __init__(
        self,
        httpd: _Server,
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
        self._told_of_fork = False  # the process forked while serving: said once
        self.host: str = host
        self.port: int = int(httpd.server_port)
        _serving.add(self)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{host}:{self.port}/metrics"

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop serving, close the socket and every open connection; idempotent, waits at most about ``timeout`` s."""
        timeout = _settings.seconds(timeout)
        with self._lock:
            if self._closed:
                return
            self._closed = True
        _serving.discard(self)
        deadline = time.monotonic() + timeout
        # httpd.shutdown() blocks forever if serve_forever is not running: run it aside, bounded.
        stopper = threading.Thread(target=self._httpd.shutdown, name="crewtrace-metrics-stop", daemon=True)
        stopper.start()
        stopper.join(timeout)
        self._httpd.server_close()
        self._registry.unregister(self._collector)
        self._httpd.close_connections(max(0.0, deadline - time.monotonic()))
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def _forget_in_child(self) -> None:
        """In a forked child: the parent serves; close this process's copy of the socket and never serve here."""
        with self._lock:
            self._closed = True
        self._httpd.forget_in_child()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"MetricsServer(url={self.url!r}, closed={self._closed})"


_serving: weakref.WeakSet[MetricsServer] = weakref.WeakSet()


def _after_fork_in_parent() -> None:
    news = [server for server in list(_serving) if not server._told_of_fork]
    if news:
        for server in news:
            server._told_of_fork = True
        urls = ", ".join(sorted(server.url for server in news))
        _logger.warning(
            "crewtrace: this process forked while serving %s: what the forked processes record is not served there "
            "(gunicorn --preload or a fork pool?); set telemetry up in each worker and export OTLP to a collector, "
            "see docs/deployment.md, 'Web servers and worker processes'",
            urls,
        )


def _after_fork_in_child() -> None:
    for server in list(_serving):
        server._forget_in_child()
    _serving.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


def start_metrics_server(
    reader: PrometheusReader,
    *,
    host: str | None = _settings.LOOPBACK,
    port: int,
    registry: CollectorRegistry | None = None,
    resource_labels: Sequence[str] = DEFAULT_RESOURCE_LABELS,
    resource: Resource | None = None,
) -> MetricsServer:
    """Serve ``reader`` at ``http://host:port/metrics`` on a daemon thread (``port=0``: any free port).

    ``host=None`` means loopback: nothing listens beyond this machine unless a host is named.
    ``registry`` is the prometheus_client registry served (the reader's collector joins it);
    by default a fresh private one, which keeps the process-global ``REGISTRY`` (and whatever
    else registered there) out of this endpoint. ``resource`` (the meter provider's) gives
    ``target_info`` before anything was recorded. Raises :class:`MetricsServerError` when the
    address cannot be bound.
    """
    port = _settings.port(port, "port")
    host = _settings.host(host, "host")
    registry = CollectorRegistry(auto_describe=False) if registry is None else registry
    collector = PrometheusCollector(reader, resource_labels=resource_labels, registry=registry, resource=resource)
    try:
        httpd, thread = _serve(_endpoint(make_wsgi_app(registry)), host, port)
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


def serving_sibling(host: str, port: int, timeout: float = 5.0) -> int | None:
    """The pid of the crewtrace endpoint at ``host:port`` if another worker of this server runs it, else None.

    Workers of one server share a parent (uvicorn ``--workers``, gunicorn) and a command line;
    a ``--preload`` master is their parent. Anything else there (another program, or this very
    process) is not a sibling.
    """
    target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    target = f"[{target}]" if ":" in target else target
    try:
        with urllib.request.urlopen(f"http://{target}:{port}{IDENTITY_PATH}", timeout=timeout) as response:
            holder = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    me = _identity()
    if not isinstance(holder, dict) or holder.get("pid") == me["pid"] or holder.get("argv") != me["argv"]:
        return None
    related = holder.get("ppid") == me["ppid"] or holder.get("pid") == me["ppid"]
    pid = holder.get("pid")
    return pid if related and isinstance(pid, int) else None


def _identity() -> dict[str, Any]:
    # The command line is compared by hash: it may hold secrets, and the endpoint may listen beyond this machine.
    argv = hashlib.sha256(json.dumps(sys.argv).encode()).hexdigest()
    return {"pid": os.getpid(), "ppid": os.getppid(), "argv": argv}


class _Server(ThreadingMixIn, WSGIServer):
    """prometheus_client's WSGI app served with bounded connections that ``close_connections`` ends."""

    daemon_threads = True  # a scrape in flight never holds the process at exit

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_changed = threading.Condition()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_changed:
            accepted = len(self._connections) < MAX_CONNECTIONS
            if accepted:
                self._connections.add(request)
        if not accepted:
            _refuse(request)
            super().shutdown_request(request)
            return
        threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="crewtrace-metrics-connection",
            daemon=True,
        ).start()

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self._connections_changed:
            self._connections.discard(request)
            self._connections_changed.notify_all()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went silent or away is not the application's problem: no traceback on stderr."""
        _logger.debug("metrics connection from %s ended: %s", client_address, sys.exc_info()[1])

    def close_connections(self, timeout: float) -> None:
        """End every open connection (a silent client included) and wait, bounded, for their threads."""
        with self._connections_changed:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self._connections_changed.wait_for(lambda: not self._connections, timeout)

    def forget_in_child(self) -> None:
        """Close this process's copies of the sockets only: the parent still serves its connections."""
        for connection in (self.socket, *self._connections):
            connection.close()
        self._connections.clear()


def _refuse(request: socket.socket) -> None:
    try:
        request.settimeout(0)
        request.send(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except OSError:
        pass


class _QuietHandler(WSGIRequestHandler):
    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(CONNECTION_TIMEOUT)  # a silent client is let go

    def log_message(self, format: str, *args: Any) -> None:  # no access log on stderr
        pass


def _endpoint(app: WSGIApplication) -> WSGIApplication:
    """prometheus_client's app, with HEAD answered as GET without the body and the identity path.

    prometheus_client's own server (start_http_server) answers HEAD with 405; probes and load
    balancers send HEAD.
    """

    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == IDENTITY_PATH:
            body = json.dumps(_identity()).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if environ.get("REQUEST_METHOD") != "HEAD":
            page: Iterable[bytes] = app(environ, start_response)
            return page
        app({**environ, "REQUEST_METHOD": "GET"}, start_response)
        return []

    return serve


def _serve(app: WSGIApplication, host: str, port: int) -> tuple[_Server, threading.Thread]:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server_class: type[_Server] = type("_Server", (_Server,), {"address_family": family})
    httpd = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, name="crewtrace-metrics", daemon=True)
    thread.start()
    return httpd, thread
