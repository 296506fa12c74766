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
from dataclasses import dataclass

__all__ = ["ExecutionScope", "current_scope", "use_scope"]


@dataclass(frozen=True, slots=True)
class ExecutionScope:
    run_id: str | None = None
    crew_name: str | None = None
    task_id: str | None = None
    task_name: str | None = None
    agent_id: str | None = None
    agent_role: str | None = None

    def fields(self) -> dict[str, str | None]:
        """The scope as event keyword arguments."""
        return {
            "run_id": self.run_id,
            "crew_name": self.crew_name,
            "task_id": self.task_id,
            "task_name": self.task_name,
            "agent_id": self.agent_id,
            "agent_role": self.agent_role,
        }


_EMPTY = ExecutionScope()
_current: ContextVar[ExecutionScope] = ContextVar("crewtrace_scope", default=_EMPTY)


def current_scope() -> ExecutionScope:
    return _current.get()


@contextmanager
def use_scope(scope: ExecutionScope) -> Iterator[ExecutionScope]:
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)
