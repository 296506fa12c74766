"""Long streams keep the span within its event limit, exact, and bounded in memory.

A real 100,000-chunk stream through litellm takes ~45 s here async (~440 us per chunk in
litellm's stream wrapper; ~70 s sync), too slow for the suite. So: a real 10,000-chunk
stream (async, ~4-5 s) for the end-to-end part, and 100,000 chunk events fed straight into the bus
(what the LLM layer would emit) for the bridge's limits and memory, measured with tracemalloc.

Covered elsewhere, not repeated in full: 100,000 synthetic chunks stay within 64 events with
the first and last kept (tests/telemetry/test_bridge.py).

The bridge's memory per stream must not depend on the stream's length: the chunk gaps for
``time_per_output_chunk`` are recorded in batches, not kept until the end (they used to be:
8 bytes a chunk, ~0.8 MB per 100,000 chunks).
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.support.llms import MakeLLM
from tests.support.openai_server import FakeOpenAIServer, Reply, numbered_chunks
from tests.support.pipeline import Pipeline
from tests.support.synthetic import emit_call

from crewtrace.events import EventBus
from crewtrace.telemetry import OTelBridge

REAL_CHUNKS = 10_000
LONG = 100_000
MAX_EVENTS = 64  # OTelBridge's default max_chunk_events
PEAK_BOUND = 512 * 1024  # bytes: bridge peak for one 100,000-chunk stream (~220 KiB measured)
PER_CHUNK_BOUND = 16  # bytes per chunk of growth between a 10,000- and a 100,000-chunk stream


def assert_span_is_exact(chat: ReadableSpan, chunks: int) -> None:
    events = [e for e in chat.events if e.name == "crewtrace.stream.chunk"]
    assert chat.dropped_events == 0, "no chunk event was evicted by the SDK's span event limit"
    assert 3 <= len(events) <= MAX_EVENTS
    first, last = events[0].attributes, events[-1].attributes
    assert (first["crewtrace.chunk.index"], first["crewtrace.chunk.count"]) == (0, 1), "the first chunk has its event"
    assert (last["crewtrace.chunk.index"], last["crewtrace.chunk.count"]) == (chunks - 1, 1), "so has the last"
    indexes = [e.attributes["crewtrace.chunk.index"] for e in events]
    counts = [e.attributes["crewtrace.chunk.count"] for e in events]
    assert all(i + c == j for i, c, j in zip(indexes, counts, indexes[1:], strict=False)), "groups are contiguous"
    assert sum(counts) == chunks
    assert chat.attributes["crewtrace.stream.chunk_count"] == chunks


@pytest.mark.slow
def test_a_real_10000_chunk_stream_is_counted_exactly_within_the_event_limit(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline, measure: Callable[[str, object], None]
) -> None:
    chunks = numbered_chunks(REAL_CHUNKS)
    server.queue(Reply(chunks=chunks))
    llm = make_llm(timeout=120)

    async def consume() -> list[str]:
        return [piece async for piece in llm.aiter_text("long")]

    started = time.perf_counter()
    received = asyncio.run(consume())
    elapsed = time.perf_counter() - started
    measure(
        f"real async stream of {REAL_CHUNKS:,} chunks through litellm and the bridge",
        f"{elapsed:.1f} s ({elapsed / REAL_CHUNKS * 1e6:.0f} us per chunk)",
    )

    assert received == chunks, "every chunk, in order"
    (chat,) = pipeline.chat_spans()
    assert_span_is_exact(chat, REAL_CHUNKS)
    assert pipeline.value("crewtrace.stream.chunks") == REAL_CHUNKS
    (gaps,) = pipeline.points("gen_ai.client.operation.time_per_output_chunk")
    assert gaps.count == REAL_CHUNKS - 1, "one point per chunk after the first"
    assert pipeline.bridge.open_spans() == ()


@dataclass(frozen=True)
class StreamMemory:
    chunks: int
    peak: int  # bytes over the baseline while the stream ran (tracemalloc)
    retained: int  # bytes over the baseline once it ended
    seconds: float
    span: ReadableSpan


@pytest.fixture(scope="module")
def long_stream_memory() -> Iterator[dict[int, StreamMemory]]:
    """The bridge alone, fed one stream of 10,000 and one of 100,000 chunk events under tracemalloc."""
    bus = EventBus()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()], exemplar_filter=AlwaysOffExemplarFilter())
    bridge = OTelBridge(tracer_provider, meter_provider, bus=bus)
    emit_call(bus, "warm-up", chunks=1_000, agent_role="A", task_name="T")
    results: dict[int, StreamMemory] = {}
    tracemalloc.start()
    try:
        for chunks in (REAL_CHUNKS, LONG):
            spans.clear()
            gc.collect()
            baseline = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            started = time.perf_counter()
            emit_call(bus, f"stream-{chunks}", chunks=chunks, agent_role="A", task_name="T")
            seconds = time.perf_counter() - started
            (span,) = spans.get_finished_spans()
            spans.clear()
            gc.collect()
            current, peak = tracemalloc.get_traced_memory()
            results[chunks] = StreamMemory(chunks, peak - baseline, current - baseline, seconds, span)
    finally:
        tracemalloc.stop()
    assert bridge.open_spans() == ()
    yield results
    bridge.close()
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.mark.slow
@pytest.mark.soak
def test_a_100000_chunk_stream_uses_bounded_memory_and_keeps_first_and_last(
    long_stream_memory: dict[int, StreamMemory], measure: Callable[[str, object], None]
) -> None:
    short, long = long_stream_memory[REAL_CHUNKS], long_stream_memory[LONG]
    assert_span_is_exact(long.span, LONG)
    per_chunk = (long.peak - short.peak) / (LONG - REAL_CHUNKS)
    measure(
        "bridge peak memory for one stream of 10,000 / 100,000 chunk events (tracemalloc)",
        f"{short.peak / 1024:,.0f} KiB / {long.peak / 1024:,.0f} KiB ({per_chunk:.1f} bytes per extra chunk); "
        f"retained after the end {long.retained / 1024:.1f} KiB; 100,000 events took {long.seconds:.1f} s traced",
    )
    assert long.peak < PEAK_BOUND, f"{long.peak:,} bytes for one 100,000-chunk stream"
    assert per_chunk < PER_CHUNK_BOUND, f"{per_chunk:.1f} bytes per chunk: chunk events or texts are being kept"
    assert long.retained < 64 * 1024, f"the bridge kept {long.retained:,} bytes after the stream ended"


@pytest.mark.slow
@pytest.mark.soak
def test_the_bridges_memory_per_stream_does_not_grow_with_its_length(
    long_stream_memory: dict[int, StreamMemory],
) -> None:
    """Bounded, whatever the length: 10 times the chunks, about the same peak."""
    short, long = long_stream_memory[REAL_CHUNKS], long_stream_memory[LONG]
    assert long.peak - short.peak < 64 * 1024, (
        f"10,000 chunks: {short.peak:,} bytes; 100,000 chunks: {long.peak:,} bytes"
    )
