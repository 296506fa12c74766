"""A pull ``MetricReader`` for the ``/metrics`` endpoint, keeping exemplars between scrapes."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from opentelemetry.sdk.metrics import Exemplar as OtelExemplar
from opentelemetry.sdk.metrics.export import (
    CardinalityLimits,
    HistogramDataPoint,
    MetricReader,
    MetricsData,
)
from opentelemetry.semconv._incubating.attributes.otel_attributes import OtelComponentTypeValues

__all__ = ["PrometheusReader"]


class PrometheusReader(MetricReader):
    """Pull reader: collects only when asked (each scrape), cumulative as Prometheus expects.

    The SDK empties its exemplar reservoirs at every collection, so a scrape that
    cannot show exemplars (plain text) would lose them for the next one that can:
    the reader keeps each series' latest exemplar (per histogram bucket) until a
    newer one replaces it.
    """

    def __init__(self, *, cardinality_limits: CardinalityLimits | None = None) -> None:
        # No preferred_temporality: a MetricReader's default is CUMULATIVE for every instrument
        # class, which is what Prometheus needs (and naming the classes takes the SDK's private _Gauge).
        super().__init__(
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
        previous: dict[tuple[Any, ...], list[OtelExemplar]] = self._exemplars
        kept: dict[tuple[Any, ...], list[OtelExemplar]] = {}
        resources = []
        for rm in data.resource_metrics:
            scopes = []
            for sm in rm.scope_metrics:
                metrics = []
                for metric in sm.metrics:
                    points: list[Any] = []
                    for point in metric.data.data_points:
                        key = (sm.scope.name, sm.scope.version, metric.name, _attributes_key(point.attributes))
                        exemplars = _merge_exemplars(previous.get(key, []), point.exemplars, point)
                        if exemplars:
                            kept[key] = exemplars
                        points.append(replace(point, exemplars=exemplars))
                    data_with_exemplars: Any = replace(metric.data, data_points=points)  # type: ignore[arg-type]
                    metrics.append(replace(metric, data=data_with_exemplars))
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
