"""Crew-level streaming: ``Crew(stream=True)`` hands every chunk of a run to one iterator.

CrewAI's names (``CrewStreamingOutput``, ``StreamChunk``, ``StreamChunkType``,
``ToolCallChunk``), so code ports by changing imports. The chunks are the
run's ``LLMStreamChunkEvent``s, the same events listeners and the bridge see,
taken from the crew's bus by the run's ``run_id``: text and tool-call
fragments, in order, each with its task, agent and LLM call. Tool *results*
are not chunks (the model did not generate them); they are the
``ToolUsageFinishedEvent`` / ``ToolUsageErrorEvent`` of the same ``run_id``.

How a run is driven:

- ``kickoff()``: the run's flow is driven on a worker thread (in a copy of the
  caller's context, so a span open around ``kickoff()`` still parents the
  run). Chunks cross a bounded queue; when it is full the chunk handler
  blocks, which stops the LLM stream from being read: back-pressure all the
  way to the server. Stopping (break, ``close()``, garbage collection) wakes
  the worker, which raises ``StreamCancelled`` at its next chunk or step;
  the LLM layer treats that as a cancellation (it is a ``CancelledError``).
- ``kickoff_async()``: the flow runs as an asyncio task in the caller's loop
  (async tools keep their loop). A chunk handler cannot wait there without
  blocking the loop, so the task waits for room before each LLM or tool call
  instead; the queue thus holds at most ``MAX_PENDING_CHUNKS`` plus the chunks
  of one LLM call (which the LLM layer holds for that call anyway). Stopping
  cancels the task.

Either way the run has stopped, and every span has ended, when ``close()`` /
``aclose()`` or the loop over the chunks returns.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextvars import copy_context
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, Field

from crewtrace.crew._flow import Flow
from crewtrace.crew._stream_engine import TaskRun, ThreadRun
from crewtrace.events.bus import EventBus
from crewtrace.events.types.llm import LLMStreamChunkEvent, StreamChunkType

if TYPE_CHECKING:
    from crewtrace.crew._run import RunResult
    from crewtrace.crew.crew import CrewOutput
    from crewtrace.crew.task import Task

__all__ = ["MAX_PENDING_CHUNKS", "CrewStreamingOutput", "StreamChunk", "StreamChunkType", "ToolCallChunk"]

MAX_PENDING_CHUNKS: Final = 256
"""Chunks queued between a run and a consumer that has not read them yet."""


class ToolCallChunk(BaseModel):
    """A tool call as far as it has streamed; ``tool_id`` and ``tool_name`` are filled on every fragment."""

    tool_id: str | None = None
    tool_name: str | None = None
    arguments: str = Field(default="", description="The JSON arguments received so far (as in CrewAI).")
    index: int = Field(default=0, description="Which tool call of the LLM response, from 0.")


class StreamChunk(BaseModel):
    """One streamed chunk of a crew run, with the task, agent and LLM call it belongs to."""

    content: str = Field(description="The text, or for a tool-call chunk its argument fragment.")
    chunk_type: StreamChunkType = StreamChunkType.TEXT
    task_index: int = Field(default=0, description="0-based position of the task in the crew.")
    task_name: str = ""
    task_id: str = ""
    agent_role: str = ""
    agent_id: str = ""
    tool_call: ToolCallChunk | None = None
    call_id: str = Field(default="", description="The LLM call: tells two calls of one agent and task apart.")
    chunk_index: int = Field(default=0, description="0-based and contiguous within the call.")
    run_id: str = ""

    def __str__(self) -> str:
        return self.content


RunFactory = Callable[[str], Flow["RunResult"]]
"""Makes the run's flow for a given run id (nothing starts until it is driven)."""


class CrewStreamingOutput:
    """What ``kickoff()`` / ``kickoff_async()`` of a ``Crew(stream=True)`` return (made by the crew, not by you).

    Iterate it once (``for``, or ``async for`` when it came from ``kickoff_async``);
    the run starts with the iteration. Then ``.result`` is the ``CrewOutput``. An
    error in the run is raised by the iterator after the chunks that arrived
    before it. Leaving the loop early, ``close()`` / ``aclose()``, leaving a
    ``with`` block or dropping the iterator stops the run.
    """

    def __init__(
        self,
        factory: RunFactory,
        finish: Callable[[RunResult], CrewOutput],
        bus: EventBus,
        tasks: Sequence[Task],
        *,
        asynchronous: bool,
    ) -> None:
        self.run_id = uuid.uuid4().hex
        """Known before the run starts: the ``run_id`` of its events (tool results, for one)."""
        self._asynchronous = asynchronous
        self._state = _RunState(self.run_id, factory, finish, bus, {task.id: n for n, task in enumerate(tasks)})
        self._engine: ThreadRun | TaskRun | None = None

    def __iter__(self) -> Iterator[StreamChunk]:
        if self._asynchronous:
            raise RuntimeError("this stream came from kickoff_async(): read it with `async for`")
        engine = ThreadRun(self._state)
        self._claim(engine)
        return engine.chunks()

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        if not self._asynchronous:
            raise RuntimeError("this stream came from kickoff(): read it with `for`, or use kickoff_async()")
        engine = TaskRun(self._state)
        self._claim(engine)
        return engine.chunks()

    @property
    def result(self) -> CrewOutput:
        """The run's ``CrewOutput``; raises the run's error if it failed, RuntimeError before the end."""
        return self._state.result()

    @property
    def is_completed(self) -> bool:
        """Whether the run has ended (finished, failed or cancelled)."""
        return self._state.ended

    @property
    def is_cancelled(self) -> bool:
        """Whether the consumer stopped the run before it ended."""
        return self._state.cancelled

    def close(self) -> None:
        """Stop the run and wait until it has stopped (for ``kickoff_async()`` streams: ``aclose()``)."""
        if self._asynchronous:
            raise RuntimeError("this stream came from kickoff_async(): use `await output.aclose()`")
        if isinstance(self._engine, ThreadRun):
            self._engine.close()
        else:
            self._state.cancel()

    async def aclose(self) -> None:
        """Stop the run and wait until it has stopped."""
        if isinstance(self._engine, ThreadRun):
            await asyncio.to_thread(self._engine.close)
        elif self._engine is None:
            self._state.cancel()
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
            raise RuntimeError("a CrewStreamingOutput can be iterated once: kick the crew off again for a new run")
        self._engine = engine


class _RunState:
    """One run's identity, outcome and chunk source; shared by whichever engine drives it."""

    def __init__(
        self,
        run_id: str,
        factory: RunFactory,
        finish: Callable[[RunResult], CrewOutput],
        bus: EventBus,
        positions: dict[str, int],
    ) -> None:
        self.run_id = run_id
        self.factory = factory
        self.finish = finish
        self.bus = bus
        self.positions = positions
        self.max_pending = MAX_PENDING_CHUNKS
        self.context = copy_context()  # kickoff()'s: a span open around it parents the run
        self.output: CrewOutput | None = None
        self.error: BaseException | None = None
        self.ended = False
        self.cancelled = False

    def result(self) -> CrewOutput:
        if self.output is not None:
            return self.output
        if self.cancelled:
            raise RuntimeError("the stream was closed before the run finished: there is no result")
        if self.error is not None:
            raise self.error
        raise RuntimeError("the run has not finished: iterate over every chunk before reading .result")

    def settle(self, output: CrewOutput | None, error: BaseException | None) -> None:
        self.output, self.error, self.ended = output, error, True

    def cancel(self) -> bool:
        """Mark the run stopped by its consumer; False if it had already ended."""
        if not self.ended:
            self.cancelled = True
        return self.cancelled

    def subscribe(self, put: Callable[[StreamChunk], None]) -> Callable[[], None]:
        """Send this run's chunk events to ``put`` as StreamChunks; returns the unsubscribe."""

        def on_chunk(source: Any, event: LLMStreamChunkEvent) -> None:
            if event.run_id == self.run_id:
                put(self._chunk(event))

        self.bus.register_handler(LLMStreamChunkEvent, on_chunk)
        return lambda: self.bus.off(LLMStreamChunkEvent, on_chunk)

    def _chunk(self, event: LLMStreamChunkEvent) -> StreamChunk:
        tool_call = None
        if event.tool_call is not None:
            call = event.tool_call
            tool_call = ToolCallChunk(
                tool_id=call.id, tool_name=call.function.name, arguments=call.function.arguments, index=call.index
            )
        task_id = event.task_id or ""
        return StreamChunk(
            content=event.chunk,
            chunk_type=event.chunk_type,
            task_index=self.positions.get(task_id, 0),
            task_name=event.task_name or "",
            task_id=task_id,
            agent_role=event.agent_role or "",
            agent_id=event.agent_id or "",
            tool_call=tool_call,
            call_id=event.call_id,
            chunk_index=event.chunk_index,
            run_id=self.run_id,
        )
