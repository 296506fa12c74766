"""A Prometheus ``/metrics`` endpoint for crewtrace's OpenTelemetry metrics, with exemplars.

Why not ``opentelemetry-exporter-prometheus``: it never exports exemplars, and the
exemplar (trace id of a slow call, on the histogram bucket it landed in) is what
links a Grafana latency panel to the Jaeger trace. The SDK already collects
exemplars, so this module only needs a pull :class:`PrometheusReader` and a
prometheus_client collector that turns its ``MetricsData`` into metric families.

Names follow the OpenTelemetry-to-Prometheus compatibility rules used by the
OpenTelemetry exporter and the Collector, so dashboards work on either path:
``gen_ai.client.operation.duration`` (s) -> ``gen_ai_client_operation_duration_seconds``.
Exemplars are only written in the OpenMetrics format, which prometheus_client
serves when the scraper sends ``Accept: application/openmetrics-text``.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
    _Gauge,
)
from opentelemetry.sdk.metrics import Exemplar as OtelExemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    CardinalityLimits,
    Gauge,
    HistogramDataPoint,
    MetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.metrics.export import Metric as OtelMetric
from opentelemetry.semconv._incubating.attributes.otel_attributes import OtelComponentTypeValues
from opentelemetry.trace import format_span_id, format_trace_id
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from crewtrace.errors import MetricsServerError

__all__ = [
    "MetricsServer",
    "PrometheusCollector",
    "PrometheusReader",
    "start_metrics_server",
]

_logger = logging.getLogger(__name__)

_DEFAULT_RESOURCE_LABELS: tuple[str, ...] = ("service.name",)

# OpenTelemetry unit -> Prometheus name suffix (as the OTel exporter and the Collector map them).
_UNITS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes",
    "MiBy": "mebibytes", "GiBy": "gibibytes", "KBy": "kilobytes", "MBy": "megabytes",
    "GBy": "gigabytes", "m": "meters", "V": "volts", "A": "amperes", "J": "joules",
    "W": "watts", "g": "grams", "Cel": "celsius", "Hz": "hertz", "1": "", "%": "percent",
}  # fmt: skip
_PER_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}
_ANNOTATION = re.compile(r"\{[^}]*\}")  # UCUM annotations such as {token} carry no unit
_BAD_NAME_RUN = re.compile(r"[^a-zA-Z0-9:]+")  # runs of invalid chars (and '_') become one '_'
_BAD_LABEL_RUN = re.compile(r"[^a-zA-Z0-9]+")  # label names may not contain ':'


def _metric_name(name: str) -> str:
    name = _BAD_NAME_RUN.sub("_", name)
    return "_" + name if name[:1].isdigit() else name


def _label_name(key: str) -> str:
    key = _BAD_LABEL_RUN.sub("_", key)
    return "_" + key if key[:1].isdigit() else key


def _unit_suffix(unit: str) -> str:
    unit = _ANNOTATION.sub("", unit or "").strip()
    if unit in _UNITS:
        return _UNITS[unit]
    top, slash, bottom = unit.partition("/")
    if slash and bottom:
        top = _UNITS.get(top, _metric_name(top).strip("_"))
        bottom = _PER_UNITS.get(bottom, _metric_name(bottom).strip("_"))
        return f"{top}_per_{bottom}" if top else f"per_{bottom}"
    return _metric_name(unit).strip("_")


def _label_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _labels(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    """Sanitised labels; keys that collide after sanitising join their values with ';' (OTel spec)."""
    out: dict[str, str] = {}
    for key, raw in sorted((attributes or {}).items()):
        name, value = _label_name(key), _label_value(raw)
        out[name] = f"{out[name]};{value}" if name in out else value
    return out


class PrometheusReader(MetricReader):
    """Pull reader: collects only when asked (each scrape), always cumulative as Prometheus expects.

    The SDK empties its exemplar reservoirs at every collection, so a scrape that
    cannot show exemplars (plain text) would lose them for the next one that can:
    the reader keeps each series' latest exemplar (per histogram bucket) until a
    newer one replaces it.
    """

    def __init__(self, *, cardinality_limits: CardinalityLimits | None = None) -> None:
        cumulative = AggregationTemporality.CUMULATIVE
        super().__init__(
            preferred_temporality=dict.fromkeys(
                (
                    Counter,
                    UpDownCounter,
                    Histogram,
                    _Gauge,
                    ObservableCounter,
                    ObservableUpDownCounter,
                    ObservableGauge,
                ),
                cumulative,
            ),
            cardinality_limits=cardinality_limits,
            otel_component_type=OtelComponentTypeValues.PROMETHEUS_HTTP_TEXT_METRIC_EXPORTER,
        )
        self._lock = threading.RLock()
        self._latest: MetricsData | None = None
        self._exemplars: dict[tuple[Any, ...], list[OtelExemplar]] = {}
        self._is_shutdown = False

    def collect_metrics(self, timeout_millis: float = 10_000) -> MetricsData | None:
        """Collect now and return the result; ``None`` before a MeterProvider owns the reader or after shutdown.

        The lock makes concurrent scrapes each see the data of their own collection.
        """
        with self._lock:
            if self._is_shutdown:
                return None
            self._latest = None
            self.collect(timeout_millis=timeout_millis)
            return self._latest

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        with self._lock:
            self._latest = self._retain_exemplars(metrics_data)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        with self._lock:
            self._is_shutdown = True
            self._latest = None
            self._exemplars = {}

    def _retain_exemplars(self, data: MetricsData) -> MetricsData:
        previous, kept = self._exemplars, {}
        resources = []
        for rm in data.resource_metrics:
            scopes = []
            for sm in rm.scope_metrics:
                metrics = []
                for metric in sm.metrics:
                    points = []
                    for point in metric.data.data_points:
                        key = (sm.scope.name, sm.scope.version, metric.name, _attributes_key(point.attributes))
                        exemplars = _merge_exemplars(previous.get(key, []), point.exemplars, point)
                        if exemplars:
                            kept[key] = exemplars
                        points.append(replace(point, exemplars=exemplars))  # type: ignore[type-var]
                    metrics.append(replace(metric, data=replace(metric.data, data_points=points)))  # type: ignore[type-var]
                scopes.append(replace(sm, metrics=metrics))
            resources.append(replace(rm, scope_metrics=scopes))
        self._exemplars = kept
        return replace(data, resource_metrics=resources)


def _attributes_key(attributes: Mapping[str, Any] | None) -> tuple[Any, ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in (attributes or {}).items()))


def _merge_exemplars(old: Sequence[OtelExemplar], new: Sequence[OtelExemplar], point: Any) -> list[OtelExemplar]:
    """Newest exemplar per histogram bucket; for other points the new ones if any, else the old."""
    if not isinstance(point, HistogramDataPoint):
        return list(new or old)
    by_bucket: dict[int, OtelExemplar] = {}
    for candidate in (*old, *new):
        index = bisect_left(point.explicit_bounds, candidate.value)  # bucket i is (b[i-1], b[i]]
        if index not in by_bucket or candidate.time_unix_nano >= by_bucket[index].time_unix_nano:
            by_bucket[index] = candidate
    return [by_bucket[i] for i in sorted(by_bucket)]


_Bucket = tuple[str, float] | tuple[str, float, Exemplar]


@dataclass
class _Family:
    """One Prometheus family while points from several scopes are gathered into it."""

    kind: str  # "counter" | "gauge" | "histogram"
    name: str  # sanitised, without the unit suffix
    unit: str
    documentation: str
    series: list[tuple[dict[str, str], Any]] = field(default_factory=list)

    def build(self) -> Metric:
        # One label-name list per family: a point without some label gets "", which
        # Prometheus treats exactly like an absent label.
        names = sorted({name for labels, _ in self.series for name in labels})
        family: Any
        if self.kind == "histogram":
            family = HistogramMetricFamily(self.name, self.documentation, labels=names, unit=self.unit)
            for labels, (buckets, total) in self.series:
                family.add_metric([labels.get(n, "") for n in names], buckets, total)
        elif self.kind == "counter":
            family = CounterMetricFamily(self.name, self.documentation, labels=names, unit=self.unit)
            for labels, (value, exemplar) in self.series:
                family.add_metric([labels.get(n, "") for n in names], value, exemplar=exemplar)
        else:
            family = GaugeMetricFamily(self.name, self.documentation, labels=names, unit=self.unit)
            for labels, value in self.series:
                family.add_metric([labels.get(n, "") for n in names], value)
        return family


def _exemplar(sdk: OtelExemplar) -> Exemplar:
    return Exemplar(
        labels={"trace_id": format_trace_id(sdk.trace_id or 0), "span_id": format_span_id(sdk.span_id or 0)},
        value=sdk.value,
        timestamp=sdk.time_unix_nano / 1e9,
    )


def _latest_exemplar(exemplars: Sequence[OtelExemplar]) -> Exemplar | None:
    traced = [e for e in exemplars if e.trace_id and e.span_id]
    return _exemplar(max(traced, key=lambda e: e.time_unix_nano)) if traced else None


def _histogram_buckets(point: HistogramDataPoint) -> list[_Bucket]:
    """Cumulative buckets, each with the latest exemplar whose value falls in it."""
    # The reader leaves at most one exemplar per bucket, oldest first: the last one wins.
    per_bucket = {bisect_left(point.explicit_bounds, e.value): e for e in point.exemplars if e.trace_id and e.span_id}
    buckets: list[_Bucket] = []
    cumulative = 0
    for index, count in enumerate(point.bucket_counts):
        cumulative += count
        le = floatToGoString(point.explicit_bounds[index]) if index < len(point.explicit_bounds) else "+Inf"
        exemplar = _exemplar(per_bucket[index]) if index in per_bucket else None
        buckets.append((le, cumulative, exemplar) if exemplar else (le, cumulative))
    return buckets


class PrometheusCollector:
    """prometheus_client collector: one SDK collection per scrape, translated to families.

    ``resource_labels`` are resource attribute keys copied onto every series (Prometheus
    joins ``target_info`` only on request, and dashboards want ``service_name`` directly).
    """

    def __init__(self, reader: PrometheusReader, *, resource_labels: Sequence[str] = _DEFAULT_RESOURCE_LABELS) -> None:
        self._reader = reader
        self._resource_labels = tuple(resource_labels)
        self._warned: set[str] = set()

    def collect(self) -> Iterator[Metric]:
        data = self._reader.collect_metrics()
        if data is None:
            return
        families: dict[str, _Family] = {}
        target: dict[str, str] = {}
        for resource_metrics in data.resource_metrics:
            resource = resource_metrics.resource.attributes
            target.update(_labels(resource))
            copied = _labels({k: resource[k] for k in self._resource_labels if k in resource})
            for scope_metrics in resource_metrics.scope_metrics:
                scope = scope_metrics.scope
                base = {**copied, "otel_scope_name": scope.name}
                if scope.version:
                    base["otel_scope_version"] = scope.version
                for metric in scope_metrics.metrics:
                    self._add(families, metric, base)
        if target:
            info = InfoMetricFamily("target", "Target metadata", labels=[])
            info.add_metric([], target)
            yield info
        for family in families.values():
            yield family.build()

    def _add(self, families: dict[str, _Family], metric: OtelMetric, base: dict[str, str]) -> None:
        data = metric.data
        if isinstance(data, HistogramData):
            kind = "histogram"
        elif isinstance(data, Sum) and data.is_monotonic:
            kind = "counter"
        elif isinstance(data, (Sum, Gauge)):
            kind = "gauge"
        else:
            self._warn_once(metric.name, f"{type(data).__name__} is not exported to Prometheus: {metric.name}")
            return
        name, unit = _metric_name(metric.name), _unit_suffix(metric.unit or "")
        if kind == "counter" and name.endswith("_total"):
            name = name[: -len("_total")]  # prometheus_client adds it back after the unit
        key = name if not unit or name.endswith("_" + unit) else f"{name}_{unit}"
        family = families.get(key)
        if family is None:
            # HELP names the OpenTelemetry instrument when it has no description (promtool wants HELP).
            help_text = metric.description or f"OpenTelemetry {metric.name} ({metric.unit or 'no unit'})"
            family = families[key] = _Family(kind, name, unit, help_text)
        elif family.kind != kind:
            self._warn_once(key, f"{metric.name} is a {kind} but {key} is already a {family.kind}: skipped")
            return
        for point in data.data_points:
            labels = {**base, **_labels(point.attributes)}
            if kind == "histogram":
                family.series.append((labels, (_histogram_buckets(point), point.sum)))
            elif kind == "counter":
                family.series.append((labels, (point.value, _latest_exemplar(point.exemplars))))
            else:
                family.series.append((labels, point.value))

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _logger.warning(message)


class MetricsServer:
    """A running ``/metrics`` endpoint; ``shutdown()`` stops it and frees the port."""

    def __init__(self, httpd: Any, thread: threading.Thread, host: str) -> None:
        self._httpd = httpd
        self._thread = thread
        self._lock = threading.Lock()
        self._closed = False
        self.host: str = host
        self.port: int = int(httpd.server_port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket; idempotent, and waits at most about ``timeout`` seconds."""
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
    host: str = "127.0.0.1",
    port: int,
    resource_labels: Sequence[str] = _DEFAULT_RESOURCE_LABELS,
) -> MetricsServer:
    """Serve ``reader`` at ``http://host:port/metrics`` on a daemon thread (``port=0``: any free port).

    A private registry keeps the process-global ``REGISTRY`` (and whatever else
    registered there) out of this endpoint. Raises :class:`MetricsServerError` when
    the address cannot be bound.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0..65535, got {port}")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PrometheusCollector(reader, resource_labels=resource_labels))
    try:
        httpd, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", None)):
            hint = (
                "the address is already in use; choose another port (port=0 picks a free one) "
                "or stop the process that listens on it"
            )
        else:
            hint = f"{exc.strerror or exc}; check the host name and that this process may listen on that port"
        raise MetricsServerError(exc.errno, f"cannot serve Prometheus metrics on {host}:{port}: {hint}") from exc
    return MetricsServer(httpd, thread, host)
