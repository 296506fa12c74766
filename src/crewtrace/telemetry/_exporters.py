"""OTLP exporters, and wrappers that remember whether the last export got through.

The SDK's flush and shutdown report that an export was *attempted*; a
collector that refuses connections makes every export fail fast, and the
application should hear that from ``Telemetry.shutdown()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class TrackedSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner
        self.last_export_failed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._inner.export(spans)
        self.last_export_failed = result is not SpanExportResult.SUCCESS
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class TrackedMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter) -> None:
        # Keep the inner exporter's temporality and aggregation preferences (OTLP defaults or OTEL_* settings).
        # The SDK has no public getter for them: its own PeriodicExportingMetricReader reads these same
        # private attributes. This is the one place crewtrace does.
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self.last_export_failed = False

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.last_export_failed = result is not MetricExportResult.SUCCESS
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def otlp_span_exporter(endpoint: str | None, protocol: str) -> TrackedSpanExporter:
    """An OTLP span exporter; ``endpoint=None`` lets it read ``OTEL_EXPORTER_OTLP_[TRACES_]*`` itself."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return TrackedSpanExporter(OTLPSpanExporter(endpoint=endpoint))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPSpanExporter

    return TrackedSpanExporter(HTTPSpanExporter(endpoint=_http_url(endpoint, "traces")))


def otlp_metric_exporter(endpoint: str | None, protocol: str) -> TrackedMetricExporter:
    """An OTLP metric exporter; ``endpoint=None`` lets it read ``OTEL_EXPORTER_OTLP_[METRICS_]*`` itself."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return TrackedMetricExporter(OTLPMetricExporter(endpoint=endpoint))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HTTPMetricExporter

    return TrackedMetricExporter(HTTPMetricExporter(endpoint=_http_url(endpoint, "metrics")))


def _http_url(base: str | None, signal: str) -> str | None:
    """OTLP/HTTP takes a signal's full URL; a base endpoint (the argument) gets the standard path."""
    return None if base is None else f"{base.rstrip('/')}/v1/{signal}"


def otlp_log_exporter(endpoint: str | None, protocol: str) -> LogRecordExporter:
    """An OTLP log exporter (the details events); ``endpoint=None`` lets it read ``OTEL_EXPORTER_OTLP_[LOGS_]*``."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return OTLPLogExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HTTPLogExporter

    return HTTPLogExporter(endpoint=_http_url(endpoint, "logs"))
