"""Both stream paths (the OpenAI SDK's stream read directly, litellm's wrapper) keep what users rely on.

``openai/`` streams come from the OpenAI SDK and take the direct path; ``hosted_vllm/`` is
parsed by litellm itself, so it keeps litellm's wrapper. Both against the same local server.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from litellm.integrations.custom_logger import CustomLogger
from tests.support.llms import API_KEY
from tests.support.openai_server import FakeOpenAIServer, Fault, Reply, ToolCallReply
from tests.support.polling import await_until, wait_until
from tests.support.recording import Recorder

from crewtrace import LLM, LLMStreamError
from crewtrace.events import EventBus, LLMCallCompletedEvent, LLMCallFailedEvent, TokenUsage
from crewtrace.llm._litellm import litellm
from crewtrace.llm._streams import ProviderStream

PATHS = {"direct": "openai/gpt-4o-mini", "wrapped": "hosted_vllm/gpt-4o-mini"}


class Seen(CustomLogger):  # type: ignore[misc]
    """A user's litellm callback, as users register them."""

    def __init__(self) -> None:
        super().__init__()
        self.sync: list[dict[str, Any]] = []
        self.async_: list[dict[str, Any]] = []
        self.functions: list[dict[str, Any]] = []

    def function(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        """A plain function in ``litellm.success_callback``."""
        self.functions.append(_summary(kwargs, response_obj))

    def log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.sync.append(_summary(kwargs, response_obj))

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.async_.append(_summary(kwargs, response_obj))


def _summary(kwargs: dict[str, Any], response: Any) -> dict[str, Any]:
    return {
        "id": kwargs.get("litellm_call_id"),
        "cost": kwargs.get("response_cost"),
        "text": response.choices[0].message.content,
        "tokens": (response.usage.prompt_tokens, response.usage.completion_tokens),
    }


SEEN = Seen()  # one instance for the session: litellm keeps the first callback of a class it registered


@pytest.fixture
def seen() -> Iterator[Seen]:
    callback = SEEN
    callback.sync.clear()
    callback.async_.clear()
    callback.functions.clear()
    saved, saved_functions = list(litellm.callbacks), list(litellm.success_callback)
    litellm.callbacks = [*saved, callback]
    litellm.success_callback = [*saved_functions, callback.function]
    yield callback
    litellm.callbacks, litellm.success_callback = saved, saved_functions


def make(server: FakeOpenAIServer, bus: EventBus, path: str, **kwargs: Any) -> LLM:
    return LLM(PATHS[path], stream=True, base_url=server.base_url, api_key=API_KEY, timeout=10, bus=bus, **kwargs)


@pytest.mark.parametrize("path", PATHS)
def test_each_provider_takes_its_documented_path(server: FakeOpenAIServer, path: str) -> None:
    response = litellm.completion(
        model=PATHS[path], messages=[{"role": "user", "content": "hi"}], stream=True,
        base_url=server.base_url, api_key=API_KEY,
    )  # fmt: skip
    stream = ProviderStream(response, is_async=False, model=PATHS[path])
    assert stream.direct is (path == "direct")
    stream.close()


@pytest.mark.parametrize("path", PATHS)
def test_a_sync_stream_reports_once_to_litellm_callbacks_with_usage_and_cost(
    server: FakeOpenAIServer, bus: EventBus, recorder: Recorder, seen: Seen, path: str
) -> None:
    server.queue(Reply(chunks=["al", "pha", " beta"], usage=(12, 3)), Reply(chunks=["ga", "mma"], usage=(7, 2)))
    llm = make(server, bus, path)
    assert llm.call("one") == "alpha beta"
    assert "".join(llm.iter_text("two")) == "gamma"
    wait_until(lambda: len(seen.sync) >= 2 and len(seen.functions) >= 2, what="both calls reported to litellm")
    done = recorder.of(LLMCallCompletedEvent)
    for callbacks in (seen.sync, seen.functions):
        assert sorted(c["text"] for c in callbacks) == ["alpha beta", "gamma"]
        assert sorted(c["tokens"] for c in callbacks) == [(7, 2), (12, 3)]
        assert len({c["id"] for c in callbacks}) == 2, "each call once"
    assert seen.async_ == [], "litellm's wrapper reports a sync stream to sync callbacks only; so does the direct path"
    if path == "direct":  # litellm prices openai/ models (not hosted_vllm/ ones)
        assert sorted(c["cost"] for c in seen.sync) == pytest.approx(sorted(d.cost_usd for d in done))
        assert all(d.cost_usd and d.cost_usd > 0 for d in done)


@pytest.mark.parametrize("path", PATHS)
async def test_an_async_stream_reports_once_to_litellm_callbacks(
    server: FakeOpenAIServer, bus: EventBus, recorder: Recorder, seen: Seen, path: str
) -> None:
    server.queue(Reply(chunks=["de", "lta"], usage=(5, 2)))
    assert await make(server, bus, path).acall("x") == "delta"
    await await_until(lambda: seen.async_, what="the call reported to litellm's async callbacks")
    (call,) = seen.async_
    assert (call["text"], call["tokens"]) == ("delta", (5, 2))
    if path == "direct":
        assert call["cost"] == pytest.approx(recorder.of(LLMCallCompletedEvent)[0].cost_usd)


@pytest.mark.parametrize("framing", ["crlf", "decorated"])
def test_the_direct_path_reads_any_server_sent_events_framing(
    server: FakeOpenAIServer, bus: EventBus, recorder: Recorder, framing: str
) -> None:
    """CRLF line ends, keep-alive comments, ``id:``/``retry:`` lines and data over several lines, as servers
    and proxies send them: the same text, chunks, response id, finish reason, usage and tool call (crewtrace
    reads the OpenAI SDK's events itself; litellm's own parsers, on the wrapped path, are litellm's)."""
    calls = [ToolCallReply("call_1", "lookup", '{"q": "x"}')]
    server.queue(
        Reply(chunks=["al", "pha", " beta"], usage=(12, 3), framing=framing),
        Reply(chunks=[], tool_calls=calls, usage=(4, 5), framing=framing),
    )
    llm = make(server, bus, "direct")
    assert list(llm.iter_text("one")) == ["al", "pha", " beta"]
    result = llm.invoke("two")
    assert [(c.id, c.function.name, c.function.arguments) for c in result.tool_calls] == [
        ("call_1", "lookup", '{"q": "x"}')
    ]
    text, tool = recorder.of(LLMCallCompletedEvent)
    assert (text.chunk_count, text.finish_reason, text.usage) == (
        3,
        "stop",
        TokenUsage(input_tokens=12, output_tokens=3),
    )
    assert text.response_id is not None and text.response_id.startswith("chatcmpl-")
    assert (tool.finish_reason, tool.usage) == ("tool_calls", TokenUsage(input_tokens=4, output_tokens=5))


@pytest.mark.parametrize("path", PATHS)
def test_tool_calls_and_missing_usage_come_out_the_same_on_both_paths(
    server: FakeOpenAIServer, bus: EventBus, recorder: Recorder, path: str
) -> None:
    server.queue(Reply(chunks=[], tool_calls=[ToolCallReply("call_1", "lookup", '{"q": "x"}')], usage=None))
    result = make(server, bus, path).invoke("use a tool")
    assert [(c.id, c.function.name, c.function.arguments) for c in result.tool_calls] == [
        ("call_1", "lookup", '{"q": "x"}')
    ]
    (done,) = recorder.of(LLMCallCompletedEvent)
    assert done.usage is not None and done.usage.input_tokens > 0, "counted by litellm when the server sends none"


@pytest.mark.parametrize("path", PATHS)
def test_a_broken_stream_maps_to_the_same_error_on_both_paths(
    server: FakeOpenAIServer, bus: EventBus, recorder: Recorder, path: str
) -> None:
    server.queue(Reply(chunks=["on", "e ", "two"], fault=Fault.RESET, fault_after=2))
    with pytest.raises(LLMStreamError) as caught:
        make(server, bus, path, num_retries=0).call("x")
    assert (caught.value.error_type, caught.value.chunks_received) == ("APIConnectionError", 2)
    assert recorder.of(LLMCallFailedEvent)[0].error_type == "APIConnectionError"


@pytest.mark.parametrize("path", PATHS)
async def test_cancelling_closes_the_connection_on_both_paths(
    server: FakeOpenAIServer, bus: EventBus, path: str
) -> None:
    server.queue(Reply(chunks=[f"s{i} " for i in range(2000)], delay=0.01))
    stream = make(server, bus, path).aiter_text("long")
    await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]
    await await_until(lambda: not server.open_connections, what="the server saw the connection close")
    sync_stream = make(server, bus, path).iter_text("long")
    server.queue(Reply(chunks=[f"t{i} " for i in range(2000)], delay=0.01))
    gc.disable()  # closed by crewtrace, not by a collection: one inside httpcore's pool lock would hang the thread
    try:
        next(sync_stream)
        sync_stream.close()
        await await_until(lambda: not server.open_connections, what="the server saw the sync connection close")
    finally:
        gc.enable()


@pytest.mark.slow
@pytest.mark.soak
def test_memory_of_a_direct_stream_does_not_grow_with_its_length(server: FakeOpenAIServer, bus: EventBus) -> None:
    """Beyond the text itself: 20,000 chunks keep nothing per chunk but their text."""
    chunks = [f"c{i:05d}" for i in range(20_000)]
    server.queue(Reply(chunks=chunks[:2_000]), Reply(chunks=chunks))
    llm = make(server, bus, "direct")
    tracemalloc.start()
    try:
        llm.call("short")
        _, short_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        llm.call("long")
        _, long_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    text_bytes = sum(len(c) + 50 for c in chunks)  # a str object is ~50 bytes plus its characters
    assert long_peak - short_peak < 3 * text_bytes, (short_peak, long_peak)
