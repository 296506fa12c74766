"""Which run, task and agent the current code executes for, and where its LLM calls send what they produce.

The crew layer enters a scope around each agent's work, and a :class:`RunSink`
around each run; the LLM layer reads both once per call and stamps the scope on
every event of that call. ``ContextVar``s keep concurrent crews apart: asyncio
tasks get a copy, new threads start empty, so nothing crosses between runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar, TypeVar

from crewtrace.events.base import Attribution, BaseEvent
from crewtrace.events.bus import EventBus, crewtrace_event_bus
from crewtrace.events.types.llm import LLMStreamChunkEvent

__all__ = ["ExecutionScope", "RunSink", "current_scope", "current_sink", "use_scope", "use_sink"]

E = TypeVar("E", bound=BaseEvent)


class ExecutionScope(Attribution):
    """An :class:`~crewtrace.events.Attribution` that stamps events and derives narrower scopes."""

    def stamp(self, kind: type[E], /, **fields: Any) -> E:
        """A ``kind`` event with this scope's attribution and ``fields``."""
        values: dict[str, Any] = {**self.attribution(), **fields}
        return kind(**values)

    def within(self, **changes: str | None) -> ExecutionScope:
        """A copy with some attribution fields changed (a task's scope within its run, say)."""
        return self.model_copy(update=changes)


_EMPTY = ExecutionScope()
_current: ContextVar[ExecutionScope] = ContextVar("crewtrace_scope", default=_EMPTY)


def current_scope() -> ExecutionScope:
    """The scope of the running code (empty outside a crew run)."""
    return _current.get()


@contextmanager
def use_scope(scope: ExecutionScope) -> Iterator[ExecutionScope]:
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


class RunSink:
    """Where the LLM calls made during a crew run send their events; the LLM layer reads it once per call.

    An LLM built without a bus emits on ``bus``: the default bus outside any run, the
    run's bus inside one (in a tool the run calls, too). A streaming run's sink also
    takes every chunk event of its calls directly (:attr:`takes_chunks`,
    :meth:`deliver`), so no bus handler has to pick one run's chunks out of every
    run's, and can cut a call's stream from another thread (:meth:`watch`).
    """

    takes_chunks: ClassVar[bool] = False
    """Whether :meth:`deliver` wants the chunk events: the LLM layer then builds them even with no listener."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def deliver(self, event: LLMStreamChunkEvent) -> None:
        """One chunk event of a call made in the run, after the bus had it; raising stops the call."""

    def watch(self, abort: Callable[[BaseException], None]) -> Callable[[], None]:
        """A call's stream is open; returns what to call once it has ended.

        Until then the run may call ``abort(reason)`` from any thread: the stream's
        connection is cut and the call fails with ``reason`` (a cancellation). Raises
        that reason at once if the run has already been stopped.
        """
        return _nothing


def _nothing() -> None:
    """The un-watch of a sink that never stops a call."""


_DEFAULT_SINK = RunSink(crewtrace_event_bus)
_sink: ContextVar[RunSink] = ContextVar("crewtrace_sink", default=_DEFAULT_SINK)


def current_sink() -> RunSink:
    """The sink of the running crew run (outside one: the default bus, nothing else)."""
    return _sink.get()


@contextmanager
def use_sink(sink: RunSink) -> Iterator[RunSink]:
    token = _sink.set(sink)
    try:
        yield sink
    finally:
        _sink.reset(token)
