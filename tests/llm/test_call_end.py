"""Every started call ends exactly once, whatever is interrupted where; listeners may join mid-stream."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.openai_server import FakeOpenAIServer, Reply
from tests.support.recording import Recorder

from crewtrace import LLM
from crewtrace.events import EventBus, LLMCallCompletedEvent, LLMCallFailedEvent, LLMStreamChunkEvent
from crewtrace.llm import _recorder

END = ("llm_call_completed", "llm_call_failed")


def test_ctrl_c_in_the_cost_lookup_ends_the_call_as_cancelled(
    make_llm: Any, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(model: str, usage: Any) -> float:
        raise KeyboardInterrupt

    monkeypatch.setattr(_recorder, "cost_of", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_llm().call("hi")
    ends = [e for e in recorder.events if e.type in END]
    assert [e.type for e in ends] == ["llm_call_failed"]
    assert recorder.of(LLMCallFailedEvent)[0].error_type == "cancelled"


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
def test_ctrl_c_from_a_completed_handler_still_ends_the_call_once_for_the_handlers_after_it(
    server: FakeOpenAIServer, bus: EventBus, stream: bool
) -> None:
    @bus.on(LLMCallCompletedEvent)
    def interrupt(source: Any, event: Any) -> None:
        raise KeyboardInterrupt

    after = Recorder(bus)  # registered after the interrupting handler
    llm = LLM("openai/test-model", stream=stream, base_url=server.base_url, api_key="k", bus=bus, timeout=10)
    with pytest.raises(KeyboardInterrupt):
        llm.call("hi")
    # The bus delivers an event to every handler before it re-raises a handler's interrupt.
    assert [e.type for e in after.events if e.type in END] == ["llm_call_completed"]


def test_a_chunk_listener_registered_mid_stream_sees_the_rest_of_the_call(
    server: FakeOpenAIServer, make_llm: Any, bus: EventBus
) -> None:
    """Needs ``EventBus.generation`` (the bus branch): the recorder re-checks listeners when it changes."""
    server.queue(Reply(chunks=[f"p{i} " for i in range(6)]))
    stream = make_llm().iter_text("x")
    assert next(stream) == "p0 "
    seen: list[int] = []
    bus.on(LLMStreamChunkEvent)(lambda source, event: seen.append(event.chunk_index))
    assert "".join(stream) == "p1 p2 p3 p4 p5 "
    assert seen == [1, 2, 3, 4, 5]
