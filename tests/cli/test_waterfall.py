"""The waterfall drawn from real SDK spans: tree order, one time axis, chat details, failures, 80 columns."""

from __future__ import annotations

import math

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from crewtrace.cli.spans import SpanRecord
from crewtrace.cli.waterfall import Glyphs, render_waterfall

MS = 1_000_000  # nanoseconds


def spans() -> tuple[SpanRecord, ...]:
    """workflow 0-1000 ms > agent 0-600 > chat 0-400 (ttfc 200 ms, 12 chunks), tool 400-600 (failed)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    t0 = 1_700_000_000_000 * MS
    workflow = tracer.start_span("invoke_workflow crew", start_time=t0)
    agent = tracer.start_span("invoke_agent Writer", set_span_in_context(workflow), start_time=t0)
    chat = tracer.start_span(
        "chat some-provider/a-model-with-a-very-long-name", set_span_in_context(agent), start_time=t0
    )
    chat.set_attributes({"gen_ai.response.time_to_first_chunk": 0.2, "crewtrace.stream.chunk_count": 12})
    chat.end(end_time=t0 + 400 * MS)
    tool = tracer.start_span("execute_tool lookup", set_span_in_context(agent), start_time=t0 + 400 * MS)
    tool.set_attribute("error.type", "ValueError")
    tool.set_status(Status(StatusCode.ERROR))
    tool.end(end_time=t0 + 600 * MS)
    agent.end(end_time=t0 + 600 * MS)
    workflow.end(end_time=t0 + 1000 * MS)
    provider.shutdown()
    return tuple(record for span in exporter.get_finished_spans() if (record := SpanRecord.from_sdk(span)))


def span_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "|" in line]


def test_draws_the_tree_in_start_order_whatever_order_spans_ended_in() -> None:
    lines = span_lines(render_waterfall(reversed(spans())))
    assert [line.split(" |")[0].rstrip() for line in lines] == [
        "invoke_workflow crew",
        "  invoke_agent Writer",
        "    chat some-provider/a-model-w…",
        "    execute_tool lookup",
    ]


def test_bars_share_one_time_axis() -> None:
    bars = [line[line.index("|") + 1 : line.rindex("|")] for line in span_lines(render_waterfall(spans()))]
    width = len(bars[0])
    assert bars[0] == "█" * width
    assert bars[1].rstrip() == "█" * math.ceil(width * 0.6), "the agent covers the first 60 %"
    assert bars[3].index("█") == int(width * 0.4), "the tool starts where the chat ended"


def test_chat_spans_show_the_wait_for_the_first_chunk_ttfc_and_chunk_count() -> None:
    chat = span_lines(render_waterfall(spans()))[2]
    bar = chat[chat.index("|") + 1 : chat.rindex("|")]
    assert bar.startswith("░") and "░█" in bar
    assert chat.endswith("400 ms ttfc 200ms 12 ch")


def test_failures_are_marked_with_their_error_type() -> None:
    assert span_lines(render_waterfall(spans()))[3].endswith("200 ms ✗ ValueError")


def test_fits_80_columns_with_a_header_and_a_legend() -> None:
    text = render_waterfall(spans())
    assert text.startswith("trace ") and "4 spans  1.00 s" in text.splitlines()[0]
    assert "ttfc: time to first chunk" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_ascii_glyphs_where_the_terminal_cannot_print_blocks() -> None:
    glyphs = Glyphs.for_encoding("ascii")
    text = render_waterfall(spans(), glyphs)
    text.encode("ascii")
    assert "x ValueError" in text
    assert Glyphs.for_encoding("utf-8") == Glyphs()


def test_no_spans() -> None:
    assert render_waterfall([]) == "no spans were recorded"
