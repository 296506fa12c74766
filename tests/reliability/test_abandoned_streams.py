"""Streams the consumer abandons, closes, drops or cancels, and Ctrl-C mid-run.

Each way of walking away from a stream must end its chat span (``error.type=cancelled``,
the exact number of chunks consumed), bring ``crewtrace.stream.active`` back to 0, and
leave no span, bridge state or handler behind. A KeyboardInterrupt raised from a chunk
handler during ``kickoff`` must propagate, and every span of the run must still end.

Leaks are measured three ways after 1,000 abandoned streams: the SDK's own
``otel.sdk.span.live`` up-down counter (``TracerProvider(meter_provider=...)`` with
``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``), a span processor counting started versus
ended spans, and the bridge's open spans and live objects; plus the bus's handler count and the
server's open connections. The ways of walking away are in ``tests/support/walking_away.py``.

Covered elsewhere, not repeated: a cancelled event on break/close/cancel without the bridge
(tests/llm/test_llm.py) and one dropped stream through the bridge
(tests/telemetry/test_bridge.py).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.trace import StatusCode
from tests.support.crews import two_agent_crew
from tests.support.leaks import live_instances, open_calls
from tests.support.llms import MakeLLM
from tests.support.openai_server import FakeOpenAIServer, Reply
from tests.support.pipeline import Pipeline
from tests.support.polling import await_until, wait_until
from tests.support.walking_away import (
    ASYNC_WAYS,
    CHUNKS,
    SYNC_WAYS,
    abandon_async_by_break,
    abandon_async_by_cancelling_the_consumer,
    abandon_by_break,
    abandon_by_close,
    abandon_by_dropping,
    settle,
)

from crewtrace import LLM
from crewtrace.events import LLMCallStartedEvent, LLMStreamChunkEvent


def assert_all_closed(pipeline: Pipeline, handlers_before: int) -> None:
    assert pipeline.bridge.open_spans() == ()
    assert pipeline.value("crewtrace.stream.active") == 0
    assert pipeline.value("otel.sdk.span.live") == 0, "the SDK counts a span still open"
    assert pipeline.counter.open == 0, f"{pipeline.counter.started} started, {pipeline.counter.ended} ended"
    assert pipeline.bus.handler_count() == handlers_before


def assert_one_cancelled_chat(pipeline: Pipeline, consumed: int) -> None:
    (chat,) = pipeline.chat_spans()
    assert chat.attributes["error.type"] == "cancelled"
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.attributes["crewtrace.stream.chunk_count"] == consumed
    assert sum(e.attributes["crewtrace.chunk.count"] for e in chat.events) == consumed


@pytest.mark.parametrize("way", SYNC_WAYS, ids=lambda f: f.__name__)
def test_a_sync_stream_walked_away_from_ends_its_span(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline, way: Callable[[LLM], int]
) -> None:
    handlers = pipeline.bus.handler_count()
    server.responder = lambda body: Reply(chunks=CHUNKS)
    consumed = way(make_llm())
    assert_one_cancelled_chat(pipeline, consumed)
    assert_all_closed(pipeline, handlers)


@pytest.mark.parametrize("way", ASYNC_WAYS, ids=lambda f: f.__name__)
def test_an_async_stream_walked_away_from_ends_its_span(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline, way: Callable[[LLM], Any]
) -> None:
    handlers = pipeline.bus.handler_count()
    server.responder = lambda body: Reply(chunks=CHUNKS)

    async def main() -> int:
        consumed = await way(make_llm())
        await settle(pipeline.bridge)
        return consumed

    consumed = asyncio.run(main())
    assert_one_cancelled_chat(pipeline, consumed)
    assert_all_closed(pipeline, handlers)


def test_cancelling_a_task_while_it_awaits_the_next_chunk_ends_the_span(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline
) -> None:
    """Cancellation lands inside the generator (awaiting the network), not in the consumer."""
    handlers = pipeline.bus.handler_count()
    server.responder = lambda body: Reply(chunks=[f"d{i} " for i in range(50)], delay=0.05)
    received: list[str] = []

    async def main() -> None:
        async def consumer() -> None:
            async for piece in make_llm().aiter_text("x"):
                received.append(piece)

        task = asyncio.create_task(consumer())
        await await_until(lambda: len(received) >= 2, what="two chunks received")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert_one_cancelled_chat(pipeline, len(received))
    assert_all_closed(pipeline, handlers)


def test_a_stream_created_but_never_iterated_starts_nothing(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline
) -> None:
    llm = make_llm()
    for _ in range(100):
        llm.iter_text("never read")
        llm.aiter_text("never read")
    gc.collect()
    assert pipeline.counter.started == 0 and server.requests == []
    assert_all_closed(pipeline, pipeline.bus.handler_count())


# -- Ctrl-C --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kickoff", ["kickoff", "kickoff_async"])
def test_keyboard_interrupt_from_a_chunk_handler_propagates_and_every_span_ends(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline, kickoff: str
) -> None:
    handlers = pipeline.bus.handler_count()
    server.responder = lambda body: Reply(chunks=CHUNKS)
    crew = two_agent_crew(make_llm, pipeline.bus, name="reliability")

    def ctrl_c(source: Any, event: LLMStreamChunkEvent) -> None:
        if event.chunk_index == 2:
            raise KeyboardInterrupt

    pipeline.bus.register_handler(LLMStreamChunkEvent, ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        if kickoff == "kickoff":
            crew.kickoff(inputs={"topic": "interrupted"})
        else:
            asyncio.run(crew.kickoff_async(inputs={"topic": "interrupted"}))
    pipeline.bus.off(LLMStreamChunkEvent, ctrl_c)

    spans = {s.name: s for s in pipeline.spans.get_finished_spans()}
    assert sorted(spans) == [
        "chat test-model",
        "execute_task research",
        "invoke_agent Researcher",
        "invoke_workflow reliability",
    ], "the run stopped at the first task, and all of its spans ended"
    assert all(s.attributes["error.type"] == "cancelled" for s in spans.values())
    assert all(s.status.status_code is StatusCode.ERROR for s in spans.values())
    assert spans["chat test-model"].attributes["crewtrace.stream.chunk_count"] == 3
    assert_all_closed(pipeline, handlers)


@pytest.mark.parametrize("way", ["call", "stream", "acall", "astream"])
def test_keyboard_interrupt_from_a_started_handler_still_ends_the_span(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline, way: str
) -> None:
    """The bridge saw "started" before the handler raised: it must see the end too."""
    handlers = pipeline.bus.handler_count()

    def ctrl_c(source: Any, event: LLMCallStartedEvent) -> None:
        raise KeyboardInterrupt

    pipeline.bus.register_handler(LLMCallStartedEvent, ctrl_c)
    llm = make_llm()

    async def consume() -> None:
        async for _ in llm.aiter_text("x"):
            pass

    with pytest.raises(KeyboardInterrupt):
        if way == "call":
            llm.call("x")
        elif way == "stream":
            list(llm.iter_text("x"))
        elif way == "acall":
            asyncio.run(llm.acall("x"))
        else:
            asyncio.run(consume())
    pipeline.bus.off(LLMCallStartedEvent, ctrl_c)
    assert_one_cancelled_chat(pipeline, 0)
    assert server.requests == [], "interrupted before the request was sent"
    assert_all_closed(pipeline, handlers)


# -- the bridge walks away -----------------------------------------------------------------------


def _close_the_bridge_mid_stream(server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline) -> list[str]:
    server.responder = lambda body: Reply(chunks=CHUNKS)
    stream = make_llm().iter_text("x")
    received = [next(stream), next(stream)]
    pipeline.bridge.close()  # e.g. Telemetry.shutdown() while a crew still streams
    received += list(stream)
    return received


def test_closing_the_bridge_mid_stream_ends_the_span_and_spares_the_stream(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline
) -> None:
    handlers = pipeline.bus.handler_count()
    assert _close_the_bridge_mid_stream(server, make_llm, pipeline) == CHUNKS, "the consumer is not affected"
    (chat,) = pipeline.chat_spans()
    assert chat.attributes["error.type"] == "bridge_closed"
    assert chat.attributes["crewtrace.stream.chunk_count"] == 2, "the chunks seen before the bridge closed"
    assert pipeline.bridge.open_spans() == ()
    assert pipeline.value("crewtrace.stream.active") == 0, "a MeterProvider that outlives the bridge reads 0"
    assert pipeline.counter.open == 0 and pipeline.value("otel.sdk.span.live") == 0
    assert pipeline.bus.handler_count() < handlers, "the bridge's handlers are gone"


def test_a_run_cut_off_by_closing_the_bridge_is_marked_failed_up_to_its_workflow(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline
) -> None:
    """A graceful stop (``Telemetry.shutdown()``) in the middle of a run: no span may read as a success."""
    server.responder = lambda body: Reply(chunks=CHUNKS)
    crew = two_agent_crew(make_llm, pipeline.bus, name="cut-off")
    crew.stream = True
    output = crew.kickoff(inputs={"topic": "t"})
    chunks = iter(output)
    next(chunks)
    pipeline.bridge.close()
    rest = list(chunks)
    assert len(rest) == 2 * len(CHUNKS) - 1, "the run itself is not affected"
    spans = pipeline.spans.get_finished_spans()
    assert [s.name for s in spans] == [
        "chat test-model",
        "invoke_agent Researcher",
        "execute_task research",
        "invoke_workflow cut-off",
    ], "innermost first; nothing that started after the bridge closed"
    for span in spans:
        assert span.status.status_code is StatusCode.ERROR, span.name
        assert span.attributes["error.type"] == "bridge_closed", span.name


# -- 1,000 of them -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.soak
def test_a_thousand_abandoned_streams_leave_nothing_behind(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    pipeline: Pipeline,
    measure: Callable[[str, object], None],
) -> None:
    server.responder = lambda body: Reply(chunks=CHUNKS)
    llm = make_llm()
    abandon_by_break(llm)  # warm-up, then the baseline
    pipeline.spans.clear()
    handlers = pipeline.bus.handler_count()
    objects = live_instances()
    ended_before = pipeline.counter.ended

    started = time.perf_counter()
    sync_ways = [abandon_by_break, abandon_by_close, abandon_by_dropping]
    for n in range(600):
        sync_ways[n % 3](llm)

    async def abandon_async() -> None:
        async_ways = [abandon_async_by_break, abandon_async_by_cancelling_the_consumer]
        for n in range(400):
            await async_ways[n % 2](llm)
        await settle(pipeline.bridge)

    asyncio.run(abandon_async())
    elapsed = time.perf_counter() - started

    assert pipeline.counter.ended - ended_before == 1000
    chats = pipeline.chat_spans()
    assert len(chats) == 1000
    assert all(s.attributes["error.type"] == "cancelled" for s in chats)
    assert all(s.attributes["crewtrace.stream.chunk_count"] == 2 for s in chats)
    assert_all_closed(pipeline, handlers)
    assert not live_instances() - objects, "no per-call bookkeeping survives its call"
    wait_until(lambda: server.open_connections <= 2, what="abandoned streams release their HTTP connections")
    measure("1,000 abandoned streams (600 sync, 400 async)", f"{elapsed:.1f} s, {elapsed:.1f} ms per stream")
    measure(
        "after 1,000 abandoned streams: live spans / open bridge calls / stream.active / handlers added",
        f"{pipeline.value('otel.sdk.span.live'):.0f} / {len(open_calls(pipeline.bridge))} / "
        f"{pipeline.value('crewtrace.stream.active'):.0f} / {pipeline.bus.handler_count() - handlers}",
    )
