"""The bus under interrupts, hostile coroutine handlers, fork and odd callables.

What must hold: an interrupt (any BaseException) in one handler never keeps the event from the
handlers after it (the telemetry bridge is often one of them); the loop thread of coroutine handlers
survives anything a handler does and logs what it lost; ``flush()`` always terminates; a forked
child gets a working bus; ``generation`` tells emitters when registrations changed; callables whose
``__call__`` is ``async def`` are coroutine handlers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import select
import signal
import sys
import threading
from typing import Any

import pytest
from tests.support.polling import wait_until

from crewtrace.errors import ConfigurationError
from crewtrace.events import BaseEvent, EventBus, LLMCallStartedEvent, LLMEvent, LLMStreamChunkEvent, TaskStartedEvent

INTERRUPTS = [KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError]
LOOP_THREAD = "crewtrace-async-handlers"


def chunk(index: int) -> LLMStreamChunkEvent:
    return LLMStreamChunkEvent(call_id="c1", model="m", chunk=f"t{index}", chunk_index=index)


def bus_failures(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "crewtrace.events" and name in r.getMessage()]


def flush_without_timeout_returns(bus: EventBus) -> bool:
    """Run ``bus.flush()`` (no timeout) in a thread; wait for it with a deadline so a hang fails, not blocks."""
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(bus.flush()), daemon=True)
    thread.start()
    wait_until(lambda: not thread.is_alive(), timeout=10, what="flush() without a timeout returned")
    return result == [True]


# 10.9: an interrupted synchronous handler


@pytest.mark.parametrize("interrupt", INTERRUPTS, ids=lambda e: e.__name__)
def test_an_interrupt_in_one_handler_still_reaches_every_later_handler_then_propagates(
    bus: EventBus, interrupt: type[BaseException]
) -> None:
    seen: list[str] = []
    async_seen: list[int] = []

    def interrupted_handler(source: Any, event: BaseEvent) -> None:
        seen.append("interrupted")
        raise interrupt("stop")

    async def async_after(source: Any, event: LLMStreamChunkEvent) -> None:
        async_seen.append(event.chunk_index)

    bus.on(LLMStreamChunkEvent)(interrupted_handler)
    bus.on(LLMEvent)(lambda s, e: seen.append("bridge-like"))
    bus.on(LLMStreamChunkEvent)(async_after)
    bus.on(BaseEvent)(lambda s, e: seen.append("last"))

    with pytest.raises(interrupt, match="stop"):
        bus.emit(None, chunk(0))
    assert seen == ["interrupted", "bridge-like", "last"]
    assert bus.flush(timeout=10) and async_seen == [0]


def test_the_first_of_two_interrupts_propagates_and_the_second_is_logged(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def first_interrupt(source: Any, event: BaseEvent) -> None:
        raise KeyboardInterrupt("first")

    def second_interrupt(source: Any, event: BaseEvent) -> None:
        raise SystemExit("second")

    def plain_failure(source: Any, event: BaseEvent) -> None:
        raise RuntimeError("ordinary")

    for handler in (first_interrupt, second_interrupt, plain_failure):
        bus.on(LLMStreamChunkEvent)(handler)
        bus.on(LLMStreamChunkEvent)(lambda s, e, name=handler.__name__: seen.append(f"after {name}"))

    with caplog.at_level(logging.ERROR, logger="crewtrace.events"), pytest.raises(KeyboardInterrupt, match="first"):
        bus.emit(None, chunk(0))
    assert seen == ["after first_interrupt", "after second_interrupt", "after plain_failure"]
    assert not bus_failures(caplog, "first_interrupt"), "the propagating interrupt is the caller's to report"
    (second,) = bus_failures(caplog, "second_interrupt")
    assert second.exc_info and second.exc_info[0] is SystemExit
    assert len(bus_failures(caplog, "plain_failure")) == 1


# 10.10: coroutine handlers that raise BaseExceptions or attack the loop


@pytest.mark.parametrize("interrupt", INTERRUPTS, ids=lambda e: e.__name__)
def test_a_coroutine_handler_raising_any_base_exception_loses_only_that_event(
    bus: EventBus, caplog: pytest.LogCaptureFixture, interrupt: type[BaseException]
) -> None:
    handled: list[int] = []
    other: list[int] = []

    async def raises_on_even(source: Any, event: LLMStreamChunkEvent) -> None:
        await asyncio.sleep(0)
        if event.chunk_index % 2 == 0:
            raise interrupt("handler gave up")
        handled.append(event.chunk_index)

    async def other_handler(source: Any, event: LLMStreamChunkEvent) -> None:
        other.append(event.chunk_index)

    bus.on(LLMStreamChunkEvent)(raises_on_even)
    bus.on(LLMStreamChunkEvent)(other_handler)
    with caplog.at_level(logging.ERROR, logger="crewtrace.events"):
        for i in range(6):
            bus.emit(None, chunk(i))
        assert bus.flush(timeout=10) is True
        assert handled == [1, 3, 5] and other == list(range(6))
        # The loop is still alive for every handler, and flush() without a timeout returns.
        bus.emit(None, chunk(7))
        assert flush_without_timeout_returns(bus)
    assert handled == [1, 3, 5, 7] and other == [*range(6), 7]
    lost = bus_failures(caplog, "raises_on_even")
    assert len(lost) == 3 and all(r.exc_info and r.exc_info[0] is interrupt for r in lost)
    assert all("llm_stream_chunk" in r.getMessage() for r in lost), "the log says which event was lost"


def test_an_exit_escaping_from_a_task_a_handler_started_does_not_stop_the_loop(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[int] = []
    background: list[asyncio.Task[None]] = []

    async def exit_soon() -> None:
        raise SystemExit("from a background task")

    async def spawns_exit(source: Any, event: LLMStreamChunkEvent) -> None:
        if event.chunk_index == 0:
            background.append(asyncio.get_running_loop().create_task(exit_soon()))
            await asyncio.sleep(0.01)  # the background task runs (and escapes into the loop) meanwhile
        else:
            assert isinstance(background[0].exception(), SystemExit)  # retrieved: asyncio stays quiet at exit
        seen.append(event.chunk_index)

    bus.on(LLMStreamChunkEvent)(spawns_exit)
    with caplog.at_level(logging.ERROR, logger="crewtrace.events"):
        bus.emit(None, chunk(0))
        assert bus.flush(timeout=10) is True
        bus.emit(None, chunk(1))
        assert bus.flush(timeout=10) is True
    assert seen == [0, 1]
    escaped = [r for r in caplog.records if r.name == "crewtrace.events" and r.exc_info]
    assert escaped and escaped[0].exc_info is not None and escaped[0].exc_info[0] is SystemExit


def test_a_handler_stopping_the_loop_does_not_stop_the_bus(bus: EventBus) -> None:
    seen: list[int] = []

    async def stops_loop(source: Any, event: LLMStreamChunkEvent) -> None:
        asyncio.get_running_loop().stop()
        seen.append(event.chunk_index)

    bus.on(LLMStreamChunkEvent)(stops_loop)
    for i in range(3):
        bus.emit(None, chunk(i))
        assert bus.flush(timeout=10) is True
    assert seen == [0, 1, 2]


def test_a_handler_cancelling_the_bus_tasks_loses_only_the_event_it_interrupted(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    victim_seen: list[int] = []
    gate_entered, release_gate, victim_waiting = threading.Event(), threading.Event(), threading.Event()

    async def gate(source: Any, event: BaseEvent) -> None:
        gate_entered.set()
        release_gate.wait(10)  # blocks the loop thread on purpose, so the next emit queues up behind it

    async def canceller(source: Any, event: BaseEvent) -> None:
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    async def victim(source: Any, event: LLMStreamChunkEvent) -> None:
        if event.chunk_index == 1:
            victim_waiting.set()
            await asyncio.sleep(30)
        victim_seen.append(event.chunk_index)

    bus.on(TaskStartedEvent)(gate)
    bus.on(LLMStreamChunkEvent)(canceller)
    bus.on(LLMStreamChunkEvent)(victim)
    bus.on(LLMCallStartedEvent)(canceller)
    with caplog.at_level(logging.WARNING, logger="crewtrace.events"):
        # The canceller's task runs first and cancels the victim's task before that task ever started.
        bus.emit(None, TaskStartedEvent(description="d", expected_output="o"))
        wait_until(gate_entered.is_set, what="the gate handler holds the loop")
        bus.emit(None, chunk(0))
        release_gate.set()
        assert bus.flush(timeout=10) is True
        assert victim_seen == [0], "a handler's task cancelled before it started is taken over: nothing lost"
        # Cancelled while awaiting inside the handler: that event is lost (and logged), the next one runs.
        bus.off(LLMStreamChunkEvent, canceller)
        bus.emit(None, chunk(1))
        bus.emit(None, chunk(2))
        wait_until(victim_waiting.is_set, what="the victim is awaiting inside chunk 1")
        bus.emit(None, LLMCallStartedEvent(call_id="c", model="m", messages=[], stream=True))
        assert bus.flush(timeout=10) is True
    assert victim_seen == [0, 2]
    (lost,) = [r for r in bus_failures(caplog, "victim") if r.levelno == logging.ERROR]
    assert lost.exc_info and lost.exc_info[0] is asyncio.CancelledError and "llm_stream_chunk" in lost.getMessage()
    (resumed,) = [r for r in bus_failures(caplog, "victim") if r.levelno == logging.WARNING]
    assert "cancelled" in resumed.getMessage()


def test_flush_from_inside_a_coroutine_handler_is_refused_instead_of_waiting_for_itself(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    async def flushes_itself(source: Any, event: BaseEvent) -> None:
        bus.flush()

    bus.on(LLMStreamChunkEvent)(flushes_itself)
    with caplog.at_level(logging.ERROR, logger="crewtrace.events"):
        bus.emit(None, chunk(0))
        assert flush_without_timeout_returns(bus)
    (refused,) = bus_failures(caplog, "flushes_itself")
    assert refused.exc_info and refused.exc_info[0] is RuntimeError
    assert "wait for itself" in str(refused.exc_info[1])


# 10.11: fork


@pytest.mark.skipif(sys.platform == "win32", reason="os.fork exists on POSIX only")
def test_a_forked_child_gets_a_working_bus_for_coroutine_handlers(bus: EventBus) -> None:
    seen: list[tuple[int, int, str]] = []

    async def records(source: Any, event: LLMStreamChunkEvent) -> None:
        seen.append((os.getpid(), event.chunk_index, threading.current_thread().name))

    bus.on(LLMStreamChunkEvent)(records)
    bus.emit(None, chunk(0))
    assert bus.flush(timeout=10)  # the parent's loop thread exists when the fork happens

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        try:
            os.close(read_end)
            bus.emit(None, chunk(1))
            flushed = bus.flush(timeout=10)
            os.write(write_end, json.dumps({"flushed": flushed, "seen": seen}).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 30)
        report = json.loads(os.read(read_end, 65536)) if ready else None
    finally:
        os.close(read_end)
        if report is None:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert report is not None, "the child did not report within 30 s"
    assert report["flushed"] is True
    assert [index for _, index, _ in report["seen"]] == [0, 1]
    assert report["seen"][1][0] == pid and report["seen"][1][2] == LOOP_THREAD, "chunk 1 ran in the child"
    bus.emit(None, chunk(2))  # the parent's bus carries on
    assert bus.flush(timeout=10) and [index for _, index, _ in seen] == [0, 2]


# 10.12: generation


def test_generation_changes_on_every_kind_of_registration_change(bus: EventBus) -> None:
    def handler(source: Any, event: BaseEvent) -> None: ...

    seen = [bus.generation]

    def changed() -> bool:
        seen.append(bus.generation)
        return seen[-1] != seen[-2]

    bus.emit(None, chunk(0))
    bus.has_handlers(LLMStreamChunkEvent)
    assert not changed(), "emit and has_handlers change nothing"
    bus.on(LLMStreamChunkEvent)(handler)
    assert changed()
    bus.register_handler(TaskStartedEvent, handler)
    assert changed()
    bus.off(LLMStreamChunkEvent, handler)
    assert changed()
    with bus.scoped_handlers():
        assert changed()
        bus.on(LLMStreamChunkEvent)(handler)
        assert changed()
    assert changed()
    assert isinstance(bus.generation, int)


def test_a_cached_has_handlers_rechecked_on_generation_change_sees_a_late_listener(bus: EventBus) -> None:
    """The emitter's pattern (LLM layer): re-check has_handlers only when generation moved."""
    late: list[int] = []
    generation, listening = bus.generation, bus.has_handlers(LLMStreamChunkEvent)
    for i in range(4):
        if i == 2:
            bus.on(LLMStreamChunkEvent)(lambda s, e: late.append(e.chunk_index))
        if bus.generation != generation:
            generation, listening = bus.generation, bus.has_handlers(LLMStreamChunkEvent)
        if listening:
            bus.emit(None, chunk(i))
    assert late == [2, 3]


# 10.13: callables whose __call__ is async def


class AsyncCallable:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str]] = []

    async def __call__(self, source: Any, event: LLMStreamChunkEvent, tag: str = "object") -> None:
        await asyncio.sleep(0)
        self.seen.append((tag, event.chunk_index, threading.current_thread().name))


async def tagged(seen: list[tuple[str, int, str]], source: Any, event: LLMStreamChunkEvent) -> None:
    seen.append(("partial", event.chunk_index, threading.current_thread().name))


def test_objects_with_async_call_and_partials_of_them_are_coroutine_handlers(bus: EventBus) -> None:
    handler = AsyncCallable()
    bus.on(LLMStreamChunkEvent)(handler)
    bus.on(LLMStreamChunkEvent)(functools.partial(handler, tag="partial object"))
    bus.on(LLMStreamChunkEvent)(functools.partial(functools.partial(tagged), handler.seen))
    bus.emit(None, chunk(0))
    assert bus.flush(timeout=10)
    assert sorted(handler.seen) == [
        ("object", 0, LOOP_THREAD),
        ("partial", 0, LOOP_THREAD),
        ("partial object", 0, LOOP_THREAD),
    ]


def test_a_plain_callable_object_stays_synchronous(bus: EventBus) -> None:
    class SyncCallable:
        def __call__(self, source: Any, event: BaseEvent) -> None:
            seen.append(threading.current_thread().name)

    seen: list[str] = []
    bus.on(LLMStreamChunkEvent)(SyncCallable())
    bus.emit(None, chunk(0))
    assert seen == [threading.current_thread().name]


# 15.12: the public read-only view


def test_handler_count_counts_registrations_and_the_handlers_an_event_reaches(bus: EventBus) -> None:
    def handler(source: Any, event: BaseEvent) -> None: ...

    assert bus.handler_count() == 0 and bus.handler_count(LLMStreamChunkEvent) == 0
    bus.on(LLMStreamChunkEvent)(handler)
    bus.on(LLMEvent)(handler)
    bus.on(TaskStartedEvent)(handler)
    assert bus.handler_count() == 3
    assert bus.handler_count(LLMStreamChunkEvent) == 2, "its own class and its base"
    assert bus.handler_count(LLMCallStartedEvent) == 1
    assert bus.handler_count(TaskStartedEvent) == 1
    with bus.scoped_handlers():
        assert bus.handler_count() == 0
    bus.off(LLMEvent, handler)
    assert bus.handler_count() == 2 and bus.handler_count(LLMCallStartedEvent) == 0
    with pytest.raises(ConfigurationError, match="BaseEvent subclass"):
        bus.handler_count(dict)  # type: ignore[arg-type]
