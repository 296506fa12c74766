"""The streaming LLM layer, over litellm's real HTTP path against the local server."""

from __future__ import annotations

import asyncio
import gc

import pytest
from tests.support.llms import API_KEY, MakeLLM
from tests.support.openai_server import FakeOpenAIServer, Fault, Reply
from tests.support.recording import Recorder

from crewtrace import LLM, LLMCallError, LLMStreamError
from crewtrace.errors import ConfigurationError
from crewtrace.events import (
    EventBus,
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
)


def test_call_streams_and_emits_one_event_per_chunk(
    server: FakeOpenAIServer, make_llm: MakeLLM, recorder: Recorder
) -> None:
    server.queue(Reply(chunks=["Hel", "lo ", "wor", "ld!"], usage=(11, 4)))
    text = make_llm().call("Say hello")
    assert text == "Hello world!"
    assert recorder.types() == ["llm_call_started"] + ["llm_stream_chunk"] * 4 + ["llm_call_completed"]
    chunks = recorder.of(LLMStreamChunkEvent)
    assert [c.chunk for c in chunks] == ["Hel", "lo ", "wor", "ld!"]
    assert [c.chunk_index for c in chunks] == [0, 1, 2, 3]
    call_ids = {e.call_id for e in recorder.events}
    assert len(call_ids) == 1
    response_ids = {c.response_id for c in chunks}
    assert len(response_ids) == 1 and next(iter(response_ids)).startswith("chatcmpl-")
    assert all(c.timestamp_ns > 0 for c in chunks)
    assert [c.timestamp_ns for c in chunks] == sorted(c.timestamp_ns for c in chunks)


def test_completed_event_carries_response_usage_from_the_stream_and_timings(
    server: FakeOpenAIServer, make_llm: MakeLLM, recorder: Recorder
) -> None:
    server.queue(Reply(chunks=["a1", "b2", "c3"], usage=(21, 3)))
    make_llm().call("hi")
    (done,) = recorder.of(LLMCallCompletedEvent)
    assert done.response == "a1b2c3"
    assert (done.usage.input_tokens, done.usage.output_tokens, done.usage.total_tokens) == (21, 3, 24)
    assert done.finish_reason == "stop"
    assert done.response_id == recorder.of(LLMStreamChunkEvent)[0].response_id
    assert done.chunk_count == 3
    assert 0 < done.time_to_first_chunk_s <= done.duration_s
    assert done.provider == "openai" and done.model == "test-model"
    (request,) = server.requests
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}


def test_started_event_describes_the_request_without_the_api_key(
    server: FakeOpenAIServer, make_llm: MakeLLM, recorder: Recorder
) -> None:
    make_llm(temperature=0.0, max_tokens=50).call([{"role": "user", "content": "q"}])
    (started,) = recorder.of(LLMCallStartedEvent)
    assert started.messages == [{"role": "user", "content": "q"}]
    assert (started.stream, started.temperature, started.max_tokens) == (True, 0.0, 50)
    assert (started.server_address, started.server_port) == ("127.0.0.1", server.port)
    assert all(API_KEY not in e.model_dump_json() for e in recorder.events)
    assert server.requests[0].headers.get("authorization") == f"Bearer {API_KEY}"


def test_stream_without_usage_falls_back_to_litellms_own_count(
    server: FakeOpenAIServer, make_llm: MakeLLM, recorder: Recorder
) -> None:
    server.queue(Reply(chunks=["x1", "y2"], usage=None))
    assert make_llm().call("hi") == "x1y2"
    (done,) = recorder.of(LLMCallCompletedEvent)
    assert done.usage is not None and done.usage.output_tokens > 0
    assert done.cost_usd is None, "an unpriced model has no cost, and that is not an error"


def test_non_streaming_call_emits_started_and_completed_only(
    server: FakeOpenAIServer, make_llm: MakeLLM, recorder: Recorder
) -> None:
    server.queue(Reply(chunks=["whole ", "answer"], usage=(5, 2)))
    assert make_llm(stream=False).call("hi") == "whole answer"
    assert recorder.types() == ["llm_call_started", "llm_call_completed"]
    (done,) = recorder.of(LLMCallCompletedEvent)
    assert done.usage.output_tokens == 2 and done.chunk_count == 0 and done.time_to_first_chunk_s is None


def test_stream_iterator_yields_chunks_as_they_arrive(
    server: FakeOpenAIServer, make_llm: MakeLLM, recorder: Recorder
) -> None:
    server.queue(Reply(chunks=["one ", "two ", "three"], delay=0.05))
    llm = make_llm(stream=False)  # stream() streams whatever the flag says
    stream = llm.iter_text("count")
    assert recorder.events == [], "nothing starts before iteration"
    first = next(stream)
    assert first == "one "
    assert len(recorder.of(LLMStreamChunkEvent)) == 1, "the first chunk is handed over before the rest arrive"
    assert first + "".join(stream) == "one two three"
    assert recorder.types()[-1] == "llm_call_completed"


async def test_acall_and_astream(server: FakeOpenAIServer, make_llm: MakeLLM, recorder: Recorder) -> None:
    server.queue(Reply(chunks=["as", "ync"]), Reply(chunks=["it", "er"]))
    llm = make_llm()
    assert await llm.acall("a") == "async"
    pieces = [piece async for piece in llm.aiter_text("b")]
    assert pieces == ["it", "er"]
    assert recorder.types().count("llm_call_completed") == 2
    assert [c.chunk_index for c in recorder.of(LLMStreamChunkEvent)] == [0, 1, 0, 1]


@pytest.mark.parametrize(
    ("fault", "error_type"), [(Fault.STATUS_429, "RateLimitError"), (Fault.STATUS_500, "InternalServerError")]
)
def test_http_error_before_first_chunk_emits_failed_then_raises(
    server: FakeOpenAIServer, make_llm: MakeLLM, recorder: Recorder, fault: Fault, error_type: str
) -> None:
    server.queue(*[Reply(chunks=["never"], fault=fault)] * 3)
    with pytest.raises(LLMCallError) as caught:
        make_llm(num_retries=0).call("hi")
    assert caught.value.error_type == error_type
    assert caught.value.__cause__ is not None
    assert recorder.types() == ["llm_call_started", "llm_call_failed"]
    (failed,) = recorder.of(LLMCallFailedEvent)
    assert failed.error_type == error_type and failed.chunk_count == 0
    assert API_KEY not in failed.error and API_KEY not in str(caught.value)


def test_unknown_provider_fails_with_event_then_exception(bus: EventBus, recorder: Recorder) -> None:
    llm = LLM("no-such-provider/some-model", stream=True, bus=bus)
    with pytest.raises(LLMCallError, match="no-such-provider/some-model"):
        llm.call("hi")
    assert recorder.types() == ["llm_call_started", "llm_call_failed"]
    assert recorder.of(LLMCallFailedEvent)[0].error_type == "BadRequestError"


def test_connection_reset_mid_stream_keeps_the_partial_text(
    server: FakeOpenAIServer, make_llm: MakeLLM, recorder: Recorder
) -> None:
    server.queue(Reply(chunks=["par", "tial", " and", " more"], fault=Fault.RESET, fault_after=2))
    with pytest.raises(LLMStreamError) as caught:
        make_llm().call("hi")
    assert caught.value.partial_text == "partial"
    assert caught.value.chunks_received == 2
    (failed,) = recorder.of(LLMCallFailedEvent)
    assert failed.chunk_count == 2 and failed.partial_response == "partial"
    assert [e.type for e in recorder.events][-1] == "llm_call_failed"


def test_breaking_out_of_a_stream_records_a_cancelled_call(
    server: FakeOpenAIServer, make_llm: MakeLLM, recorder: Recorder
) -> None:
    server.queue(Reply(chunks=[f"c{i} " for i in range(50)], delay=0.005))
    for piece in make_llm().iter_text("long"):
        if piece == "c2 ":
            break
    gc.collect()
    (failed,) = recorder.of(LLMCallFailedEvent)
    assert failed.error_type == "cancelled" and failed.chunk_count == 3
    assert failed.partial_response == "c0 c1 c2 "


def test_closing_a_stream_records_a_cancelled_call_once(
    server: FakeOpenAIServer, make_llm: MakeLLM, recorder: Recorder
) -> None:
    server.queue(Reply(chunks=["a1", "b2", "c3"]))
    stream = make_llm().iter_text("x")
    next(stream)
    stream.close()
    stream.close()
    assert recorder.types().count("llm_call_failed") == 1
    assert recorder.of(LLMCallFailedEvent)[0].error_type == "cancelled"


async def test_cancelling_an_async_stream_records_a_cancelled_call(
    server: FakeOpenAIServer, make_llm: MakeLLM, recorder: Recorder
) -> None:
    server.queue(Reply(chunks=[f"d{i} " for i in range(100)], delay=0.02))
    llm = make_llm()
    received: list[str] = []

    async def consume() -> None:
        async for piece in llm.aiter_text("x"):
            received.append(piece)

    task = asyncio.create_task(consume())
    while len(received) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (failed,) = recorder.of(LLMCallFailedEvent)
    assert failed.error_type == "cancelled"
    assert failed.chunk_count == len(received)


def test_bad_messages_raise_a_clear_error_before_any_event(make_llm: MakeLLM, recorder: Recorder) -> None:
    with pytest.raises(ConfigurationError, match="messages\\[0\\]"):
        make_llm().call(["just a string"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="empty"):
        make_llm().call([])
    with pytest.raises(ValueError, match="model"):
        LLM("")
    assert recorder.events == []


def test_repr_never_shows_the_api_key(make_llm: MakeLLM) -> None:
    assert API_KEY not in repr(make_llm())


def test_cost_carries_no_float_noise(server: FakeOpenAIServer, bus: EventBus, recorder: Recorder) -> None:
    server.queue(Reply(chunks=["ok"], usage=(1, 4)))  # 1 x 1.5e-07 + 4 x 6e-07 = 2.5499999999999997e-06 in floats
    LLM("openai/gpt-4o-mini", base_url=server.base_url, api_key="k", bus=bus, timeout=10).call("hi")
    (done,) = recorder.of(LLMCallCompletedEvent)
    assert repr(done.cost_usd) == "2.55e-06"
