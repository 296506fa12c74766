"""The event bus: registration, dispatch order, errors, async handlers, flush, scoping."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from crewtrace.errors import ConfigurationError
from crewtrace.events import (
    BaseEvent,
    BaseEventListener,
    EventBus,
    LLMCallStartedEvent,
    LLMEvent,
    LLMStreamChunkEvent,
    TaskStartedEvent,
)


def chunk(index: int, call_id: str = "c1") -> LLMStreamChunkEvent:
    return LLMStreamChunkEvent(call_id=call_id, model="m", chunk=f"t{index}", chunk_index=index)


def test_handler_called_with_source_and_event(bus: EventBus) -> None:
    calls: list[tuple[Any, BaseEvent]] = []
    bus.on(LLMStreamChunkEvent)(lambda source, event: calls.append((source, event)))
    event = chunk(0)
    bus.emit("the-source", event)
    assert calls == [("the-source", event)]


def test_base_class_handler_receives_subclasses_but_not_siblings(bus: EventBus) -> None:
    seen: list[str] = []
    bus.on(LLMEvent)(lambda s, e: seen.append(e.type))
    bus.emit(None, chunk(0))
    bus.emit(None, LLMCallStartedEvent(call_id="c", model="m", messages=[], stream=True))
    bus.emit(None, TaskStartedEvent(description="d", expected_output="o"))
    assert seen == ["llm_stream_chunk", "llm_call_started"]


def test_handlers_run_in_registration_order_across_base_and_exact_types(bus: EventBus) -> None:
    order: list[str] = []
    bus.on(LLMStreamChunkEvent)(lambda s, e: order.append("exact-1"))
    bus.on(BaseEvent)(lambda s, e: order.append("base"))
    bus.on(LLMStreamChunkEvent)(lambda s, e: order.append("exact-2"))
    bus.emit(None, chunk(0))
    assert order == ["exact-1", "base", "exact-2"]


def test_raising_handler_is_logged_by_name_and_others_still_run(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    reached: list[int] = []

    def broken_handler(source: Any, event: BaseEvent) -> None:
        raise RuntimeError("boom")

    bus.on(LLMStreamChunkEvent)(broken_handler)
    bus.on(LLMStreamChunkEvent)(lambda s, e: reached.append(e.chunk_index))
    with caplog.at_level(logging.ERROR, logger="crewtrace.events"):
        bus.emit(None, chunk(0))
        bus.emit(None, chunk(1))
    assert reached == [0, 1]
    messages = [r.getMessage() for r in caplog.records if r.name == "crewtrace.events"]
    assert len(messages) == 2 and all("broken_handler" in m for m in messages)
    assert caplog.records[0].exc_info is not None


def test_off_unregisters_only_that_pair(bus: EventBus) -> None:
    seen: list[str] = []

    def a(s: Any, e: BaseEvent) -> None:
        seen.append("a")

    def b(s: Any, e: BaseEvent) -> None:
        seen.append("b")

    bus.on(LLMStreamChunkEvent)(a)
    bus.on(LLMStreamChunkEvent)(b)
    bus.off(LLMStreamChunkEvent, a)
    bus.off(TaskStartedEvent, b)  # unknown pair: ignored
    bus.emit(None, chunk(0))
    assert seen == ["b"]
    assert not bus.has_handlers(TaskStartedEvent)
    assert bus.has_handlers(LLMStreamChunkEvent)


def test_handler_may_unregister_itself_or_register_another_while_handling(bus: EventBus) -> None:
    seen: list[str] = []

    def once(source: Any, event: BaseEvent) -> None:
        seen.append("once")
        bus.off(LLMStreamChunkEvent, once)
        bus.on(LLMStreamChunkEvent)(lambda s, e: seen.append("late"))

    bus.on(LLMStreamChunkEvent)(once)
    bus.on(LLMStreamChunkEvent)(lambda s, e: seen.append("steady"))
    bus.emit(None, chunk(0))
    bus.emit(None, chunk(1))
    assert seen == ["once", "steady", "steady", "late"]


def test_register_rejects_non_event_types_and_non_callables(bus: EventBus) -> None:
    with pytest.raises(ConfigurationError, match="BaseEvent subclass"):
        bus.register_handler(dict, lambda s, e: None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="callable"):
        bus.register_handler(LLMStreamChunkEvent, "not a function")  # type: ignore[arg-type]


def test_events_of_one_call_reach_each_handler_in_emission_order_across_threads(bus: EventBus) -> None:
    per_call: dict[str, list[int]] = {}
    lock = threading.Lock()

    def handler(source: Any, event: LLMStreamChunkEvent) -> None:
        with lock:
            per_call.setdefault(event.call_id, []).append(event.chunk_index)

    bus.on(LLMStreamChunkEvent)(handler)

    def emit_call(call_id: str) -> None:
        for i in range(500):
            bus.emit(None, chunk(i, call_id))

    threads = [threading.Thread(target=emit_call, args=(f"call-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert per_call == {f"call-{n}": list(range(500)) for n in range(4)}


def test_async_handlers_run_in_order_and_flush_waits_for_them(bus: EventBus) -> None:
    seen: list[int] = []
    release = threading.Event()

    async def slow_async(source: Any, event: LLMStreamChunkEvent) -> None:
        if event.chunk_index == 0:
            await asyncio.to_thread(release.wait, 10)
        await asyncio.sleep(0.01 if event.chunk_index % 2 == 0 else 0)
        seen.append(event.chunk_index)

    bus.on(LLMStreamChunkEvent)(slow_async)
    for i in range(20):
        bus.emit(None, chunk(i))
    assert seen == [], "emit returned while the first handler call was still held: it does not wait for them"
    release.set()
    assert bus.flush(timeout=10)
    assert seen == list(range(20))


def test_flush_times_out_with_false_while_a_handler_is_still_running(bus: EventBus) -> None:
    release = threading.Event()

    async def stuck(source: Any, event: BaseEvent) -> None:
        while not release.is_set():
            await asyncio.sleep(0.01)

    bus.on(LLMStreamChunkEvent)(stuck)
    bus.emit(None, chunk(0))
    assert bus.flush(timeout=0.2) is False
    release.set()
    assert bus.flush(timeout=5) is True


def test_failing_async_handler_is_logged(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    async def async_broken(source: Any, event: BaseEvent) -> None:
        raise ValueError("nope")

    bus.on(LLMStreamChunkEvent)(async_broken)
    with caplog.at_level(logging.ERROR, logger="crewtrace.events"):
        bus.emit(None, chunk(0))
        assert bus.flush(timeout=5)
    assert any("async_broken" in r.getMessage() for r in caplog.records)


def test_scoped_handlers_start_empty_and_restore(bus: EventBus) -> None:
    outer: list[int] = []
    inner: list[int] = []
    bus.on(LLMStreamChunkEvent)(lambda s, e: outer.append(e.chunk_index))
    with bus.scoped_handlers():
        bus.on(LLMStreamChunkEvent)(lambda s, e: inner.append(e.chunk_index))
        bus.emit(None, chunk(0))
    bus.emit(None, chunk(1))
    assert inner == [0]
    assert outer == [1]


def test_emit_without_subscribers_is_a_no_op(bus: EventBus) -> None:
    assert not bus.has_handlers(LLMStreamChunkEvent)
    bus.emit(None, chunk(0))  # nothing to call, nothing raised


def test_listener_registers_in_init_and_close_unregisters(bus: EventBus) -> None:
    seen: list[int] = []

    class Listener(BaseEventListener):
        def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
            @crewtrace_event_bus.on(LLMStreamChunkEvent)
            def on_chunk(source: Any, event: LLMStreamChunkEvent) -> None:
                seen.append(event.chunk_index)

    listener = Listener(bus)
    bus.emit(None, chunk(0))
    listener.close()
    listener.close()
    bus.emit(None, chunk(1))
    assert seen == [0]
    assert not bus.has_handlers(LLMStreamChunkEvent)


def test_listener_defaults_to_the_global_bus() -> None:
    from crewtrace.events import crewtrace_event_bus

    seen: list[int] = []

    class Listener(BaseEventListener):
        def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
            crewtrace_event_bus.on(LLMStreamChunkEvent)(lambda s, e: seen.append(e.chunk_index))

    with crewtrace_event_bus.scoped_handlers():
        Listener()
        crewtrace_event_bus.emit(None, chunk(7))
    assert seen == [7]
