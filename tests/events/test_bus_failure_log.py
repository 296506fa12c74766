"""A handler that raises on every event: its first traceback in full, then counts, not a traceback per chunk."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from crewtrace.events import EventBus, LLMStreamChunkEvent


def chunk(index: int) -> LLMStreamChunkEvent:
    return LLMStreamChunkEvent(call_id="c", model="m", chunk=f"w{index}", chunk_index=index)


def records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "crewtrace.events" and name in r.getMessage()]


def test_the_first_failure_has_its_traceback_then_counts_at_2_10_and_100(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_listener(source: Any, event: LLMStreamChunkEvent) -> None:
        raise RuntimeError(f"bug on chunk {event.chunk_index}")

    bus.on(LLMStreamChunkEvent)(broken_listener)
    with caplog.at_level(logging.ERROR, logger="crewtrace.events"):
        for index in range(120):
            bus.emit(None, chunk(index))
    logged = records(caplog, "broken_listener")
    assert [bool(r.exc_info) for r in logged] == [True, False, False, False]
    assert "bug on chunk 0" in str(logged[0].exc_info[1] if logged[0].exc_info else "")
    assert [r.getMessage().split(" with ")[0] for r in logged[1:]] == [
        f"event handler {logged[0].getMessage().split()[2]} has failed {n} times" for n in (2, 10, 100)
    ]
    assert "RuntimeError" in logged[1].getMessage() and "llm_stream_chunk" in logged[1].getMessage()


def test_a_new_kind_of_failure_and_another_handler_get_their_own_traceback(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    def flaky(source: Any, event: LLMStreamChunkEvent) -> None:
        raise (ValueError if event.chunk_index % 2 else KeyError)("flaky")

    def other(source: Any, event: LLMStreamChunkEvent) -> None:
        raise RuntimeError("other")

    bus.on(LLMStreamChunkEvent)(flaky)
    bus.on(LLMStreamChunkEvent)(other)
    with caplog.at_level(logging.ERROR, logger="crewtrace.events"):
        for index in range(4):
            bus.emit(None, chunk(index))
    with_traceback = [r.exc_info[0] for r in caplog.records if r.exc_info]
    assert with_traceback == [KeyError, RuntimeError, ValueError]


def test_each_registration_counts_on_its_own(caplog: pytest.LogCaptureFixture) -> None:
    def broken(source: Any, event: LLMStreamChunkEvent) -> None:
        raise RuntimeError("broken")

    with caplog.at_level(logging.ERROR, logger="crewtrace.events"):
        for _ in range(2):  # the same function on two buses: two first failures, two tracebacks
            bus = EventBus()
            bus.on(LLMStreamChunkEvent)(broken)
            bus.emit(None, chunk(0))
    assert [bool(r.exc_info) for r in caplog.records if r.name == "crewtrace.events"] == [True, True]
