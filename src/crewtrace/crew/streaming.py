"""Crew-level streaming: ``Crew(stream=True)`` hands every chunk of a run to one iterator.

CrewAI's names (``CrewStreamingOutput``, ``StreamChunk``, ``StreamChunkType``,
``ToolCallChunk``; the chunk types live in :mod:`crewtrace.crew.outputs`), so code
ports by changing imports. The chunks are the run's ``LLMStreamChunkEvent``s, the
same events listeners and the bridge see, handed to the run directly by its LLM
calls (through the run's ``RunSink``, never by a bus handler that sees every
run's chunks): text and tool-call fragments, in order, each with its task, agent
and LLM call. Tool *results* are not chunks (the model did not generate them);
they are the ``ToolUsageFinishedEvent`` / ``ToolUsageErrorEvent`` of the same ``run_id``.

How a run is driven:

- ``kickoff()``: the run's flow is driven on a worker thread (in a copy of the
  caller's context, so a span open around ``kickoff()`` still parents the
  run). Chunks cross a bounded queue; when it is full the LLM call delivering a
  chunk waits, which stops the LLM stream from being read: back-pressure all the
  way to the server. Stopping (break, ``close()``, Ctrl-C, garbage collection)
  cuts the connection of the LLM stream the worker reads and wakes the worker,
  which raises ``Stopped`` at once; the LLM layer treats that as a cancellation
  (it is a ``CancelledError``). A sync tool that is running is waited for.
- ``kickoff_async()``: the flow runs as an asyncio task in the caller's loop
  (async tools keep their loop). A chunk cannot wait there without blocking the
  loop, so the task waits for room before each LLM or tool call instead; the
  queue thus holds at most ``MAX_PENDING_CHUNKS`` plus the chunks of one LLM call
  (which the LLM layer holds for that call anyway). Stopping cancels the task.

Either way the run has stopped, and every span has ended, when ``close()`` /
``aclose()`` or the loop over the chunks returns. The run's outcome is one
``concurrent.futures.Future``: its output, its error, or cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from contextvars import copy_context
from types import TracebackType

from crewtrace.crew._run import Run
from crewtrace.crew._stream_engine import MAX_PENDING_CHUNKS, TaskRun, ThreadRun
from crewtrace.crew.outputs import CrewOutput, StreamChunk
from crewtrace.errors import ResultNotReady, StreamClosed, StreamConsumed, StreamError

__all__ = ["MAX_PENDING_CHUNKS", "CrewStreamingOutput"]


class CrewStreamingOutput:
    """What ``kickoff()`` / ``kickoff_async()`` of a ``Crew(stream=True)`` return (made by the crew, not by you).

    Iterate it once (``for``, or ``async for`` when it came from ``kickoff_async``);
    the run starts with the iteration. Then ``.result`` is the ``CrewOutput``. An
    error in the run is raised by the iterator after the chunks that arrived
    before it. Leaving the loop early, ``close()`` / ``aclose()``, leaving a
    ``with`` block or dropping the iterator stops the run. Misuse raises a
    :class:`~crewtrace.errors.StreamError`.
    """

    def __init__(self, run: Run, *, asynchronous: bool) -> None:
        self.run_id = run.run_id
        """Known before the run starts: the ``run_id`` of its events (tool results, for one)."""
        self._run = run
        self._asynchronous = asynchronous
        self._outcome: Future[CrewOutput] = Future()
        self._context = copy_context()  # kickoff()'s: a span open around it parents the run
        self._engine: ThreadRun | TaskRun | None = None

    def __iter__(self) -> Iterator[StreamChunk]:
        if self._asynchronous:
            raise StreamError("this stream came from kickoff_async(): read it with `async for`")
        engine = ThreadRun(self._run, self._outcome, self._context, MAX_PENDING_CHUNKS)
        self._claim(engine)
        return engine.chunks()

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        if not self._asynchronous:
            raise StreamError("this stream came from kickoff(): read it with `for`, or use kickoff_async()")
        engine = TaskRun(self._run, self._outcome, self._context, MAX_PENDING_CHUNKS)
        self._claim(engine)
        return engine.chunks()

    @property
    def result(self) -> CrewOutput:
        """The run's ``CrewOutput``; raises the run's error if it failed, a ``StreamError`` if there is none."""
        outcome = self._outcome
        if not outcome.done():
            raise ResultNotReady("the run has not finished: iterate over every chunk before reading .result")
        if outcome.cancelled():
            raise StreamClosed("the stream was closed before the run finished: there is no result")
        return outcome.result()

    @property
    def is_completed(self) -> bool:
        """Whether the run has ended (finished, failed or cancelled)."""
        return self._outcome.done()

    @property
    def is_cancelled(self) -> bool:
        """Whether the consumer stopped the run before it ended."""
        return self._outcome.cancelled()

    def close(self) -> None:
        """Stop the run and wait until it has stopped (for ``kickoff_async()`` streams: ``aclose()``)."""
        if self._asynchronous:
            raise StreamError("this stream came from kickoff_async(): use `await output.aclose()`")
        if isinstance(self._engine, ThreadRun):
            self._engine.close()
        else:  # not iterated yet
            self._outcome.cancel()

    async def aclose(self) -> None:
        """Stop the run and wait until it has stopped."""
        if isinstance(self._engine, ThreadRun):
            await asyncio.to_thread(self._engine.close)
        elif self._engine is None:
            self._outcome.cancel()
        else:
            await self._engine.aclose()

    def __enter__(self) -> CrewStreamingOutput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> CrewStreamingOutput:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _claim(self, engine: ThreadRun | TaskRun) -> None:
        if self._engine is not None:
            raise StreamConsumed("a CrewStreamingOutput can be iterated once: kick the crew off again for a new run")
        self._engine = engine
