"""Reading metric points from an SDK ``InMemoryMetricReader``.

Each call is one collection: the SDK hands out a point's exemplars once per collection, so read all
instruments at once (:func:`points_by_name`) where exemplars matter for more than one of them.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader


def points_by_name(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """One collection: every data point, over all resources, scopes and series, by instrument name."""
    data = reader.get_metrics_data()
    points: dict[str, list[Any]] = {}
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


def metric_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    """Every data point of metric ``name`` the reader collects now."""
    return points_by_name(reader).get(name, [])


def metric_sum(reader: InMemoryMetricReader, name: str) -> float:
    """Sum of a counter or up-down counter over all its series (0 when never recorded)."""
    return float(sum(point.value for point in metric_points(reader, name)))
