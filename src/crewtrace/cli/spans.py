"""Finished spans as the CLI draws them, whether the SDK handed them over or OTLP brought them.

:class:`SpanRecord` is the one input of the waterfall and the usage table: ``crewtrace demo`` builds
records from the spans its in-memory exporter received (:meth:`SpanRecord.from_sdk`), ``crewtrace
watch`` from the OTLP export requests other processes send it (:func:`spans_from_otlp`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from crewtrace.telemetry import names

__all__ = ["AttributeValue", "SpanRecord", "spans_from_otlp"]

AttributeValue = str | bool | int | float | bytes | None | Sequence[Any] | Mapping[str, Any]
"""An attribute value: a scalar, an array (the SDK's tuples, OTLP's arrays) or OTLP's key-value list."""


@dataclass(frozen=True)
class SpanRecord:
    """One finished span: ids as lowercase hex, times in nanoseconds since the epoch."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    failed: bool = False
    status_message: str = ""
    service: str | None = None

    @property
    def duration_ns(self) -> int:
        return max(self.end_ns - self.start_ns, 0)

    @property
    def error_type(self) -> str | None:
        """``error.type`` of a failed span, else its status message, else ``"error"``; None if it did not fail."""
        if not self.failed:
            return None
        error_type = self.attributes.get(names.ERROR_TYPE)
        return str(error_type) if error_type else (self.status_message or "error")

    def number(self, key: str) -> float | None:
        """A numeric attribute as a float; None if it is missing or not a number."""
        value = self.attributes.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def count(self, key: str) -> int:
        """A whole-number attribute; 0 if it is missing or not an integer."""
        value = self.attributes.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @classmethod
    def from_sdk(cls, span: ReadableSpan) -> SpanRecord | None:
        """The record of an SDK span; None while it has not ended."""
        context = span.context
        if context is None or span.start_time is None or span.end_time is None:
            return None
        service = span.resource.attributes.get(names.SERVICE_NAME)
        return cls(
            trace_id=format(context.trace_id, "032x"),
            span_id=format(context.span_id, "016x"),
            parent_id=format(span.parent.span_id, "016x") if span.parent is not None else None,
            name=span.name,
            start_ns=span.start_time,
            end_ns=span.end_time,
            attributes=dict(span.attributes or {}),
            failed=span.status.status_code is StatusCode.ERROR,
            status_message=span.status.description or "",
            service=str(service) if service is not None else None,
        )


def spans_from_otlp(request: ExportTraceServiceRequest) -> list[SpanRecord]:
    """Every span of one OTLP trace export, with its resource's ``service.name``."""
    records = []
    for resource_spans in request.resource_spans:
        service = _attributes(resource_spans.resource.attributes).get(names.SERVICE_NAME)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                records.append(
                    SpanRecord(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes=_attributes(span.attributes),
                        failed=span.status.code == Status.STATUS_CODE_ERROR,
                        status_message=span.status.message,
                        service=str(service) if service is not None else None,
                    )
                )
    return records


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, AttributeValue]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> AttributeValue:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    decoded: AttributeValue = getattr(value, kind)
    return decoded
