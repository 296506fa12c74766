"""How a streaming crew run is driven: a worker thread for ``kickoff()``, an asyncio task for ``kickoff_async()``.

See :mod:`crewtrace.crew.streaming` for the design. Both engines drive the run's
flow with a :class:`StreamSink` in its context (every chunk event of the run's LLM
calls goes straight to the consumer's queue; a stop cuts the streams in flight),
each request of the flow behind the queue's gate, and settle the run's one
outcome, a ``concurrent.futures.Future``: the ``CrewOutput``, the run's error, or
cancelled when the consumer stopped the run before it ended.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import Context
from dataclasses import dataclass, replace
from typing import Any, Final

from crewtrace.crew._flow import Flow, LLMRequest, Request, adrive, drive
from crewtrace.crew._run import Run
from crewtrace.crew.outputs import CrewOutput, StreamChunk, ToolCallChunk
from crewtrace.events.scope import RunSink
from crewtrace.events.types.llm import LLMStreamChunkEvent

MAX_PENDING_CHUNKS: Final = 256
"""Chunks queued between a run and a consumer that has not read them yet."""

Outcome = Future[CrewOutput]
"""How a run ended, set once: its output, its error, or cancelled (stopped by its consumer)."""


class Stopped(asyncio.CancelledError):
    """Raised inside a run whose consumer stopped reading (never reaches the consumer)."""


def _stopped() -> Stopped:
    return Stopped("the consumer stopped the stream (break, close(), Ctrl-C, garbage collection)")


class ChunkQueue:
    """Chunks from the run to its consumer, and the gate the run's steps pass: stopped, or (async) room."""

    stopped = False

    def check(self) -> None:
        if self.stopped:
            raise _stopped()

    async def room(self) -> None:
        self.check()

    def put(self, chunk: StreamChunk) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """The consumer is gone: drop what is queued, wake whoever waits."""
        raise NotImplementedError

    def end(self) -> None:
        """The run has ended: the consumer reads what is left, then stops."""
        raise NotImplementedError


class StreamSink(RunSink):
    """A streaming run's sink: its LLM calls' chunk events become the consumer's ``StreamChunk``s."""

    takes_chunks = True

    def __init__(self, run: Run, queue: ChunkQueue) -> None:
        super().__init__(run.bus)
        self._queue = queue
        self._run_id = run.run_id
        self._positions = run.task_positions()
        self._last_call: tuple[str, dict[str, Any]] = ("", {})
        self._lock = threading.Lock()
        self._aborts: set[Callable[[BaseException], None]] = set()

    def deliver(self, event: LLMStreamChunkEvent) -> None:
        # Built by pydantic-core from typed values: for these small models that is about half the cost of
        # model_construct's Python loop (pydantic 2.14: 2.0 vs 3.8 us per StreamChunk).
        last_call, fields = self._last_call
        if event.call_id != last_call:
            fields = self._call_fields(event)
        call = event.tool_call
        tool_call = None
        if call is not None:
            function = call.function
            tool_call = ToolCallChunk(
                tool_id=call.id, tool_name=function.name, arguments=function.arguments, index=call.index
            )
        self._queue.put(
            StreamChunk(
                **fields,
                content=event.chunk,
                chunk_type=event.chunk_type,
                tool_call=tool_call,
                chunk_index=event.chunk_index,
            )
        )

    def _call_fields(self, event: LLMStreamChunkEvent) -> dict[str, Any]:
        """What every chunk of one LLM call shares, worked out at its first chunk."""
        task_id = event.task_id or ""
        fields = {
            "task_index": self._positions.get(task_id, 0),
            "task_name": event.task_name or "",
            "task_id": task_id,
            "agent_role": event.agent_role or "",
            "agent_id": event.agent_id or "",
            "call_id": event.call_id,
            "run_id": self._run_id,
        }
        self._last_call = (event.call_id, fields)  # one assignment: calls on other threads never see half of it
        return fields

    def watch(self, abort: Callable[[BaseException], None]) -> Callable[[], None]:
        with self._lock:
            if self._queue.stopped:
                raise _stopped()
            self._aborts.add(abort)
        return lambda: self._unwatch(abort)

    def _unwatch(self, abort: Callable[[BaseException], None]) -> None:
        with self._lock:
            self._aborts.discard(abort)

    def stop(self) -> None:
        """The consumer left: stop the run at its next chunk or step, and cut the streams it is reading now."""
        with self._lock:
            self._queue.stop()
            aborts = list(self._aborts)
        reason = _stopped()
        for abort in aborts:
            abort(reason)


@dataclass(frozen=True, slots=True)
class Paced:
    """A request of the run that first goes through the gate."""

    request: Request
    gate: ChunkQueue

    def run(self) -> Any:
        self.gate.check()
        return self.request.run()

    async def arun(self) -> Any:
        await self.gate.room()
        return await self.request.arun()


def paced(flow: Flow[CrewOutput], gate: ChunkQueue) -> Flow[CrewOutput]:
    """The same flow, each of its requests behind the gate; results and errors pass through unchanged.

    Every LLM call streams, whatever ``stream=`` its LLM was built with: the run's chunks are the output.
    """
    try:
        request = next(flow)
        while True:
            if isinstance(request, LLMRequest):
                request = replace(request, stream=True)
            try:
                result = yield Paced(request, gate)
            except BaseException as exc:
                request = flow.throw(exc)
            else:
                request = flow.send(result)
    except StopIteration as stop:
        value: CrewOutput = stop.value
        return value


@contextmanager
def settling(outcome: Outcome, queue: ChunkQueue) -> Iterator[None]:
    """Around the drive: the block sets the output; an error is kept for the consumer, or the run is
    cancelled if its consumer stopped it. Then the consumer reads what is left."""
    try:
        yield
    except BaseException as exc:  # handed to the consumer, raised there
        if queue.stopped:
            outcome.cancel()
        else:
            outcome.set_exception(exc)
    finally:
        queue.end()


def raise_failure(outcome: Outcome) -> None:
    """After the last chunk: the run's error, if it failed (a cancelled run raises nothing)."""
    if outcome.done() and not outcome.cancelled():
        error = outcome.exception()
        if error is not None:
            raise error


def _thread_name(run: Run) -> str:
    return f"crewtrace-stream-{run.run_id[:8]}"


# -- kickoff(): a worker thread, a bounded queue that blocks ---------------------------------


class ThreadQueue(ChunkQueue):
    """Chunks from the worker (and any thread it starts) to the consumer; ``put`` blocks when full."""

    def __init__(self, maxsize: int) -> None:
        self._items: deque[StreamChunk] = deque()
        self._maxsize = maxsize
        self._changed = threading.Condition()
        self._done = False

    def put(self, chunk: StreamChunk) -> None:
        with self._changed:
            self._changed.wait_for(lambda: len(self._items) < self._maxsize or self.stopped)
            self.check()
            self._items.append(chunk)
            self._changed.notify_all()

    def get(self) -> StreamChunk | None:
        """The next chunk; None once the run has ended and every chunk was read, or on a stop."""
        with self._changed:
            self._changed.wait_for(lambda: self._items or self._done or self.stopped)
            if self.stopped or not self._items:
                return None
            chunk = self._items.popleft()
            self._changed.notify_all()
            return chunk

    def end(self) -> None:
        with self._changed:
            self._done = True
            self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self.stopped = True
            self._items.clear()
            self._changed.notify_all()


class ThreadRun:
    """Drives the run on a worker thread, in the context of the ``kickoff()`` call."""

    def __init__(self, run: Run, outcome: Outcome, context: Context, max_pending: int) -> None:
        self._run = run
        self._outcome = outcome
        self._context = context
        self._queue = ThreadQueue(max_pending)
        self._sink = StreamSink(run, self._queue)
        self._thread: threading.Thread | None = None

    def chunks(self) -> Iterator[StreamChunk]:
        if self._outcome.done():  # closed before the iteration started
            return
        self._thread = threading.Thread(target=self._context.run, args=(self._work,), name=_thread_name(self._run))
        self._thread.daemon = True
        self._thread.start()
        try:
            while (chunk := self._queue.get()) is not None:
                yield chunk
        finally:
            self.close()
        raise_failure(self._outcome)

    def close(self) -> None:
        """Stop the run and return once it has stopped: the LLM stream it reads is cut, not waited for."""
        self._sink.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if not self._outcome.done():  # never started
            self._outcome.cancel()

    def _work(self) -> None:
        with settling(self._outcome, self._queue):
            self._outcome.set_result(drive(paced(self._run.flow(self._sink), self._queue)))


# -- kickoff_async(): an asyncio task, waiting for room between steps --------------------------


class LoopQueue(ChunkQueue):
    """Chunks from the run's task to the consumer on the same loop; ``put`` never blocks the loop."""

    def __init__(self, maxsize: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._items: deque[StreamChunk] = deque()
        self._maxsize = maxsize
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._done = False

    def put(self, chunk: StreamChunk) -> None:
        self.check()
        if threading.get_ident() == self._loop_thread:
            self._append(chunk)
        else:  # an LLM call a sync tool makes on its worker thread
            self._loop.call_soon_threadsafe(self._append, chunk)

    def _append(self, chunk: StreamChunk) -> None:
        if self.stopped:
            return
        self._items.append(chunk)
        self._readable.set()
        if len(self._items) >= self._maxsize:
            self._writable.clear()

    async def room(self) -> None:
        await self._writable.wait()
        self.check()

    async def get(self) -> StreamChunk | None:
        while not self._items:
            if self._done or self.stopped:
                return None
            self._readable.clear()
            await self._readable.wait()
        chunk = self._items.popleft()
        if len(self._items) < self._maxsize:
            self._writable.set()
        return chunk

    def end(self) -> None:
        self._done = True
        self._readable.set()

    def stop(self) -> None:
        self.stopped = True
        self._items.clear()
        self._readable.set()
        self._writable.set()


class TaskRun:
    """Drives the run as an asyncio task in the consumer's loop, in the context of the ``kickoff_async()`` call."""

    def __init__(self, run: Run, outcome: Outcome, context: Context, max_pending: int) -> None:
        self._run = run
        self._outcome = outcome
        self._context = context
        self._max_pending = max_pending
        self._sink: StreamSink | None = None
        self._task: asyncio.Task[None] | None = None

    async def chunks(self) -> AsyncIterator[StreamChunk]:
        if self._outcome.done():  # closed before the iteration started
            return
        queue = LoopQueue(self._max_pending)  # needs the running loop
        self._sink = StreamSink(self._run, queue)
        work = self._work(queue, self._sink)
        self._task = self._context.run(asyncio.create_task, work, name=_thread_name(self._run))
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
        finally:
            await self.aclose()
        raise_failure(self._outcome)

    async def aclose(self) -> None:
        """Stop the run and return once it has stopped."""
        if self._sink is not None:
            self._sink.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})  # returns once the run has stopped, raises nothing of the run's
        if not self._outcome.done():  # never started
            self._outcome.cancel()

    async def _work(self, queue: LoopQueue, sink: StreamSink) -> None:
        with settling(self._outcome, queue):
            self._outcome.set_result(await adrive(paced(self._run.flow(sink), queue)))
