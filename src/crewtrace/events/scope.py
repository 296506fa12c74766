"""Which run, task and agent the current code executes for.

The crew layer enters a scope around each agent's work; the LLM layer reads it
once per call and stamps it on every event of that call. A ``ContextVar``
keeps concurrent crews apart: asyncio tasks get a copy, new threads start
empty, so attribution never crosses between runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from crewtrace.events.base import Attribution, BaseEvent

__all__ = ["ExecutionScope", "current_scope", "use_scope"]

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
