"""Which run, task and agent the current code executes for.

The crew layer enters a scope around each agent's work; the LLM layer reads it
once per call and stamps it on every event of that call. A ``ContextVar``
keeps concurrent crews apart: asyncio tasks get a copy, new threads start
empty, so attribution never crosses between runs.

:class:`ExecutionScope` is a ``TypedDict`` so that stamping an event is typed:
``LLMCallStartedEvent(**scope, ...)``. Its keys are exactly the attribution
fields of :class:`~crewtrace.events.BaseEvent` (checked when that module loads).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypedDict

__all__ = ["ExecutionScope", "current_scope", "use_scope"]


class ExecutionScope(TypedDict, total=False):
    """Attribution of an event: missing keys (outside a crew, task or agent) mean ``None``."""

    run_id: str | None
    crew_name: str | None
    task_id: str | None
    task_name: str | None
    agent_id: str | None
    agent_role: str | None
    """The agent's role as written (its template): low cardinality, never filled-in inputs."""


_current: ContextVar[ExecutionScope] = ContextVar("crewtrace_scope", default={})  # noqa: B039 (never mutated)


def current_scope() -> ExecutionScope:
    """The scope of the running code; treat it as read-only (copy it to derive another)."""
    return _current.get()


@contextmanager
def use_scope(scope: ExecutionScope) -> Iterator[ExecutionScope]:
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)
