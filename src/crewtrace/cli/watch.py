"""``crewtrace watch``: a local OTLP receiver that draws every trace as it completes.

Any process that exports OTLP to it (crewtrace's crews, a CrewAI application under
``instrument_crewai()``, another language's SDK) shows up as a one-line summary per run, the
trace's waterfall and the table per agent and task; ``--json`` writes one JSON object per trace
instead. Spans of other instrumentations draw like crewtrace's. It is a live view for a developer,
not a trace store: nothing is kept after it exits (Jaeger, from ``crewtrace stack``, keeps history).
When a trace counts as complete: :mod:`crewtrace.cli._traces`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from typing import Any

from crewtrace.cli._errors import EXIT_INTERRUPTED
from crewtrace.cli._otlp_receiver import OTLPReceiver
from crewtrace.cli._traces import CompletedTrace, TraceAssembler
from crewtrace.cli.spans import SpanRecord
from crewtrace.cli.table import UsageTable
from crewtrace.cli.terminal import terminal_width, visible
from crewtrace.cli.waterfall import Glyphs, format_seconds, legend, render_trace
from crewtrace.telemetry import names

__all__ = ["run_watch", "summary_line", "trace_json"]

_MAX_WIDTH = 120
_TICK_S = 0.5  # how long the main thread waits at a time (Ctrl-C is seen at once either way)


def run_watch(args: argparse.Namespace) -> int:
    """Receive and draw until Ctrl-C (exit code 130) or SIGTERM (0); then draw what is still open, and a summary."""
    assembler = TraceAssembler(args.settle)
    receiver = OTLPReceiver(assembler.add, host=args.host, grpc_port=args.grpc_port, http_port=args.http_port)
    receiver.start()
    show = _json_printer() if args.json else _text_printer()
    previous = signal.signal(signal.SIGTERM, _terminate)
    drawn = 0
    try:
        _announce(receiver, args)
        while True:
            for trace in assembler.take_completed(_TICK_S):
                show(trace)
                drawn += not trace.late_spans  # a trace drawn again is the same trace
    except KeyboardInterrupt:
        code, how = EXIT_INTERRUPTED, "interrupted"
    except _Terminated:
        code, how = 0, "stopped"
    finally:
        signal.signal(signal.SIGTERM, previous)
        receiver.stop()
    remaining = assembler.take_all()
    for trace in remaining:
        show(trace)
    still_open = sum(not trace.late_spans for trace in remaining)
    counts = receiver.counts
    ignored = (
        f"; {counts.metrics} metric and {counts.logs} log exports ignored" if counts.metrics or counts.logs else ""
    )
    unfinished = f", {still_open} of them still open" if still_open else ""
    traces = drawn + still_open
    print(
        f"\ncrewtrace watch: {how}; {traces} traces ({counts.spans} spans) received{unfinished}{ignored}",
        file=sys.stderr,
        flush=True,
    )
    return code


class _Terminated(Exception):
    """SIGTERM arrived: stop as cleanly as on Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def _announce(receiver: OTLPReceiver, args: argparse.Namespace) -> None:
    grpc, http = visible(receiver.grpc_address), visible(receiver.http_endpoint)
    print(
        f"crewtrace watch: receiving OTLP on {grpc} (gRPC) and {http} (HTTP); "
        f"Ctrl-C stops\n"
        f"point an application at it: OTEL_EXPORTER_OTLP_ENDPOINT=http://{grpc} "
        f"(or {http} with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)\n"
        "a live view, not a trace store: nothing is kept; for history use Jaeger (crewtrace stack)",
        file=sys.stderr,
        flush=True,
    )
    if not args.json:
        print(legend(Glyphs.for_encoding(sys.stdout.encoding)), flush=True)


def _text_printer() -> Callable[[CompletedTrace], None]:
    glyphs = Glyphs.for_encoding(sys.stdout.encoding)

    def show(trace: CompletedTrace) -> None:
        width = min(terminal_width(), _MAX_WIDTH)
        table = UsageTable.from_spans(trace.spans)
        parts = [f"\n{summary_line(trace, table)}", render_trace(trace.spans, glyphs, width)]
        if table.rows:
            parts.append("\n" + table.render(cost=False))
        print("\n".join(parts), flush=True)

    return show


def _json_printer() -> Callable[[CompletedTrace], None]:
    def show(trace: CompletedTrace) -> None:
        print(json.dumps(trace_json(trace), default=_bytes_as_hex), flush=True)

    return show


def summary_line(trace: CompletedTrace, table: UsageTable) -> str:
    """One line per run: its name and service, outcome, duration, spans, calls and tokens."""
    root = _root(trace)
    total = table.totals()
    start = min(span.start_ns for span in trace.spans)
    duration = max(span.end_ns for span in trace.spans) - start
    failed = [span for span in trace.spans if span.failed]
    if root is not None and root.failed:
        outcome = f"failed ({root.error_type})"
    elif failed:
        outcome = f"ok, {len(failed)} failed span{'s' if len(failed) > 1 else ''}"
    else:
        outcome = "ok"
    name = _run_name(trace)
    service = f" ({root.service})" if root is not None and root.service else ""
    notes = [] if trace.root_received else ["root span not received"]
    if trace.late_spans:
        notes.append(f"drawn again: {trace.late_spans} spans arrived after it was drawn")
    line = (
        f"run {name}{service}: {outcome} in {format_seconds(duration / 1e9)}; {len(trace.spans)} spans, "
        f"{total.calls} LLM calls ({total.failed} failed), {total.tool_calls} tool calls, "
        f"{total.input_tokens} tokens in, {total.output_tokens} out"
    )
    return visible(line + "".join(f" [{note}]" for note in notes))


def trace_json(trace: CompletedTrace) -> dict[str, Any]:
    """The ``--json`` object of one trace: its summary fields, then every span."""
    table = UsageTable.from_spans(trace.spans)
    total = table.totals()
    root = _root(trace)
    start = min(span.start_ns for span in trace.spans)
    end = max(span.end_ns for span in trace.spans)
    return {
        "trace_id": trace.trace_id,
        "name": _run_name(trace),
        "service": root.service if root is not None else None,
        "status": "error" if root is not None and root.failed else "ok",
        "error_type": root.error_type if root is not None else None,
        "root_received": trace.root_received,
        "late_spans": trace.late_spans,
        "start_time_unix_nano": start,
        "duration_s": (end - start) / 1e9,
        "span_count": len(trace.spans),
        "failed_spans": sum(span.failed for span in trace.spans),
        "llm_calls": total.calls,
        "failed_llm_calls": total.failed,
        "tool_calls": total.tool_calls,
        "input_tokens": total.input_tokens,
        "output_tokens": total.output_tokens,
        "spans": [_span_json(span) for span in sorted(trace.spans, key=lambda span: span.start_ns)],
    }


def _span_json(span: SpanRecord) -> dict[str, Any]:
    return {
        "name": span.name,
        "span_id": span.span_id,
        "parent_span_id": span.parent_id,
        "service": span.service,
        "start_time_unix_nano": span.start_ns,
        "end_time_unix_nano": span.end_ns,
        "duration_s": span.duration_ns / 1e9,
        "status": "error" if span.failed else "ok",
        "error_type": span.error_type,
        "attributes": dict(span.attributes),
    }


def _root(trace: CompletedTrace) -> SpanRecord | None:
    return next((span for span in trace.spans if span.parent_id is None), None)


def _run_name(trace: CompletedTrace) -> str:
    root = _root(trace) or min(trace.spans, key=lambda span: span.start_ns)
    workflow = root.attributes.get(names.WORKFLOW_NAME)
    return str(workflow) if isinstance(workflow, str) and workflow else root.name


def _bytes_as_hex(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
