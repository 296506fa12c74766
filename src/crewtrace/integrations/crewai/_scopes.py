"""What the adapter keeps between a CrewAI scope's start and end, and the book of all of them.

Every CrewAI scope (a flow run, a method, a kickoff, a task, an agent, an LLM call, a tool use, a
step, or one crewtrace does not report) is a :class:`Scope` keyed by CrewAI's started event id; an
event finds its scope by its ``parent_event_id`` (``started_event_id`` for a scope's end). The
:class:`Book` keeps them, and every reported scope still open, so that none is left open: a scope's
end ends what it left open, and :meth:`Book.close_all` ends everything at ``close()``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from crewtrace.errors import ErrorType
from crewtrace.events import BaseEvent, EventBus, ExecutionScope
from crewtrace.integrations.crewai._fields import seconds_between
from crewtrace.integrations.crewai._labels import Labels

__all__ = ["LEFT_OPEN", "ROOT", "Book", "Fail", "Scope"]

E = TypeVar("E", bound=BaseEvent)

Fail = Callable[..., None]
"""Ends a scope as failed: ``fail(scope, end_ns, error=LEFT_OPEN, error_type="cancelled", source=None)``."""

Kind = Literal["flow", "method", "run", "task", "agent", "call", "tool", "step", "other"]

LEFT_OPEN = "ended before its parts: closed by crewtrace"
"""The error of a part CrewAI never ended (its run ended, failed or was cancelled first)."""

_MAX_SCOPES = 65_536  # scopes whose end never came are forgotten, oldest first
_MAX_ENDED = 4_096  # ended scopes kept for events that name them late (a background save's, say)
_NO_TASK = "kickoff"  # the task id CrewAI's reasoning events carry for an agent kicked off without a task


@dataclass(slots=True)
class Scope:
    """One CrewAI scope.

    Attribution is inherited from the enclosing scope and refined by the kinds
    that define it. ``owner`` is the nearest reported scope (itself for those),
    which tracks its reported children so that none is left open; a detached
    scope (a background memory save, which outlives its agent) is nobody's child.
    ``fail`` is how crewtrace ends it when CrewAI does not.
    """

    kind: Kind
    start_ns: int
    attribution: ExecutionScope = field(default_factory=ExecutionScope)
    owner: Scope | None = None
    parent_owner: Scope | None = None
    key: str = ""
    fail: Fail | None = None
    done: bool = False
    open_children: dict[str, Scope] = field(default_factory=dict)
    call_id: str = ""
    name: str = ""
    declared: bool = False  # a tool: whether its name is one of the tools CrewAI offered the model
    llm_calls: int = 0
    chunks: int = 0
    first_chunk_ns: int | None = None
    model: str = ""
    provider: str | None = None
    stream: bool = False
    arguments: str = ""
    tool_type: Literal["function", "extension", "datastore"] = "function"
    method_kind: str = ""
    chunk_fields: dict[str, Any] | None = None  # an LLM call's fields shared by all its chunk events

    def child(self, kind: Kind, start_ns: int, key: str, *, detached: bool = False) -> Scope:
        """A scope inside this one, with this one's attribution; reported kinds join their owner's children."""
        scope = Scope(kind=kind, start_ns=start_ns, key=key, attribution=self.attribution)
        if kind == "other":
            scope.owner = self.owner
            return scope
        scope.owner = scope
        if not detached:
            scope.parent_owner = self.owner
            if self.owner is not None:
                self.owner.open_children[key] = scope
        return scope

    def stamp(self, kind: type[E], /, **fields: Any) -> E:
        """A ``kind`` event with this scope's attribution and ``fields``."""
        return self.attribution.stamp(kind, **fields)

    def attribute(self, **changes: str | None) -> None:
        """Change some of this scope's attribution (its children, made later, inherit it)."""
        self.attribution = self.attribution.within(**changes)

    def ending(self, end_ns: int) -> dict[str, Any]:
        """The fields every end event of this scope carries besides its attribution: end time, duration."""
        return {"timestamp_ns": end_ns, "duration_s": seconds_between(self.start_ns, end_ns)}


ROOT = Scope(kind="other", start_ns=0)
"""Where scopes outside any known one (an LLM call outside a crew) hang from."""


class Book:
    """Every scope by its CrewAI id, and the reported ones still open; not thread-safe (one caller at a time)."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.labels = Labels()
        self._scopes: OrderedDict[str, Scope] = OrderedDict()
        self._ended: OrderedDict[str, Scope] = OrderedDict()
        self._open: dict[int, Scope] = {}  # reported scopes not ended yet, in start order

    def find(self, event_id: str | None) -> Scope:
        """The scope ``event_id`` started, also shortly after it ended; else :data:`ROOT`."""
        if event_id is None:
            return ROOT
        scope = self._scopes.get(event_id)
        if scope is None:
            scope = self._ended.get(event_id, ROOT)
        return scope

    def remember(self, event_id: str, scope: Scope) -> None:
        self._scopes[event_id] = scope
        if len(self._scopes) > _MAX_SCOPES:
            self._scopes.popitem(last=False)

    def forget(self, event_id: str) -> None:
        """The scope ``event_id`` started has ended: keep it a while for events that still name it."""
        scope = self._scopes.pop(event_id, None)
        if scope is not None:
            self._ended[event_id] = scope
            if len(self._ended) > _MAX_ENDED:
                self._ended.popitem(last=False)

    def failer(self, failed: type[BaseEvent]) -> Fail:
        """The usual way to end a scope as failed: a ``failed`` event with its end time, duration and error."""

        def fail(
            scope: Scope, end_ns: int, error: str = LEFT_OPEN, error_type: str = ErrorType.CANCELLED, source: Any = None
        ) -> None:
            if self.ending(scope, end_ns):
                self.emit(source, scope.stamp(failed, **scope.ending(end_ns), error=error, error_type=error_type))

        return fail

    def opened(self, scope: Scope, fail: Fail) -> None:
        """A reported scope started; ``fail`` ends it if CrewAI does not."""
        scope.fail = fail
        self._open[id(scope)] = scope

    def ending(self, scope: Scope, end_ns: int) -> bool:
        """Mark ``scope`` ended (after ending what it left open); False if it already was."""
        if scope.done:
            return False
        self.close_children(scope, end_ns)
        scope.done = True
        self._open.pop(id(scope), None)
        if scope.parent_owner is not None:
            scope.parent_owner.open_children.pop(scope.key, None)
        return True

    def close_children(self, scope: Scope, end_ns: int) -> None:
        """End, innermost first, what a scope's end left open (CrewAI emits no end for a cancelled part)."""
        for child in reversed(list(scope.open_children.values())):
            self.fail(child, end_ns)

    def fail(self, scope: Scope, end_ns: int, error: str = LEFT_OPEN, error_type: str = ErrorType.CANCELLED) -> None:
        if not scope.done and scope.fail is not None:
            scope.fail(scope, end_ns, error, error_type)

    def close_all(self, end_ns: int) -> None:
        """End everything still open (instrumentation closing), innermost first."""
        for scope in reversed(list(self._open.values())):
            self.fail(scope, end_ns)
        self._open.clear()
        self._scopes.clear()
        self._ended.clear()

    def attribute_from(self, scope: Scope, source: Any, event: Any) -> None:
        """Agent and task from the event itself where the enclosing scopes have none (outside a crew's task)."""
        changes: dict[str, str | None] = {}
        agent_id = getattr(event, "agent_id", None)
        if scope.attribution.agent_id is None and agent_id is not None:
            changes.update(agent_id=str(agent_id), agent_role=self.labels.agent_of(source, agent_id))
        task_id = getattr(event, "task_id", None)
        if scope.attribution.task_id is None and task_id not in (None, _NO_TASK):
            changes.update(task_id=str(task_id), task_name=self.labels.task_of(source, task_id))
        if changes:
            scope.attribute(**changes)

    def emit(self, source: Any, event: BaseEvent) -> None:
        self.bus.emit(source, event)
