"""``setup_telemetry``: providers, exporters and the bridge in one call.

It honours the standard ``OTEL_*`` variables (service name, resource
attributes, OTLP endpoint, protocol, headers, timeouts, intervals), because
the SDK and exporters read them; arguments win over the environment. Global
providers the application already set are left alone.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from crewtrace.events import EventBus
from crewtrace.telemetry import _log_filter, names
from crewtrace.telemetry._exporters import TrackedMetricExporter, TrackedSpanExporter, otlp_exporters
from crewtrace.telemetry._prometheus import MetricsServer, PrometheusReader, start_metrics_server
from crewtrace.telemetry.bridge import OTelBridge
from crewtrace.telemetry.usage_log import JsonLinesFormatter, UsageLog

__all__ = ["Telemetry", "setup_telemetry"]

_logger = logging.getLogger("crewtrace.telemetry")

_DEFAULT_SERVICE_NAME = "crewtrace"
_PROTOCOLS = ("grpc", "http/protobuf")


@dataclass
class Telemetry:
    """What :func:`setup_telemetry` built; call :meth:`shutdown` before the process exits."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    bridge: OTelBridge
    usage_log: UsageLog
    metrics_server: MetricsServer | None = None
    _detach_usage_log: Callable[[], None] | None = field(default=None, repr=False)
    _uninstall_log_filter: Callable[[], None] | None = field(default=None, repr=False)
    _exporters: list[TrackedSpanExporter | TrackedMetricExporter] = field(default_factory=list, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def metrics_url(self) -> str | None:
        return self.metrics_server.url if self.metrics_server else None

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Stop listening, export what was recorded and close the exporters, within ``timeout`` seconds.

        Returns False if exporting did not finish in time (a collector that is
        down, say): what was not sent is dropped, and the application is never
        held longer than ``timeout``. Also runs at interpreter exit.
        """
        if self._stopped:
            return True
        self._stopped = True
        atexit.unregister(self.shutdown)
        self.bridge.close()
        self.usage_log.close()
        if self._detach_usage_log is not None:
            self._detach_usage_log()
        # Shutting a provider down exports what is left. TracerProvider.shutdown
        # takes no timeout, so both run on daemon threads that are waited for
        # only until the deadline.
        deadline = time.monotonic() + timeout
        steps = [
            _ShutdownStep(self.tracer_provider.shutdown),
            _ShutdownStep(lambda: self.meter_provider.shutdown(timeout_millis=timeout * 1000)),
        ]
        for step in steps:
            step.join(max(deadline - time.monotonic(), 0.0))
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        if not all(step.done for step in steps):
            # Exports still running keep failing quietly: the log filter stays for them.
            _logger.warning("telemetry did not flush within %.1f s: unsent spans and metrics were dropped", timeout)
            return False
        if self._uninstall_log_filter is not None:
            self._uninstall_log_filter()
        if any(exporter.last_export_failed for exporter in self._exporters):
            _logger.warning("telemetry's last export failed: the collector did not take the final spans and metrics")
            return False
        return True


class _ShutdownStep:
    """One blocking shutdown call on a daemon thread; ``done`` once it returned without error."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.done = False
        self._call = call
        self._thread = threading.Thread(target=self._run, name="crewtrace-telemetry-shutdown", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._call()
        except Exception as exc:  # the SDK raises when a reader runs out of time
            _logger.debug("telemetry shutdown step failed: %s", exc)
        else:
            self.done = True

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def setup_telemetry(
    service_name: str | None = None,
    *,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    prometheus_port: int | None = None,
    prometheus_host: str = "127.0.0.1",
    console: bool = False,
    capture_content: bool | None = None,
    usage_log: str | os.PathLike[str] | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    set_global: bool = True,
    bus: EventBus | None = None,
) -> Telemetry:
    """Build tracer and meter providers with the exporters asked for, and install an :class:`OTelBridge`.

    Args:
        service_name: ``service.name``; else ``OTEL_SERVICE_NAME``; else ``crewtrace``.
        otlp_endpoint: e.g. ``http://localhost:4317``; else ``OTEL_EXPORTER_OTLP_ENDPOINT``
            (or the per-signal variables). No endpoint, no OTLP export.
        otlp_protocol: ``grpc`` or ``http/protobuf``; else ``OTEL_EXPORTER_OTLP_PROTOCOL``; else ``grpc``.
        prometheus_port: serve ``/metrics`` on ``prometheus_host:prometheus_port`` (0 picks a free port).
        console: also print spans and metrics to stdout.
        capture_content: see :class:`OTelBridge`.
        usage_log: also write the ``crewtrace.usage`` records to this file as JSON lines.
        resource_attributes: extra resource attributes.
        set_global: make the providers global, unless the application already set its own.
        bus: the event bus to listen on; defaults to ``crewtrace_event_bus``.
    """
    resource = _resource(service_name, resource_attributes)
    endpoint, protocol = _otlp_settings(otlp_endpoint, otlp_protocol)
    batching = _batch_settings()
    # If a step fails, everything built before it is taken down again (ExitStack, popped on success).
    with ExitStack() as undo, _sdk_internal_metrics():
        detach_usage_log = None
        if usage_log is not None:
            detach_usage_log = _attach_usage_file(Path(usage_log))
            undo.callback(detach_usage_log)
        uninstall_log_filter = _log_filter.install()
        undo.callback(uninstall_log_filter)
        tracked: list[TrackedSpanExporter | TrackedMetricExporter] = []
        readers: list[MetricReader] = []
        span_exporters: list[SpanExporter] = []
        if endpoint is not None:
            span_exporter, metric_exporter = otlp_exporters(endpoint, protocol)
            tracked += [span_exporter, metric_exporter]
            span_exporters.append(span_exporter)
            readers.append(PeriodicExportingMetricReader(metric_exporter))
        if console:
            span_exporters.append(ConsoleSpanExporter())
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        prometheus_reader = PrometheusReader() if prometheus_port is not None else None
        if prometheus_reader is not None:
            readers.append(prometheus_reader)
        # Telemetry.shutdown (bounded, and registered with atexit) replaces the SDK's own exit hooks,
        # which wait on a dead collector for as long as the exporters retry.
        meter_provider = MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)
        undo.callback(meter_provider.shutdown, timeout_millis=1000)
        tracer_provider = TracerProvider(resource=resource, meter_provider=meter_provider, shutdown_on_exit=False)
        undo.callback(tracer_provider.shutdown)
        for exporter in span_exporters:
            processor = BatchSpanProcessor(exporter, **batching, meter_provider=meter_provider)
            tracer_provider.add_span_processor(processor)
        metrics_server = None
        if prometheus_reader is not None and prometheus_port is not None:
            metrics_server = start_metrics_server(prometheus_reader, host=prometheus_host, port=prometheus_port)
            undo.callback(metrics_server.shutdown)
        bridge = OTelBridge(tracer_provider, meter_provider, capture_content=capture_content, bus=bus)
        undo.pop_all()

    if set_global:
        _set_global_providers(tracer_provider, meter_provider)
    telemetry = Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        bridge=bridge,
        usage_log=UsageLog(bus),
        metrics_server=metrics_server,
        _detach_usage_log=detach_usage_log,
        _uninstall_log_filter=uninstall_log_filter,
        _exporters=tracked,
    )
    atexit.register(telemetry.shutdown)
    return telemetry


@contextmanager
def _sdk_internal_metrics() -> Iterator[None]:
    """Turn on the SDK's own metrics for the components built inside, unless the user decided.

    They report spans a full export queue dropped
    (``otel.sdk.processor.span.processed{error.type="queue_full"}``) and live spans. The SDK
    reads the switch only when a component is built, so the process environment is put back after.
    """
    if OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED in os.environ:
        yield
        return
    os.environ[OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED] = "true"
    try:
        yield
    finally:
        os.environ.pop(OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED, None)


def _resource(service_name: str | None, extra: Mapping[str, Any] | None) -> Resource:
    """Argument, then OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, then ``crewtrace``."""
    attributes: dict[str, Any] = dict(extra or {})
    if service_name is not None:
        attributes[names.SERVICE_NAME] = service_name
    resource = Resource.create(attributes)
    if str(resource.attributes.get(names.SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({names.SERVICE_NAME: _DEFAULT_SERVICE_NAME}))
    return resource


def _otlp_settings(endpoint: str | None, protocol: str | None) -> tuple[str | None, str]:
    """Which endpoint (None: no OTLP) and protocol, validated so mistakes fail at start-up, not mid-run."""
    protocol = (protocol or os.environ.get(OTEL_EXPORTER_OTLP_PROTOCOL) or "grpc").strip().lower()
    if protocol not in _PROTOCOLS:
        raise ValueError(f"unknown OTLP protocol {protocol!r}: use one of {', '.join(_PROTOCOLS)}")
    if endpoint is None:
        from_env = [
            value
            for variable in (
                OTEL_EXPORTER_OTLP_ENDPOINT,
                OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
                OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
            )
            if (value := os.environ.get(variable))
        ]
        for value in from_env:
            _check_endpoint(value)
        # "" means: export, and let the exporters read the variables themselves.
        return ("" if from_env else None), protocol
    _check_endpoint(endpoint)
    return endpoint, protocol


def _batch_settings() -> dict[str, int]:
    """The batch span processor's OTEL_BSP_* settings, checked here so a bad one names its variable.

    A batch larger than the queue is clamped to the queue size, as the specification allows.
    """
    settings = {
        "max_queue_size": _positive_int(OTEL_BSP_MAX_QUEUE_SIZE, 2048),
        "schedule_delay_millis": _positive_int(OTEL_BSP_SCHEDULE_DELAY, 5000),
        "max_export_batch_size": _positive_int(OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 512),
    }
    settings["max_export_batch_size"] = min(settings["max_export_batch_size"], settings["max_queue_size"])
    for variable in (OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, OTEL_EXPORTER_OTLP_METRICS_TIMEOUT):
        value = os.environ.get(variable)
        try:
            ok = value is None or float(value) >= 0
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{variable}={value!r} is not a number of seconds (e.g. {variable}=10)")
    return settings


def _positive_int(variable: str, default: int) -> int:
    value = os.environ.get(variable)
    if value is None or not value.strip():
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise ValueError(f"{variable}={value!r} must be a positive whole number (default {default})")
    return number


def _check_endpoint(endpoint: str) -> None:
    parts = urlsplit(endpoint)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError(
            f"malformed OTLP endpoint {endpoint!r}: expected a URL like http://localhost:4317 (gRPC) "
            "or http://localhost:4318 (HTTP)"
        )


def _attach_usage_file(path: Path) -> Callable[[], None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonLinesFormatter())
    logger = logging.getLogger(names.USAGE_LOGGER)
    logger.addHandler(handler)
    previous_level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)  # usage records are INFO: let them reach the file

    def detach() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        handler.close()

    return detach


def _set_global_providers(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(tracer_provider)
    else:
        _logger.info("a global tracer provider is already set: crewtrace keeps it and uses its own")
    if isinstance(metrics.get_meter_provider(), _ProxyMeterProvider):
        metrics.set_meter_provider(meter_provider)
    else:
        _logger.info("a global meter provider is already set: crewtrace keeps it and uses its own")
