"""How a streaming crew run is driven: a worker thread for ``kickoff()``, an asyncio task for ``kickoff_async()``.

See :mod:`crewtrace.crew.streaming` for the design. Both engines drive the
run's flow behind a gate (each request first checks whether the consumer
stopped the run and, for asyncio, waits for room in the queue) and hand the
outcome to the shared ``_RunState``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from crewtrace.crew._flow import Flow, LLMRequest, Request, adrive, drive

if TYPE_CHECKING:
    from crewtrace.crew._run import RunResult
    from crewtrace.crew.streaming import StreamChunk, _RunState


class StreamCancelled(asyncio.CancelledError):
    """Raised inside a run whose consumer stopped reading (never reaches the consumer)."""


class Gate:
    """What a run's steps check before they start: whether the consumer stopped it, and (async) room."""

    cancelled = False

    def check(self) -> None:
        if self.cancelled:
            raise StreamCancelled("the consumer stopped the stream (break, close(), garbage collection)")

    async def room(self) -> None:
        self.check()


@dataclass(frozen=True, slots=True)
class Paced:
    """A request of the run that first goes through the gate."""

    request: Request
    gate: Gate

    def run(self) -> Any:
        self.gate.check()
        return self.request.run()

    async def arun(self) -> Any:
        await self.gate.room()
        return await self.request.arun()


def paced(flow: Flow[RunResult], gate: Gate) -> Flow[RunResult]:
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
        value: RunResult = stop.value
        return value


# -- kickoff(): a worker thread, a bounded queue that blocks ---------------------------------


class ThreadQueue(Gate):
    """Chunks from the worker (and any thread it starts) to the consumer; ``put`` blocks when full."""

    def __init__(self, maxsize: int) -> None:
        self._items: deque[StreamChunk] = deque()
        self._maxsize = maxsize
        self._changed = threading.Condition()
        self._done = False

    def put(self, chunk: StreamChunk) -> None:
        with self._changed:
            self._changed.wait_for(lambda: len(self._items) < self._maxsize or self.cancelled)
            self.check()
            self._items.append(chunk)
            self._changed.notify_all()

    def get(self) -> StreamChunk | None:
        """The next chunk; None once the run has ended and every chunk was read, or on cancel."""
        with self._changed:
            self._changed.wait_for(lambda: self._items or self._done or self.cancelled)
            if self.cancelled or not self._items:
                return None
            chunk = self._items.popleft()
            self._changed.notify_all()
            return chunk

    def end(self) -> None:
        with self._changed:
            self._done = True
            self._changed.notify_all()

    def cancel(self) -> None:
        with self._changed:
            self.cancelled = True
            self._items.clear()
            self._changed.notify_all()


class ThreadRun:
    def __init__(self, state: _RunState) -> None:
        self._state = state
        self._queue = ThreadQueue(state.max_pending)
        self._thread: threading.Thread | None = None

    def chunks(self) -> Iterator[StreamChunk]:
        if self._state.cancelled:
            return
        self._thread = threading.Thread(
            target=self._state.context.run, args=(self._work,), name=f"crewtrace-stream-{self._state.run_id[:8]}"
        )
        self._thread.daemon = True
        self._thread.start()
        try:
            while (chunk := self._queue.get()) is not None:
                yield chunk
        finally:
            self.close()
        if self._state.error is not None and not self._state.cancelled:
            raise self._state.error

    def close(self) -> None:
        if self._state.cancel():
            self._queue.cancel()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _work(self) -> None:
        output, error = None, None
        try:
            unsubscribe = self._state.subscribe(self._queue.put)
            try:
                output = self._state.finish(drive(paced(self._state.factory(self._state.run_id), self._queue)))
            finally:
                unsubscribe()
        except BaseException as exc:  # handed to the consumer, raised there
            error = exc
        self._state.settle(output, error)
        self._queue.end()


# -- kickoff_async(): an asyncio task, waiting for room between steps --------------------------


class LoopQueue(Gate):
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
        if threading.get_ident() == self._loop_thread:
            self._append(chunk)
        else:  # an LLM call a sync tool makes on its worker thread
            self._loop.call_soon_threadsafe(self._append, chunk)

    def _append(self, chunk: StreamChunk) -> None:
        if self.cancelled:
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
            if self._done or self.cancelled:
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

    def cancel(self) -> None:
        self.cancelled = True
        self._items.clear()
        self._readable.set()
        self._writable.set()


class TaskRun:
    def __init__(self, state: _RunState) -> None:
        self._state = state
        self._queue: LoopQueue | None = None
        self._task: asyncio.Task[None] | None = None

    async def chunks(self) -> AsyncIterator[StreamChunk]:
        if self._state.cancelled:
            return
        queue = self._queue = LoopQueue(self._state.max_pending)
        name = f"crewtrace-stream-{self._state.run_id[:8]}"
        self._task = self._state.context.run(asyncio.create_task, self._work(queue), name=name)
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
        finally:
            await self.aclose()
        if self._state.error is not None and not self._state.cancelled:
            raise self._state.error

    async def aclose(self) -> None:
        if self._state.cancel() and self._queue is not None and self._task is not None:
            self._queue.cancel()
            self._task.cancel()
        if self._task is not None:
            await asyncio.wait({self._task})  # returns once the run has stopped, raises nothing of the run's
            if not self._state.ended:  # cancelled before it ever ran
                self._state.settle(None, None)

    async def _work(self, queue: LoopQueue) -> None:
        output, error = None, None
        try:
            unsubscribe = self._state.subscribe(queue.put)
            try:
                output = self._state.finish(await adrive(paced(self._state.factory(self._state.run_id), queue)))
            finally:
                unsubscribe()
        except BaseException as exc:  # handed to the consumer, raised there
            error = exc
        self._state.settle(output, error)
        queue.end()
        if isinstance(error, asyncio.CancelledError):
            raise error  # the task itself ends cancelled
