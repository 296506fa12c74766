"""A prometheus_client collector that turns one SDK collection per scrape into metric families.

Why not ``opentelemetry-exporter-prometheus``: it never exports exemplars, and the
exemplar (trace id of a slow call, on the histogram bucket it landed in) is what
links a Grafana latency panel to the Jaeger trace. Exemplars are only written in
the OpenMetrics format, which prometheus_client serves when the scraper sends
``Accept: application/openmetrics-text``.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import Exemplar as OtelExemplar
from opentelemetry.sdk.metrics.export import Gauge, HistogramDataPoint, NumberDataPoint, Sum
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.metrics.export import Metric as OtelMetric
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import format_span_id, format_trace_id
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from crewtrace.telemetry._attributes import clean
from crewtrace.telemetry._prometheus_names import labels, metric_name, unit_suffix
from crewtrace.telemetry._prometheus_reader import PrometheusReader

__all__ = ["DEFAULT_RESOURCE_LABELS", "PrometheusCollector"]

_logger = logging.getLogger("crewtrace.telemetry")

DEFAULT_RESOURCE_LABELS: tuple[str, ...] = ("service.name",)

_Bucket = tuple[str, float] | tuple[str, float, Exemplar]
# Bucket bounds as Prometheus writes them (Go's float formatting); prometheus_client leaves it untyped.
_go_float: Callable[[float], str] = floatToGoString


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
        family: Metric
        if self.kind == "histogram":
            histogram = HistogramMetricFamily(self.name, self.documentation, labels=names, unit=self.unit)
            for labels_, (buckets, total) in self.series:
                histogram.add_metric([labels_.get(n, "") for n in names], buckets, total)
            family = histogram
        elif self.kind == "counter":
            counter = CounterMetricFamily(self.name, self.documentation, labels=names, unit=self.unit)
            for labels_, (value, exemplar) in self.series:
                counter.add_metric([labels_.get(n, "") for n in names], value, exemplar=exemplar)
            family = counter
        else:
            gauge = GaugeMetricFamily(self.name, self.documentation, labels=names, unit=self.unit)
            for labels_, value in self.series:
                gauge.add_metric([labels_.get(n, "") for n in names], value)
            family = gauge
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
        le = _go_float(point.explicit_bounds[index]) if index < len(point.explicit_bounds) else "+Inf"
        exemplar = _exemplar(per_bucket[index]) if index in per_bucket else None
        buckets.append((le, cumulative, exemplar) if exemplar else (le, cumulative))
    return buckets


class PrometheusCollector(Collector):
    """prometheus_client collector: one SDK collection per scrape, translated to families.

    ``resource_labels`` are resource attribute keys copied onto every series (Prometheus
    joins ``target_info`` only on request, and dashboards want ``service_name`` directly).
    ``resource`` (the meter provider's) gives ``target_info`` before anything was recorded.
    Like prometheus_client's own metrics, it registers itself in ``registry`` when given one.
    """

    def __init__(
        self,
        reader: PrometheusReader,
        *,
        resource_labels: Sequence[str] = DEFAULT_RESOURCE_LABELS,
        registry: CollectorRegistry | None = None,
        resource: Resource | None = None,
    ) -> None:
        self._reader = reader
        self._resource_labels = tuple(resource_labels)
        self._resource = resource
        self._warned: set[str] = set()
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterator[Metric]:
        """What registering checks for clashes, without an SDK collection: ``target_info``.

        Every collector over an SDK reader writes ``target_info`` and the same instrument
        families, so a second one in the same registry (or a registry with its own target
        info) is refused at ``register`` instead of writing a page Prometheus rejects.
        """
        yield InfoMetricFamily("target", "Target metadata", labels=[])

    def collect(self) -> Iterator[Metric]:
        data = self._reader.collect_metrics()
        families: dict[str, _Family] = {}
        target = labels(self._resource.attributes) if self._resource is not None else {}
        for resource_metrics in data.resource_metrics if data is not None else ():
            resource = resource_metrics.resource.attributes
            target.update(labels(resource))
            copied = labels({k: resource[k] for k in self._resource_labels if k in resource})
            for scope_metrics in resource_metrics.scope_metrics:
                scope = scope_metrics.scope
                base = {**copied, "otel_scope_name": clean(scope.name)}
                if scope.version:
                    base["otel_scope_version"] = clean(scope.version)
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
        name, unit = metric_name(metric.name), unit_suffix(metric.unit or "")
        if kind == "counter" and name.endswith("_total"):
            name = name[: -len("_total")]  # prometheus_client adds it back after the unit
        key = name if not unit or name.endswith("_" + unit) else f"{name}_{unit}"
        family = families.get(key)
        if family is None:
            # HELP names the OpenTelemetry instrument when it has no description (promtool wants HELP).
            help_text = metric.description or f"OpenTelemetry {metric.name} ({metric.unit or 'no unit'})"
            family = families[key] = _Family(kind, name, unit, clean(help_text))
        elif family.kind != kind:
            self._warn_once(key, f"{metric.name} is a {kind} but {key} is already a {family.kind}: skipped")
            return
        for point in data.data_points:
            series = {**base, **labels(point.attributes)}
            if isinstance(point, HistogramDataPoint):
                family.series.append((series, (_histogram_buckets(point), point.sum)))
            elif isinstance(point, NumberDataPoint):
                value = (point.value, _latest_exemplar(point.exemplars)) if kind == "counter" else point.value
                family.series.append((series, value))

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _logger.warning(message)
