"""Decoding of OTLP export requests into plain, assertable Python values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

TraceRequest = trace_service_pb2.ExportTraceServiceRequest
MetricsRequest = metrics_service_pb2.ExportMetricsServiceRequest
LogsRequest = logs_service_pb2.ExportLogsServiceRequest


class ReceivedEvent(NamedTuple):
    """A span event; unpacks as (name, attributes, time_unix_nano)."""

    name: str
    attributes: dict[str, Any]
    time_unix_nano: int


@dataclass(frozen=True)
class ReceivedSpan:
    """A span as exported; `kind`/`status_code` are enum names ("CLIENT", "ERROR")."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str
    attributes: dict[str, Any]
    events: list[ReceivedEvent]
    status_code: str
    status_message: str
    resource: dict[str, Any]
    scope: str
    start_time_unix_nano: int
    end_time_unix_nano: int


@dataclass(frozen=True)
class ReceivedLog:
    """A log record as exported (ids hex, None when unset)."""

    body: Any
    severity_text: str
    severity_number: int
    attributes: dict[str, Any]
    trace_id: str | None
    span_id: str | None
    resource: dict[str, Any]
    event_name: str = ""


def any_value(value: AnyValue) -> Any:
    """Decode an OTLP AnyValue to plain Python (str/int/float/bool/bytes/list/dict/None)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, which)


def attributes(kvs: Any) -> dict[str, Any]:
    """Decode a repeated KeyValue field."""
    pairs: list[KeyValue] = list(kvs)
    return {kv.key: any_value(kv.value) for kv in pairs}


def _hex(raw: bytes) -> str | None:
    return raw.hex() if raw else None


def decode_spans(request: TraceRequest) -> list[ReceivedSpan]:
    spans: list[ReceivedSpan] = []
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=_hex(span.parent_span_id),
                        kind=trace_pb2.Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                        attributes=attributes(span.attributes),
                        events=[ReceivedEvent(e.name, attributes(e.attributes), e.time_unix_nano) for e in span.events],
                        status_code=trace_pb2.Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
                        status_message=span.status.message,
                        resource=resource,
                        scope=ss.scope.name,
                        start_time_unix_nano=span.start_time_unix_nano,
                        end_time_unix_nano=span.end_time_unix_nano,
                    )
                )
    return spans


def _exemplars(point: Any) -> list[dict[str, Any]]:
    return [
        {
            "value": e.as_int if e.WhichOneof("value") == "as_int" else e.as_double,
            "trace_id": _hex(e.trace_id),
            "span_id": _hex(e.span_id),
            "attributes": attributes(e.filtered_attributes),
            "time_unix_nano": e.time_unix_nano,
        }
        for e in point.exemplars
    ]


def _point(kind: str, metric: metrics_pb2.Metric, point: Any) -> dict[str, Any]:
    """One data point as a dict; keys depend on the metric type (see metric_points)."""
    out: dict[str, Any] = {
        "type": kind,
        "unit": metric.unit,
        "attributes": attributes(point.attributes),
        "time_unix_nano": point.time_unix_nano,
        "exemplars": _exemplars(point) if kind != "summary" else [],
    }
    if kind in ("gauge", "sum"):
        out["value"] = point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
    else:
        out["count"] = point.count
        out["sum"] = point.sum
    if kind == "sum":
        out["is_monotonic"] = metric.sum.is_monotonic
    elif kind == "histogram":
        out["bucket_counts"] = list(point.bucket_counts)
        out["explicit_bounds"] = list(point.explicit_bounds)
        out["min"] = point.min if point.HasField("min") else None
        out["max"] = point.max if point.HasField("max") else None
    elif kind == "exponential_histogram":
        out["scale"] = point.scale
        out["zero_count"] = point.zero_count
        out["positive"] = (point.positive.offset, list(point.positive.bucket_counts))
        out["negative"] = (point.negative.offset, list(point.negative.bucket_counts))
    elif kind == "summary":
        out["quantiles"] = [(q.quantile, q.value) for q in point.quantile_values]
    return out


def decode_metric_points(request: MetricsRequest, name: str) -> list[dict[str, Any]]:
    """Data points of metric `name` in one export (see `_point` for the keys)."""
    points: list[dict[str, Any]] = []
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    kind = metric.WhichOneof("data")
                    points.extend(_point(kind, metric, p) for p in getattr(metric, kind).data_points)
    return points


def decode_metric_names(request: MetricsRequest) -> set[str]:
    return {m.name for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def decode_logs(request: LogsRequest) -> list[ReceivedLog]:
    records: list[ReceivedLog] = []
    for rl in request.resource_logs:
        resource = attributes(rl.resource.attributes)
        for sl in rl.scope_logs:
            records.extend(
                ReceivedLog(
                    any_value(r.body),
                    r.severity_text,
                    r.severity_number,
                    attributes(r.attributes),
                    _hex(r.trace_id),
                    _hex(r.span_id),
                    resource,
                    r.event_name,
                )
                for r in sl.log_records
            )
    return records
