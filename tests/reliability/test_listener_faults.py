"""Listeners that raise, are slow, or change the registrations while handling.

Real streams from the local server through ``LLM.stream`` with the bridge attached. What
must hold: the consumer gets every chunk, complete and in order; the bridge still records
everything (a span with the exact chunk count and one chunk event per chunk); a raising
handler is logged and skipped. The cost of a slow *synchronous* handler is paid by the
stream it listens to (handlers run inline, in order): measured here. A coroutine handler
runs on the bus's loop thread, off the hot path, and ``bus.flush()`` waits for it.

Covered elsewhere, not repeated: the bus's own rules (order, base-class handlers, a raising
handler logged by name, off/on during a synthetic emit, async order and flush timeouts) in
tests/events/test_bus.py; a raising user listener next to the bridge on ``call`` in
tests/telemetry/test_bridge.py.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.support.leaks import open_state
from tests.support.llms import MakeLLM
from tests.support.openai_server import FakeOpenAIServer, Reply
from tests.support.pipeline import Pipeline

from crewtrace.events import EventBus, LLMCallCompletedEvent, LLMEvent, LLMStreamChunkEvent
from crewtrace.telemetry import OTelBridge

CHUNKS = ["one ", "two ", "three ", "four ", "five"]
HANDLER_DELAY = 0.1  # seconds per chunk for the slow handlers


def assert_bridge_recorded_every_chunk(pipeline: Pipeline, chunks: int = len(CHUNKS)) -> None:
    (chat,) = pipeline.chat_spans()
    assert chat.attributes["crewtrace.stream.chunk_count"] == chunks
    events = [e for e in chat.events if e.name == "crewtrace.stream.chunk"]
    assert [e.attributes["crewtrace.chunk.index"] for e in events] == list(range(chunks))
    assert all(e.attributes["crewtrace.chunk.count"] == 1 for e in events)
    assert "error.type" not in chat.attributes
    assert all(n == 0 for n in open_state(pipeline.bridge).values())
    assert pipeline.value("crewtrace.stream.active") == 0


def consume(make_llm: MakeLLM) -> tuple[list[str], float]:
    started = time.perf_counter()
    pieces = list(make_llm().iter_text("count to five"))
    return pieces, time.perf_counter() - started


@pytest.mark.parametrize("position", ["before the bridge", "after the bridge"])
def test_a_handler_raising_on_every_event_changes_nothing_for_the_stream_or_the_bridge(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    bus: EventBus,
    pipeline: Pipeline,
    caplog: pytest.LogCaptureFixture,
    position: str,
) -> None:
    def broken_listener(source: Any, event: Any) -> None:
        raise RuntimeError(f"listener bug on {event.type}")

    if position == "before the bridge":
        # A new bridge registered after the broken listener, so the broken one runs first.
        pipeline.bridge.close()
        bus.register_handler(LLMEvent, broken_listener)
        pipeline.bridge = OTelBridge(pipeline.tracer_provider, pipeline.meter_provider, capture_content=False, bus=bus)
    else:
        bus.register_handler(LLMEvent, broken_listener)
    server.queue(Reply(chunks=CHUNKS))

    with caplog.at_level(logging.ERROR, logger="crewtrace.events"):
        pieces, _ = consume(make_llm)

    assert pieces == CHUNKS
    assert_bridge_recorded_every_chunk(pipeline)
    failures = [r for r in caplog.records if r.name == "crewtrace.events"]
    # started + 5 chunks + completed fail alike: the first with its traceback, then a count, not 7 tracebacks.
    assert [bool(r.exc_info) for r in failures] == [True, False]
    assert all("broken_listener" in r.getMessage() for r in failures)
    assert "has failed 2 times with RuntimeError" in failures[1].getMessage()


def test_a_slow_inline_handler_slows_its_stream_by_its_own_cost(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    bus: EventBus,
    pipeline: Pipeline,
    measure: Callable[[str, object], None],
) -> None:
    server.queue(Reply(chunks=CHUNKS), Reply(chunks=CHUNKS))
    consume(make_llm)  # warm-up
    pipeline.spans.clear()
    server.queue(Reply(chunks=CHUNKS))
    _, plain = consume(make_llm)
    pipeline.spans.clear()

    seen: list[int] = []

    def slow_handler(source: Any, event: LLMStreamChunkEvent) -> None:
        time.sleep(HANDLER_DELAY)
        seen.append(event.chunk_index)

    bus.register_handler(LLMStreamChunkEvent, slow_handler)
    pieces, slow = consume(make_llm)

    assert pieces == CHUNKS and seen == list(range(len(CHUNKS)))
    floor = len(CHUNKS) * HANDLER_DELAY
    assert slow >= floor * 0.95, f"an inline handler sleeping {HANDLER_DELAY} s per chunk: stream took {slow:.3f} s"
    assert slow < floor + plain + 2.0
    assert_bridge_recorded_every_chunk(pipeline)
    # The slowdown is visible in the telemetry too: chunk events at least the handler's cost apart.
    (chat,) = pipeline.chat_spans()
    elapsed = [e.attributes["crewtrace.chunk.elapsed"] for e in chat.events if e.name == "crewtrace.stream.chunk"]
    assert all(b - a >= HANDLER_DELAY * 0.9 for a, b in itertools.pairwise(elapsed)), elapsed
    measure(
        f"{len(CHUNKS)}-chunk stream, no slow handler / inline handler sleeping "
        f"{HANDLER_DELAY * 1000:.0f} ms per chunk",
        f"{plain * 1000:.0f} ms / {slow * 1000:.0f} ms (+{(slow - plain) / len(CHUNKS) * 1000:.0f} ms per chunk)",
    )


def test_a_slow_coroutine_handler_stays_off_the_hot_path_and_flush_waits_for_it(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    bus: EventBus,
    pipeline: Pipeline,
    measure: Callable[[str, object], None],
) -> None:
    seen: list[tuple[int, str]] = []

    async def slow_async_handler(source: Any, event: LLMStreamChunkEvent) -> None:
        await asyncio.sleep(HANDLER_DELAY)
        seen.append((event.chunk_index, threading.current_thread().name))

    bus.register_handler(LLMStreamChunkEvent, slow_async_handler)
    server.queue(Reply(chunks=CHUNKS))
    pieces, elapsed = consume(make_llm)
    floor = len(CHUNKS) * HANDLER_DELAY
    assert pieces == CHUNKS
    assert elapsed < floor / 2, f"the stream waited for the coroutine handler: {elapsed:.3f} s"
    assert_bridge_recorded_every_chunk(pipeline)

    flush_started = time.perf_counter()
    assert bus.flush(timeout=10.0) is True
    waited = time.perf_counter() - flush_started
    assert [index for index, _ in seen] == list(range(len(CHUNKS))), "in order, all of them, after flush"
    assert {thread for _, thread in seen} == {"crewtrace-async-handlers"}
    assert elapsed + waited >= floor * 0.95, "flush returned before the handler finished"
    measure(
        f"{len(CHUNKS)}-chunk stream with a coroutine handler sleeping {HANDLER_DELAY * 1000:.0f} ms per chunk",
        f"stream {elapsed * 1000:.0f} ms, then flush() waited {waited * 1000:.0f} ms",
    )


def test_handlers_that_unregister_themselves_or_register_others_mid_stream(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, pipeline: Pipeline
) -> None:
    once: list[int] = []
    late: list[int] = []
    steady: list[int] = []

    def late_handler(source: Any, event: LLMStreamChunkEvent) -> None:
        late.append(event.chunk_index)

    def once_handler(source: Any, event: LLMStreamChunkEvent) -> None:
        once.append(event.chunk_index)
        bus.off(LLMStreamChunkEvent, once_handler)
        bus.register_handler(LLMStreamChunkEvent, late_handler)

    def steady_handler(source: Any, event: LLMStreamChunkEvent) -> None:
        steady.append(event.chunk_index)

    def unsubscribe_on_completion(source: Any, event: LLMCallCompletedEvent) -> None:
        bus.off(LLMStreamChunkEvent, late_handler)
        bus.off(LLMStreamChunkEvent, steady_handler)
        bus.off(LLMCallCompletedEvent, unsubscribe_on_completion)

    before = bus.handler_count()
    bus.register_handler(LLMStreamChunkEvent, once_handler)
    bus.register_handler(LLMStreamChunkEvent, steady_handler)
    bus.register_handler(LLMCallCompletedEvent, unsubscribe_on_completion)
    server.queue(Reply(chunks=CHUNKS))

    pieces, _ = consume(make_llm)

    assert pieces == CHUNKS
    assert once == [0], "unregistered itself while handling chunk 0"
    assert steady == [0, 1, 2, 3, 4], "a registration change never makes another handler miss a chunk"
    assert late == [1, 2, 3, 4], "registered while chunk 0 was delivered: sees every chunk after it, once"
    assert_bridge_recorded_every_chunk(pipeline)
    assert bus.handler_count() == before, "every handler the test added is gone again"
    server.queue(Reply(chunks=CHUNKS))
    consume(make_llm)
    assert (once, late, steady) == ([0], [1, 2, 3, 4], [0, 1, 2, 3, 4])


def test_a_handler_that_raises_on_a_long_stream_never_loses_a_chunk(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, pipeline: Pipeline
) -> None:
    """Failing on every other chunk of 2,000: delivery to the consumer and the bridge stays exact."""
    chunks = [f"w{i} " for i in range(2000)]

    def flaky(source: Any, event: LLMStreamChunkEvent) -> None:
        if event.chunk_index % 2:
            raise ValueError("odd chunk")

    bus.register_handler(LLMStreamChunkEvent, flaky)
    server.queue(Reply(chunks=chunks))
    logging.getLogger("crewtrace.events").disabled = True  # 1,000 tracebacks are not the point here
    try:
        pieces = list(make_llm().iter_text("long"))
    finally:
        logging.getLogger("crewtrace.events").disabled = False
    assert pieces == chunks
    (chat,) = pipeline.chat_spans()
    assert chat.attributes["crewtrace.stream.chunk_count"] == 2000
    assert sum(e.attributes["crewtrace.chunk.count"] for e in chat.events) == 2000
    assert pipeline.value("crewtrace.stream.chunks") == 2000
