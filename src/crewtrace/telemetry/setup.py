"""``setup_telemetry``: providers, exporters and the bridge in one call.

It honours the standard ``OTEL_*`` variables (service name, resource
attributes, OTLP endpoint, protocol, headers, timeouts, intervals), because
the SDK and exporters read them; arguments win over the environment. Global
providers the application already set are left alone.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace

# No public way to ask whether a global meter provider was set: the API's placeholder is this private
# class (the trace API exports its twin, ProxyTracerProvider). This is crewtrace's one import of it.
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, ConsoleLogRecordExporter, LogRecordExporter
from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_EXPORT_TIMEOUT,
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
    OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_METRIC_EXPORT_TIMEOUT,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricExporter, MetricReader
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader as PeriodicReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from prometheus_client import CollectorRegistry

from crewtrace.errors import MetricsServerError
from crewtrace.events import EventBus
from crewtrace.telemetry import _lifecycle, _log_filter, _settings, names
from crewtrace.telemetry._exporters import (
    TrackedMetricExporter,
    TrackedSpanExporter,
    otlp_log_exporter,
    otlp_metric_exporter,
    otlp_span_exporter,
)
from crewtrace.telemetry._prometheus_collector import PrometheusCollector
from crewtrace.telemetry._prometheus_reader import PrometheusReader
from crewtrace.telemetry.bridge import OTelBridge
from crewtrace.telemetry.metrics_server import MetricsServer, serving_sibling, start_metrics_server
from crewtrace.telemetry.usage_log import UsageLog

__all__ = ["Telemetry", "setup_telemetry"]

_logger = logging.getLogger("crewtrace.telemetry")

_DEFAULT_SERVICE_NAME = "crewtrace"

# Tracer providers of telemetries that were shut down: if one is still the global provider when
# setup_telemetry runs again, OpenTelemetry will not let it be replaced (see _set_global_providers).
_stopped_providers: weakref.WeakSet[TracerProvider] = weakref.WeakSet()
_warned_stale_globals = False


@dataclass
class Telemetry:
    """What :func:`setup_telemetry` built; call :meth:`shutdown` before the process exits."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    bridge: OTelBridge
    usage_log: UsageLog
    metrics_server: MetricsServer | None = None
    logger_provider: LoggerProvider | None = None
    """Where the bridge's details events go (exported only when they are on)."""
    _closers: list[Callable[[], object]] = field(default_factory=list, repr=False)
    _uninstall_log_filter: Callable[[], None] | None = field(default=None, repr=False)
    _exporters: list[TrackedSpanExporter | TrackedMetricExporter] = field(default_factory=list, repr=False)
    _flush: list[_ShutdownStep] | None = field(default=None, repr=False)
    _outcome: bool | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _draining: bool = field(default=False, repr=False)

    @property
    def metrics_url(self) -> str | None:
        return self.metrics_server.url if self.metrics_server else None

    def shutdown(self, timeout: float = _lifecycle.SHUTDOWN_TIMEOUT) -> bool:
        """Stop listening, export what was recorded and close the exporters, within ``timeout`` seconds.

        Returns False if exporting did not finish in time (a collector that is
        down, say) or failed; the application is never held longer than ``timeout``.
        After a False, calling it again waits (up to its own timeout) for the
        exports still running and runs any step that failed; once it has finished,
        it returns the same outcome at once. Also runs at interpreter exit, at SIGTERM with its
        default action, and when a worker forked by multiprocessing exits.
        """
        timeout = _settings.seconds(timeout)  # before anything is torn down
        with self._lock:
            if self._outcome is not None:
                return self._outcome
            deadline = time.monotonic() + timeout
            atexit.unregister(self.shutdown)
            _lifecycle.unwatch(self)
            _stopped_providers.add(self.tracer_provider)
            self._closers = [closer for closer in self._closers if not _closed(closer)]
            if self._flush is None:
                # Shutting a provider down exports what is left. TracerProvider.shutdown takes no
                # timeout, so each runs on a daemon thread, waited for only until the deadline. The
                # others wait for the spans' export first (it records the SDK's own span metrics),
                # but never more than half of what is left: a hung trace export still leaves them time.
                traces = _ShutdownStep(self.tracer_provider.shutdown)
                self._flush = [traces]
                for provider in (self.meter_provider, self.logger_provider):
                    if provider is not None:
                        self._flush.append(_ShutdownStep(_after(traces, deadline, provider.shutdown)))
            for step in self._flush:
                step.join(max(deadline - time.monotonic(), 0.0))
            if self.metrics_server is not None:
                self.metrics_server.shutdown()
            if not all(step.finished for step in self._flush):
                # Exports still running keep failing quietly: the log filter stays for them.
                _logger.warning(
                    "telemetry did not flush within %.1f s: call shutdown() again to wait longer; "
                    "what is unsent when the process exits is dropped",
                    timeout,
                )
                return False
            if self._closers:
                return False  # a step failed (logged); the next call runs it again
            if self._uninstall_log_filter is not None:
                self._uninstall_log_filter()
                self._uninstall_log_filter = None
            failed = any(step.error for step in self._flush) or any(e.last_export_failed for e in self._exporters)
            if failed:
                _logger.warning(
                    "telemetry's last export failed: the collector did not take the final spans and metrics"
                )
            self._outcome = not failed
            return self._outcome

    def _export_now(self, timeout: float) -> bool:
        """Export what was recorded so far (spans and metrics), waiting at most ``timeout`` seconds."""
        millis = int(timeout * 1000)
        providers = (self.tracer_provider, self.meter_provider, self.logger_provider)
        step = _ShutdownStep(
            lambda: all(provider.force_flush(millis) for provider in providers if provider is not None),
            name="crewtrace-telemetry-flush",
        )
        step.join(timeout)
        return step.finished and step.result is True and not any(e.last_export_failed for e in self._exporters)

    def _drain(self, timeout: float) -> None:
        """The process is stopping gracefully: export what was recorded, then every span as it ends."""
        with self._lock:
            if self._outcome is not None or self._draining:
                return
            self._draining = True
        if self._export_now(timeout):
            self.tracer_provider.add_span_processor(_lifecycle.ExportOnEnd(self._export_now, timeout))


def _closed(closer: Callable[[], object]) -> bool:
    """Run one step of a shutdown; False (logged) if it raised, so a later shutdown() runs it again."""
    try:
        closer()
    except Exception:
        _logger.exception("telemetry shutdown step %s failed; call shutdown() again to retry it", closer)
        return False
    return True


def _after(first: _ShutdownStep, deadline: float, call: Callable[[], object]) -> Callable[[], object]:
    """``call``, once ``first`` has finished or half the time to ``deadline`` has passed."""

    def run() -> object:
        first.join(max(deadline - time.monotonic(), 0.0) / 2)
        return call()

    return run


class _ShutdownStep:
    """One blocking shutdown call on a daemon thread; ``finished`` once it returned, ``error`` if it raised."""

    def __init__(self, call: Callable[[], object], name: str = "crewtrace-telemetry-shutdown") -> None:
        self.finished = False
        self.result: object = None
        self.error: Exception | None = None
        self._call = call
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._call()
        except Exception as exc:  # the SDK raises when a reader runs out of time
            _logger.debug("telemetry shutdown step failed: %s", exc)
            self.error = exc
        self.finished = True

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def setup_telemetry(
    service_name: str | None = None,
    *,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    prometheus_port: int | None = None,
    prometheus_host: str | None = _settings.LOOPBACK,
    prometheus_registry: CollectorRegistry | None = None,
    console: bool = False,
    capture_content: bool | None = None,
    usage_log: str | os.PathLike[str] | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    set_global: bool = True,
    bus: EventBus | None = None,
) -> Telemetry:
    """Build tracer and meter providers with the exporters asked for, and install an :class:`OTelBridge`.

    Every argument and ``OTEL_*`` variable is checked before anything is built.

    Args:
        service_name: ``service.name``; else ``OTEL_SERVICE_NAME``; else ``crewtrace``.
        otlp_endpoint: e.g. ``http://localhost:4317``; else ``OTEL_EXPORTER_OTLP_ENDPOINT``
            (or the per-signal variables). No endpoint, no OTLP export.
        otlp_protocol: ``grpc`` or ``http/protobuf``; else ``OTEL_EXPORTER_OTLP_PROTOCOL``; else ``grpc``.
        prometheus_port: serve ``/metrics`` on ``prometheus_host:prometheus_port`` (0 picks a free port).
        prometheus_host: where ``/metrics`` listens; ``None`` means ``127.0.0.1`` too: nothing
            listens beyond this machine unless a host is named (``"0.0.0.0"`` for every interface).
        prometheus_registry: a prometheus_client registry to put crewtrace's metrics in (served at
            ``prometheus_port`` if given; else the application serves it). Default: a private one.
        console: also print spans and metrics to stdout.
        capture_content: see :class:`OTelBridge`. With details events on (a capture mode with events,
            or ``OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT=true``), they are exported like spans (OTLP, console).
        usage_log: also write the ``crewtrace.usage`` records to this file as JSON lines.
        resource_attributes: extra resource attributes.
        set_global: make the providers global, unless the application already set its own.
        bus: the event bus to listen on; defaults to ``crewtrace_event_bus``.
    """
    capture = _settings.capture_mode(capture_content)
    port = None if prometheus_port is None else _settings.port(prometheus_port)
    host = _settings.host(prometheus_host)
    resource = _resource(service_name, resource_attributes)
    traces = _settings.signal_export(_settings.TRACES, otlp_endpoint, otlp_protocol, console)
    metric_export = _settings.signal_export(_settings.METRICS, otlp_endpoint, otlp_protocol, console)
    logs = _settings.signal_export(_settings.LOGS, otlp_endpoint, otlp_protocol, console)
    if port is None and "prometheus" in metric_export.pull:
        host, port = _settings.prometheus_from_env(host)
    numbers = _settings.env_numbers()
    # If a step fails, everything built before it is taken down again (ExitStack, popped on success).
    with ExitStack() as undo:
        closers: list[Callable[[], object]] = []
        uninstall_log_filter = _log_filter.install()
        undo.callback(uninstall_log_filter)
        prometheus_reader = PrometheusReader() if port is not None or prometheus_registry is not None else None
        metrics_server = None
        if prometheus_reader is not None and port is not None:
            metrics_server = _serve_metrics(prometheus_reader, host, port, prometheus_registry, resource)
            if metrics_server is None:
                prometheus_reader = None  # another worker serves the port: nothing would read this one
            else:
                undo.callback(metrics_server.shutdown)
        elif prometheus_reader is not None and prometheus_registry is not None:
            collector = PrometheusCollector(prometheus_reader, registry=prometheus_registry, resource=resource)
            closers.append(lambda: prometheus_registry.unregister(collector))
            undo.callback(closers[-1])
        span_exporters: list[SpanExporter] = []
        tracked: list[TrackedSpanExporter | TrackedMetricExporter] = []
        readers: list[MetricReader] = []
        if traces.otlp:
            span_exporter = otlp_span_exporter(traces.endpoint, traces.protocol)
            tracked.append(span_exporter)
            span_exporters.append(span_exporter)
        if traces.console:
            span_exporters.append(ConsoleSpanExporter())
        if metric_export.otlp:
            metric_exporter = otlp_metric_exporter(metric_export.endpoint, metric_export.protocol)
            tracked.append(metric_exporter)
            readers.append(_periodic_reader(metric_exporter, numbers))
        if metric_export.console:
            readers.append(_periodic_reader(ConsoleMetricExporter(), numbers))
        if prometheus_reader is not None:
            readers.append(prometheus_reader)
        # Telemetry.shutdown (bounded, and registered with atexit) replaces the SDK's own exit hooks,
        # which wait on a dead collector for as long as the exporters retry.
        meter_provider = MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)
        undo.callback(meter_provider.shutdown, timeout_millis=1000)
        tracer_provider = TracerProvider(resource=resource, meter_provider=meter_provider, shutdown_on_exit=False)
        undo.callback(tracer_provider.shutdown)
        for exporter in span_exporters:
            tracer_provider.add_span_processor(_batch_processor(exporter, numbers, meter_provider))
        logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        undo.callback(logger_provider.shutdown)
        if _settings.details_events(capture):  # only then is anything emitted, and exported
            log_exporters: list[LogRecordExporter] = []
            if logs.otlp:
                log_exporters.append(otlp_log_exporter(logs.endpoint, logs.protocol))
            if logs.console:
                log_exporters.append(ConsoleLogRecordExporter())
            for log_exporter in log_exporters:
                logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
        bridge = OTelBridge(
            tracer_provider, meter_provider, capture_content=capture, bus=bus, logger_provider=logger_provider
        )
        undo.callback(bridge.close)
        usage = UsageLog(bus, path=usage_log, spans=bridge.span_context)
        undo.callback(usage.close)
        undo.pop_all()

    if set_global:
        _set_global_providers(tracer_provider, meter_provider)
    telemetry = Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        bridge=bridge,
        usage_log=usage,
        metrics_server=metrics_server,
        logger_provider=logger_provider,
        # Stop listening first, so nothing is recorded while the providers flush.
        _closers=[bridge.close, usage.close, *closers],
        _uninstall_log_filter=uninstall_log_filter,
        _exporters=tracked,
    )
    atexit.register(telemetry.shutdown)
    _lifecycle.watch(telemetry)
    return telemetry


def _serve_metrics(
    reader: PrometheusReader, host: str, port: int, registry: CollectorRegistry | None, resource: Resource
) -> MetricsServer | None:
    """Start ``/metrics``; None, with one warning, when another worker of the same server already serves the port.

    Several workers of a web server (uvicorn ``--workers``, gunicorn) each set telemetry up; one port
    can serve only one of them, and refusing the others would stop the whole service.
    """
    try:
        return start_metrics_server(reader, host=host, port=port, registry=registry, resource=resource)
    except MetricsServerError as exc:
        sibling = serving_sibling(host, port) if exc.errno == errno.EADDRINUSE else None
        if sibling is None:
            raise
    _logger.warning(
        "crewtrace: %s:%d already serves the metrics of process %d, another worker of this server; this worker's "
        "are not served (a port shows one process). With several workers, export OTLP to a collector that serves "
        "Prometheus: see docs/deployment.md, 'Web servers and worker processes'",
        host,
        port,
        sibling,
    )
    return None


def _resource(service_name: str | None, extra: Mapping[str, Any] | None) -> Resource:
    """Argument, then OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, then ``crewtrace``."""
    attributes: dict[str, Any] = dict(extra or {})
    if service_name is not None:
        attributes[names.SERVICE_NAME] = service_name
    resource = Resource.create(attributes)
    if str(resource.attributes.get(names.SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({names.SERVICE_NAME: _DEFAULT_SERVICE_NAME}))
    return resource


def _batch_processor(exporter: SpanExporter, numbers: dict[str, float], meters: MeterProvider) -> BatchSpanProcessor:
    """A batch span processor with the checked OTEL_BSP_* settings.

    A batch larger than the queue is clamped to the queue size, as the specification allows.
    """
    queue = int(numbers[OTEL_BSP_MAX_QUEUE_SIZE])
    return BatchSpanProcessor(
        exporter,
        max_queue_size=queue,
        schedule_delay_millis=numbers[OTEL_BSP_SCHEDULE_DELAY],
        max_export_batch_size=min(int(numbers[OTEL_BSP_MAX_EXPORT_BATCH_SIZE]), queue),
        export_timeout_millis=numbers[OTEL_BSP_EXPORT_TIMEOUT],
        meter_provider=meters,
    )


def _periodic_reader(exporter: MetricExporter, numbers: dict[str, float]) -> PeriodicReader:
    return PeriodicReader(
        exporter,
        export_interval_millis=numbers[OTEL_METRIC_EXPORT_INTERVAL],
        export_timeout_millis=numbers[OTEL_METRIC_EXPORT_TIMEOUT],
    )


def _set_global_providers(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
    global _warned_stale_globals
    current = trace.get_tracer_provider()
    if isinstance(current, trace.ProxyTracerProvider):
        trace.set_tracer_provider(tracer_provider)
    elif current in _stopped_providers:
        if not _warned_stale_globals:
            _warned_stale_globals = True
            _logger.warning(
                "OpenTelemetry's global providers are still those of a crewtrace telemetry that was shut down "
                "(they can be set only once per process): spans and metrics recorded through them are dropped. "
                "Call setup_telemetry(set_global=False) and pass its providers explicitly, e.g. "
                "trace.get_tracer(__name__, tracer_provider=telemetry.tracer_provider)"
            )
        return
    else:
        _logger.info("a global tracer provider is already set: crewtrace keeps it and uses its own")
    if isinstance(metrics.get_meter_provider(), _ProxyMeterProvider):
        metrics.set_meter_provider(meter_provider)
    else:
        _logger.info("a global meter provider is already set: crewtrace keeps it and uses its own")
