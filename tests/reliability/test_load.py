"""200 concurrent async streams of 500 chunks each through the bridge.

Real litellm async streaming against the local server: ~100,000 chunks. What must hold:
every chunk delivered once and in order per stream, to the consumer and to listeners;
attribution never crossed (each stream's chunk events carry its own call id and agent, and
their text is its own; each chat span carries its own agent and its own chunk text); the
bridge keeps nothing once the streams end.

Memory is measured on the bridge alone with tracemalloc, by replaying the same load (200
calls open at once, chunks interleaved round-robin) as events: tracemalloc slows the real
run about five-fold (~45 s -> ~210 s here), too slow for the suite.

Measured on this two-core machine: the real run takes ~45 s (~2,200 chunks/s; litellm's
async stream wrapper costs ~450 us per chunk, the bridge and events a few percent of it).
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.support import synthetic
from tests.support.leaks import live_instances
from tests.support.llms import server_llm
from tests.support.metrics import metric_sum
from tests.support.openai_server import FakeOpenAIServer, Reply, last_user_text

from crewtrace.events import EventBus, ExecutionScope, LLMCallStartedEvent, LLMStreamChunkEvent, use_scope
from crewtrace.telemetry import OTelBridge

STREAMS = 200
CHUNKS = 500
TIME_LIMIT = 120.0  # seconds for the real run: ~42 s measured here, ~78 s with one core busy elsewhere
OPEN_STREAM_BOUND = 48 * 1024  # bytes of bridge memory per open 500-chunk stream (peak, tracemalloc)
RETAINED_BOUND = 64 * 1024  # bytes the bridge may keep after all streams ended (label caps and caches)


def stream_name(k: int) -> str:
    return f"s{k:03d}"


def chunk_text(name: str, index: int) -> str:
    return f"{name}:{index} "


def responder(body: dict[str, Any]) -> Reply:
    name = last_user_text(body)  # the prompt is the stream's name: its reply is its own
    return Reply(chunks=[chunk_text(name, i) for i in range(CHUNKS)])


@pytest.fixture
def load_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(responder) as server:
        yield server


@pytest.mark.slow
@pytest.mark.soak
def test_200_concurrent_streams_of_500_chunks_deliver_everything_in_order_never_crossed(
    load_server: FakeOpenAIServer, measure: Callable[[str, object], None]
) -> None:
    bus = EventBus()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=True, bus=bus)
    objects = live_instances()

    agent_of_call: dict[str, str | None] = {}
    chunks_of_call: dict[str, list[tuple[int, str, str | None]]] = defaultdict(list)
    bus.register_handler(LLMCallStartedEvent, lambda s, e: agent_of_call.__setitem__(e.call_id, e.agent_id))
    bus.register_handler(
        LLMStreamChunkEvent, lambda s, e: chunks_of_call[e.call_id].append((e.chunk_index, e.chunk, e.agent_id))
    )
    llm = server_llm(load_server, bus, timeout=120)

    async def one(k: int) -> list[str]:
        scope = ExecutionScope(
            run_id=f"run-{k}",
            crew_name="load",
            task_id=f"task-{k}",
            task_name=f"task {k % 10}",
            agent_id=f"agent-{k:03d}",
            agent_role=f"Agent {k:03d}",
        )
        with use_scope(scope):
            return [piece async for piece in llm.aiter_text(stream_name(k))]

    async def run_all() -> list[list[str]]:
        return await asyncio.gather(*(one(k) for k in range(STREAMS)))

    started = time.perf_counter()
    received = asyncio.run(run_all())
    elapsed = time.perf_counter() - started
    total = STREAMS * CHUNKS
    measure(
        f"{STREAMS} concurrent async streams x {CHUNKS} chunks", f"{elapsed:.1f} s ({total / elapsed:,.0f} chunks/s)"
    )
    assert elapsed < TIME_LIMIT, f"{total:,} chunks took {elapsed:.1f} s"

    # The consumers: each got its own text, complete and in order.
    for k, pieces in enumerate(received):
        assert pieces == [chunk_text(stream_name(k), i) for i in range(CHUNKS)], f"stream {k}"

    # The listeners: once per chunk, in order, with the call's own agent and text.
    assert len(chunks_of_call) == STREAMS
    for call_id, chunks in chunks_of_call.items():
        agent = agent_of_call[call_id]
        assert agent is not None
        name = stream_name(int(agent.removeprefix("agent-")))
        assert [index for index, _, _ in chunks] == list(range(CHUNKS)), f"call {call_id}: lost, repeated or reordered"
        assert all(a == agent for _, _, a in chunks), f"call {call_id}: a chunk carries another agent"
        assert all(text == chunk_text(name, index) for index, text, _ in chunks), f"call {call_id}: foreign text"

    # The bridge: one span per stream, with its own agent, exact count and its own text.
    chats: list[ReadableSpan] = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    assert len(chats) == STREAMS
    for chat in chats:
        agent = str(chat.attributes["gen_ai.agent.id"])
        name = stream_name(int(agent.removeprefix("agent-")))
        events = [e for e in chat.events if e.name == "crewtrace.stream.chunk"]
        assert chat.attributes["crewtrace.stream.chunk_count"] == CHUNKS
        assert sum(e.attributes["crewtrace.chunk.count"] for e in events) == CHUNKS
        text = "".join(str(e.attributes["crewtrace.chunk.text"]) for e in events)
        assert text == "".join(chunk_text(name, i) for i in range(CHUNKS)), f"span of {agent} holds foreign text"
        assert chat.attributes["crewtrace.run.id"] == f"run-{int(agent.removeprefix('agent-'))}"
    assert metric_sum(reader, "crewtrace.stream.chunks") == total
    assert metric_sum(reader, "crewtrace.stream.active") == 0

    # Nothing stays behind.
    assert bridge.open_spans() == ()
    assert not live_instances() - objects, "no per-call bookkeeping survives its call"
    bridge.close()
    tracer_provider.shutdown()
    meter_provider.shutdown()


class _Discard(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@pytest.mark.slow
@pytest.mark.soak
def test_the_bridges_memory_for_200_open_streams_is_bounded_and_released(
    measure: Callable[[str, object], None],
) -> None:
    bus = EventBus()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(_Discard()))
    # Exemplars are the SDK's state (a fixed number per series, replaced as measurements come):
    # off here, so that what is measured is the bridge's.
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()], exemplar_filter=AlwaysOffExemplarFilter())
    bridge = OTelBridge(tracer_provider, meter_provider, bus=bus)

    def base(k: int) -> dict[str, Any]:
        return synthetic.call_fields(
            f"call-{k}",
            run_id=f"run-{k}",
            task_name=f"task {k % 10}",
            agent_id=f"agent-{k}",
            agent_role=f"Agent {k % 50}",
        )

    def replay(calls: int, chunks: int) -> tuple[int, int]:
        """Open ``calls`` streams, interleave their chunks, end them; return (peak over baseline, retained)."""
        gc.collect()
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        bases = [base(k) for k in range(calls)]
        for b in bases:
            bus.emit(None, synthetic.started(b))
        for index in range(chunks):
            for b in bases:
                bus.emit(None, synthetic.chunk(b, index))
        for b in bases:
            bus.emit(None, synthetic.completed(b, chunks))
        del bases
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        return peak - baseline, current - baseline

    # Warm-up with the same load: metric series, exemplar reservoirs, label sets and the dicts' capacity
    # (none of which grows with the number of calls) exist before measuring.
    replay(STREAMS, CHUNKS)
    tracemalloc.start()
    try:
        started = time.perf_counter()
        peak, first = replay(STREAMS, CHUNKS)
        elapsed = time.perf_counter() - started
        _, growth = replay(STREAMS, 100)  # whatever accumulates per call would show again
    finally:
        tracemalloc.stop()
    assert bridge.open_spans() == ()
    per_stream = peak / STREAMS
    measure(
        f"bridge memory, {STREAMS} open streams x {CHUNKS} chunks (tracemalloc, replayed as events)",
        f"peak {peak / 1024:,.0f} KiB ({per_stream / 1024:.1f} KiB per open stream); retained after the streams "
        f"ended {first / 1024:.1f} KiB, then {growth / 1024:.1f} KiB after 200 more; replay took {elapsed:.1f} s",
    )
    assert per_stream < OPEN_STREAM_BOUND, f"{per_stream:,.0f} bytes per open stream"
    assert first < RETAINED_BOUND, f"the bridge kept {first:,} bytes after every stream ended"
    assert growth < RETAINED_BOUND, f"the bridge kept {growth:,} more bytes after 200 more streams ended"
    bridge.close()
    tracer_provider.shutdown()
    meter_provider.shutdown()
