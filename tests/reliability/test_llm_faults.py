"""LLM faults against the local server, through the bridge, sync and async.

Every fault is injected by ``tests.support.openai_server`` (HTTP 429/500 before the first
chunk, TCP reset / malformed SSE event / stall after two chunks, an empty stream, a
stream without usage) and met with all four ways of calling: ``call``, ``acall``,
``stream``, ``astream``. Each must end in a clear exception (``LLMCallError`` before the
first chunk, ``LLMStreamError`` with the partial text after) or a documented fallback, a
failed event with the right ``error_type``, a chat span with status ERROR and
``error.type``, an ``error.type`` on the ``gen_ai.client.operation.duration`` point, and
nothing left open (bridge state, ``crewtrace.stream.active``, SDK live spans).

Found here: litellm wraps every mid-stream failure in ``MidStreamFallbackError`` around
``litellm.APIConnectionError``, whatever the cause underneath (``httpx.ReadError`` for a
reset, ``json.JSONDecodeError`` for a malformed event, ``httpx.ReadTimeout`` /
``aiohttp.SocketTimeoutError`` for a stall). A reset and a malformed event report
``APIConnectionError``; a stall reports ``timeout``, like a server that never sends its
headers (crewtrace looks for a timeout in the cause chain).

Covered elsewhere: 429 on ``call`` with an in-memory bridge, 500 failing a crew, reset
keeping the partial text, stream without usage (tests/llm, tests/telemetry/test_bridge.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.trace import StatusCode
from tests.support.blackhole import Blackhole
from tests.support.leaks import open_state
from tests.support.llms import API_KEY, MakeLLM
from tests.support.openai_server import FakeOpenAIServer, Fault, Reply
from tests.support.pipeline import Pipeline
from tests.support.recording import Recorder

from crewtrace import LLM, LLMCallError, LLMStreamError
from crewtrace.events import EventBus, LLMCallCompletedEvent, LLMCallFailedEvent

CHUNKS = ["a1", "b2", "c3", "d4"]
MODES = ["call", "acall", "stream", "astream"]


@dataclass(frozen=True)
class Expected:
    reply: Reply
    error: type[Exception]
    error_type: str
    chunks: int  # chunks that reached the consumer before the failure


FAILURES = {
    "429": Expected(Reply(chunks=CHUNKS, fault=Fault.STATUS_429), LLMCallError, "RateLimitError", 0),
    "500": Expected(Reply(chunks=CHUNKS, fault=Fault.STATUS_500), LLMCallError, "InternalServerError", 0),
    "reset": Expected(Reply(chunks=CHUNKS, fault=Fault.RESET, fault_after=2), LLMStreamError, "APIConnectionError", 2),
    "malformed": Expected(
        Reply(chunks=CHUNKS, fault=Fault.MALFORMED, fault_after=2), LLMStreamError, "APIConnectionError", 2
    ),
    "stall": Expected(Reply(chunks=CHUNKS, fault=Fault.STALL, fault_after=2), LLMStreamError, "timeout", 2),
    "error event": Expected(
        Reply(chunks=CHUNKS, fault=Fault.ERROR_EVENT, fault_after=2), LLMStreamError, "APIError", 2
    ),
}


def run_mode(llm: LLM, mode: str, received: list[str]) -> str:
    """Make one call the given way; stream pieces land in ``received`` as they arrive."""
    if mode == "call":
        return llm.call("hello")
    if mode == "acall":
        return asyncio.run(llm.acall("hello"))
    if mode == "stream":
        for piece in llm.iter_text("hello"):
            received.append(piece)
        return "".join(received)

    async def consume() -> str:
        async for piece in llm.aiter_text("hello"):
            received.append(piece)
        return "".join(received)

    return asyncio.run(consume())


def assert_nothing_left_open(pipeline: Pipeline) -> None:
    assert all(n == 0 for n in open_state(pipeline.bridge).values()), open_state(pipeline.bridge)
    assert pipeline.value("crewtrace.stream.active") == 0
    assert pipeline.value("otel.sdk.span.live") == 0
    assert pipeline.counter.open == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", list(FAILURES))
def test_a_fault_gives_a_clear_error_a_failed_span_and_leaves_nothing_open(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    pipeline: Pipeline,
    recorder: Recorder,
    measure: Callable[[str, object], None],
    fault: str,
    mode: str,
) -> None:
    expected = FAILURES[fault]
    server.responder = lambda body: expected.reply  # every attempt meets the fault, retries or not
    llm = make_llm(num_retries=0, timeout=1 if fault == "stall" else 10)
    received: list[str] = []

    started = time.monotonic()
    with pytest.raises(expected.error) as caught:
        run_mode(llm, mode, received)
    elapsed = time.monotonic() - started

    error = caught.value
    assert error.error_type == expected.error_type
    assert error.__cause__ is not None, "litellm's exception stays chained"
    assert API_KEY not in str(error)
    if isinstance(error, LLMStreamError):
        assert (error.partial_text, error.chunks_received) == ("a1b2", 2)
    if mode in ("stream", "astream"):
        assert received == CHUNKS[: expected.chunks], "what arrived before the fault reached the consumer, in order"
    if fault == "stall":  # without the timeout, the stream would wait out the server's 30 s stall
        assert 0.9 < elapsed < 10.0, f"timeout=1 must end a stalled stream, took {elapsed:.2f} s"
        measure(f"stalled stream with timeout=1 ({mode})", f"{elapsed:.2f} s")

    (failed,) = recorder.of(LLMCallFailedEvent)
    assert (failed.error_type, failed.chunk_count) == (expected.error_type, expected.chunks)
    assert not recorder.of(LLMCallCompletedEvent)

    (chat,) = pipeline.chat_spans()
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.attributes["error.type"] == expected.error_type
    assert chat.attributes["crewtrace.stream.chunk_count"] == expected.chunks
    assert sum(e.attributes["crewtrace.chunk.count"] for e in chat.events) == expected.chunks
    (duration,) = pipeline.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == expected.error_type
    assert_nothing_left_open(pipeline)


@pytest.mark.parametrize("mode", MODES)
def test_an_empty_stream_completes_with_no_text_and_no_chunks(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline, recorder: Recorder, mode: str
) -> None:
    server.responder = lambda body: Reply(chunks=CHUNKS, fault=Fault.EMPTY)
    received: list[str] = []
    assert run_mode(make_llm(num_retries=0), mode, received) == ""
    assert received == []
    (done,) = recorder.of(LLMCallCompletedEvent)
    assert (done.response, done.chunk_count, done.time_to_first_chunk_s) == ("", 0, None)
    (chat,) = pipeline.chat_spans()
    assert chat.status.status_code is StatusCode.UNSET
    assert chat.attributes["crewtrace.stream.chunk_count"] == 0
    assert "gen_ai.response.time_to_first_chunk" not in chat.attributes
    assert [e for e in chat.events if e.name == "crewtrace.stream.chunk"] == []
    assert pipeline.points("gen_ai.client.operation.time_to_first_chunk") == []
    assert_nothing_left_open(pipeline)


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_without_usage_reports_litellms_own_count(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline, recorder: Recorder, mode: str
) -> None:
    server.responder = lambda body: Reply(chunks=CHUNKS, usage=None)
    assert run_mode(make_llm(num_retries=0), mode, []) == "a1b2c3d4"
    (done,) = recorder.of(LLMCallCompletedEvent)
    assert done.usage is not None and done.usage.input_tokens > 0 and done.usage.output_tokens > 0
    (chat,) = pipeline.chat_spans()
    assert chat.attributes["gen_ai.usage.output_tokens"] == done.usage.output_tokens
    tokens = pipeline.points("gen_ai.client.token.usage")
    assert {p.attributes["gen_ai.token.type"] for p in tokens} == {"input", "output"}
    assert_nothing_left_open(pipeline)


@pytest.mark.parametrize("mode", ["call", "acall"])
def test_a_server_that_never_answers_fails_with_timeout(
    blackhole: Blackhole, bus: EventBus, pipeline: Pipeline, recorder: Recorder, mode: str
) -> None:
    llm = LLM(
        "openai/test-model",
        stream=True,
        base_url=f"{blackhole.endpoint}/v1",
        api_key=API_KEY,
        bus=bus,
        timeout=1,
        num_retries=0,
    )
    started = time.monotonic()
    with pytest.raises(LLMCallError) as caught:
        run_mode(llm, mode, [])
    assert time.monotonic() - started < 5.0
    assert caught.value.error_type == "timeout"
    (chat,) = pipeline.chat_spans()
    assert chat.status.status_code is StatusCode.ERROR and chat.attributes["error.type"] == "timeout"
    assert_nothing_left_open(pipeline)


def test_failures_do_not_accumulate_over_many_calls(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline, recorder: Recorder
) -> None:
    """Alternating faults and successes: every call ends its span; nothing is left behind."""
    replies: list[Any] = [FAILURES[name].reply for name in ("429", "500", "reset", "malformed")]
    replies.append(Reply(chunks=CHUNKS))
    count = 0

    def responder(body: dict[str, Any]) -> Reply:
        nonlocal count
        count += 1
        return replies[count % len(replies)]

    server.responder = responder
    llm = make_llm(num_retries=0)
    for n in range(50):
        with contextlib.suppress(LLMCallError, LLMStreamError):
            llm.call(f"hello {n}")
    assert len(recorder.of(LLMCallFailedEvent)) == 40 and len(recorder.of(LLMCallCompletedEvent)) == 10
    assert len(pipeline.chat_spans()) == 50
    error_types = {p.attributes.get("error.type") for p in pipeline.points("gen_ai.client.operation.duration")}
    assert error_types == {None, "RateLimitError", "InternalServerError", "APIConnectionError"}
    assert_nothing_left_open(pipeline)
