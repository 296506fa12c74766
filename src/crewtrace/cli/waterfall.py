"""A text waterfall of finished OpenTelemetry spans: the span tree, with bars on one shared time axis.

The demo draws it from the spans its in-memory exporter received, so what it shows is what Jaeger
would show: names, nesting, timing, time to first chunk and chunk counts on chat spans, and
failures. It fits 80 columns.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from crewtrace.telemetry import names

__all__ = ["Glyphs", "format_seconds", "render_waterfall"]

WIDTH = 80
_LABEL = 33
_DURATION = 8
_NOTE = 21  # room for "✗ InternalServerError"
_BAR = WIDTH - _LABEL - 1 - 2 - _DURATION - 1 - _NOTE  # label, space, bar in |...|, duration, space, note


@dataclass(frozen=True)
class Glyphs:
    """Characters for the bars; ASCII ones for terminals that cannot print block elements."""

    busy: str = "█"
    waiting: str = "░"
    failed: str = "✗"
    ellipsis: str = "…"

    @classmethod
    def for_encoding(cls, encoding: str | None) -> Glyphs:
        try:
            "█░✗…".encode(encoding or "ascii")
        except (UnicodeEncodeError, LookupError):
            return cls(busy="#", waiting="-", failed="x", ellipsis="~")
        return cls()


def render_waterfall(spans: Iterable[ReadableSpan], glyphs: Glyphs | None = None) -> str:
    """One block per trace: a header line, one line per span (children by start time), and a legend."""
    glyphs = glyphs or Glyphs()
    traces: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        if span.context is not None and span.start_time is not None and span.end_time is not None:
            traces[span.context.trace_id].append(span)
    blocks = [_trace(trace_spans, glyphs) for trace_spans in sorted(traces.values(), key=_trace_start)]
    if not blocks:
        return "no spans were recorded"
    legend = (
        f"{glyphs.waiting} waiting for the first chunk   {glyphs.busy} running   {glyphs.failed} failed (error.type)\n"
        "ttfc: time to first chunk   ch: chunks streamed"
    )
    return "\n\n".join([*blocks, legend])


def _trace_start(spans: Sequence[ReadableSpan]) -> int:
    return min(_start(span) for span in spans)


def _trace(spans: Sequence[ReadableSpan], glyphs: Glyphs) -> str:
    ids = {_span_id(span) for span in spans}
    children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        children[parent if parent in ids else None].append(span)
    start = min(_start(span) for span in spans)
    end = max(_end(span) for span in spans)
    total = max(end - start, 1)
    trace_id = format(spans[0].context.trace_id if spans[0].context else 0, "032x")
    lines = [f"trace {trace_id}  {len(spans)} spans  {_duration(total)}"]

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=_start):
            lines.append(_line(span, depth, start, total, glyphs))
            walk(_span_id(span), depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def _line(span: ReadableSpan, depth: int, origin: int, total: int, glyphs: Glyphs) -> str:
    label = _clip("  " * depth + span.name, _LABEL, glyphs)
    first = math.floor((_start(span) - origin) / total * _BAR)
    last = max(math.ceil((_end(span) - origin) / total * _BAR), first + 1)
    first = min(first, _BAR - 1)
    last = min(last, _BAR)
    attributes = span.attributes or {}
    ttfc = attributes.get(names.RESPONSE_TIME_TO_FIRST_CHUNK)
    waiting_cells = 0
    if isinstance(ttfc, (int, float)):
        # At least one cell of waiting whenever the bar has room for both parts, so it always shows.
        waiting_cells = min(max(round(ttfc * 1e9 / total * _BAR), 1), last - first - 1)
    cells = [" "] * _BAR
    for cell in range(first, last):
        cells[cell] = glyphs.waiting if cell - first < waiting_cells else glyphs.busy
    note = _note(span, glyphs)
    row = f"{label:<{_LABEL}} |{''.join(cells)}|{_duration(_end(span) - _start(span)):>{_DURATION}} {note}"
    return row.rstrip()


def _note(span: ReadableSpan, glyphs: Glyphs) -> str:
    attributes = span.attributes or {}
    if span.status.status_code is StatusCode.ERROR:
        return _clip(f"{glyphs.failed} {attributes.get(names.ERROR_TYPE, 'error')}", _NOTE, glyphs)
    parts = []
    ttfc = attributes.get(names.RESPONSE_TIME_TO_FIRST_CHUNK)
    if isinstance(ttfc, (int, float)):
        parts.append(f"ttfc {_duration(round(ttfc * 1e9), compact=True)}")
    chunks = attributes.get(names.STREAM_CHUNK_COUNT)
    if isinstance(chunks, int):
        parts.append(f"{chunks} ch")
    return _clip(" ".join(parts), _NOTE, glyphs)


def _clip(text: str, width: int, glyphs: Glyphs) -> str:
    return text if len(text) <= width else text[: width - 1] + glyphs.ellipsis


def _duration(nanoseconds: int, *, compact: bool = False) -> str:
    return format_seconds(nanoseconds / 1e9, compact=compact)


def format_seconds(seconds: float, *, compact: bool = False) -> str:
    """``1.45 s`` from one second on, ``434 ms`` below (``compact``: no space)."""
    separator = "" if compact else " "
    if seconds >= 10:
        return f"{seconds:.0f}{separator}s"
    if seconds >= 1:
        return f"{seconds:.2f}{separator}s"
    return f"{seconds * 1000:.0f}{separator}ms"


def _start(span: ReadableSpan) -> int:
    return span.start_time or 0


def _end(span: ReadableSpan) -> int:
    return span.end_time or 0


def _span_id(span: ReadableSpan) -> int:
    return span.context.span_id if span.context is not None else 0
