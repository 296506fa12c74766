"""A text waterfall of finished spans: the span tree, with bars on one shared time axis.

``crewtrace demo`` draws it from the spans its in-memory exporter received, ``crewtrace watch`` from
the spans other processes export to it, so what it shows is what Jaeger would show: names, nesting,
timing, time to first chunk and chunk counts on chat spans, and failures. Spans of any
instrumentation draw the same way; unknown names are just names. It fits 80 columns, and uses
whatever width more it is given for the bars. Names are printed with their control characters made
visible (:func:`crewtrace.cli.terminal.clip`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from crewtrace.cli.spans import SpanRecord
from crewtrace.cli.terminal import DEFAULT_WIDTH, clip, text_width
from crewtrace.telemetry import names

__all__ = ["Glyphs", "format_seconds", "legend", "render_trace", "render_waterfall"]

_LABEL = 33
_DURATION = 8
_NOTE = 21  # room for "✗ InternalServerError"
_MAX_INDENT = 12  # levels; deeper spans line up at the deepest, so their names keep some room
_FIXED = _LABEL + 1 + 2 + _DURATION + 1 + _NOTE  # label, space, bar in |...|, duration, space, note


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


def render_waterfall(spans: Iterable[SpanRecord], glyphs: Glyphs | None = None, width: int = DEFAULT_WIDTH) -> str:
    """One block per trace (:func:`render_trace`), oldest first, then the legend."""
    glyphs = glyphs or Glyphs()
    traces: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    blocks = [render_trace(trace, glyphs, width) for trace in sorted(traces.values(), key=_trace_start)]
    if not blocks:
        return "no spans were recorded"
    return "\n\n".join([*blocks, legend(glyphs)])


def legend(glyphs: Glyphs) -> str:
    return (
        f"{glyphs.waiting} waiting for the first chunk   {glyphs.busy} running   {glyphs.failed} failed (error.type)\n"
        "ttfc: time to first chunk   ch: chunks streamed"
    )


def render_trace(spans: Sequence[SpanRecord], glyphs: Glyphs | None = None, width: int = DEFAULT_WIDTH) -> str:
    """A header line, then one line per span: parents before children, siblings by start time.

    A span whose parent is not among ``spans`` (it lives in another process, or has not arrived)
    is drawn at the top level, as is one caught in a cycle of parents. ``width`` below 80 is taken as 80.
    """
    glyphs = glyphs or Glyphs()
    bar = max(width, DEFAULT_WIDTH) - _FIXED
    ids = {span.span_id for span in spans}
    children: dict[str | None, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        children[span.parent_id if span.parent_id in ids else None].append(span)
    start = _trace_start(spans)
    total = max(max(span.end_ns for span in spans) - start, 1)
    lines = [f"trace {spans[0].trace_id}  {len(spans)} spans  {_duration(total)}"]

    drawn: set[int] = set()
    # Depth first, iteratively (a trace may nest deeper than Python recurses); a span in a parent cycle,
    # which no walk from the top reaches, is drawn at the top level after the rest.
    pending = [(span, 0) for span in _by_start(children.get(None, []), reverse=True)]
    unreached = _by_start(spans, reverse=True)
    while pending or unreached:
        span, depth = pending.pop() if pending else (unreached.pop(), 0)
        if id(span) in drawn:
            continue
        drawn.add(id(span))
        lines.append(_line(span, depth, start, total, bar, glyphs))
        pending += [(child, depth + 1) for child in _by_start(children.get(span.span_id, []), reverse=True)]
    return "\n".join(lines)


def _by_start(spans: Sequence[SpanRecord], *, reverse: bool = False) -> list[SpanRecord]:
    return sorted(spans, key=lambda span: span.start_ns, reverse=reverse)


def _line(span: SpanRecord, depth: int, origin: int, total: int, bar: int, glyphs: Glyphs) -> str:
    indent = "  " * min(depth, _MAX_INDENT)
    label = indent + clip(span.name, _LABEL - len(indent), glyphs.ellipsis)
    first = math.floor((span.start_ns - origin) / total * bar)
    last = max(math.ceil((span.end_ns - origin) / total * bar), first + 1)
    first = min(first, bar - 1)
    last = min(last, bar)
    ttfc = span.number(names.RESPONSE_TIME_TO_FIRST_CHUNK)
    waiting_cells = 0
    if ttfc is not None:
        # At least one cell of waiting whenever the bar has room for both parts, so it always shows.
        waiting_cells = min(max(round(ttfc * 1e9 / total * bar), 1), last - first - 1)
    elif span.attributes.get(names.REQUEST_STREAM) is True:  # a stream that ended before its first chunk
        waiting_cells = last - first
    cells = [" "] * bar
    for cell in range(first, last):
        cells[cell] = glyphs.waiting if cell - first < waiting_cells else glyphs.busy
    padding = " " * max(_LABEL - text_width(label), 0)
    row = f"{label}{padding} |{''.join(cells)}|{_duration(span.duration_ns):>{_DURATION}} {_note(span, glyphs)}"
    return row.rstrip()


def _note(span: SpanRecord, glyphs: Glyphs) -> str:
    error_type = span.error_type
    if error_type is not None:
        return f"{glyphs.failed} {clip(error_type, _NOTE - 2, glyphs.ellipsis)}"
    parts = []
    ttfc = span.number(names.RESPONSE_TIME_TO_FIRST_CHUNK)
    if ttfc is not None:
        parts.append(f"ttfc {_duration(round(ttfc * 1e9), compact=True)}")
    if names.STREAM_CHUNK_COUNT in span.attributes:
        parts.append(f"{span.count(names.STREAM_CHUNK_COUNT)} ch")
    return " ".join(parts)


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


def _trace_start(spans: Sequence[SpanRecord]) -> int:
    return min(span.start_ns for span in spans)
