"""What the adapter keeps between a CrewAI scope's start and end: attribution, start time, open children."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from crewtrace.events import BaseEvent, ExecutionScope, LLMStreamChunkEvent
from crewtrace.events.labels import label
from crewtrace.integrations.crewai._fields import seconds_between

E = TypeVar("E", bound=BaseEvent)

Kind = Literal["run", "task", "agent", "call", "tool", "other"]

LEFT_OPEN = "ended before its parts: closed by crewtrace"
"""The error of a part CrewAI never ended (its run ended, failed or was cancelled first)."""


@dataclass(slots=True)
class Scope:
    """One CrewAI scope (kickoff, task, agent execution, LLM call, tool use, or one crewtrace ignores).

    Attribution is inherited from the enclosing scope and refined by the kinds
    that define it. ``owner`` is the nearest scope crewtrace reports (itself for
    those), which tracks its reported children so that none is left open.
    """

    kind: Kind
    start_ns: int
    attribution: ExecutionScope = field(default_factory=ExecutionScope)
    owner: Scope | None = None
    parent_owner: Scope | None = None
    key: str = ""
    call_id: str = ""
    name: str = ""
    declared: bool = False  # a tool: whether its name is one of the tools CrewAI offered the model
    open_children: dict[str, Scope] = field(default_factory=dict)
    llm_calls: int = 0
    chunks: int = 0
    first_chunk_ns: int | None = None
    model: str = ""
    provider: str | None = None
    stream: bool = False
    arguments: str = ""
    chunk_template: LLMStreamChunkEvent | None = None  # an LLM call's chunk event, copied per chunk

    def child(self, kind: Kind, start_ns: int, key: str) -> Scope:
        """A scope inside this one, with this one's attribution; reported kinds join their owner's children."""
        scope = Scope(kind=kind, start_ns=start_ns, key=key, attribution=self.attribution)
        scope.parent_owner = self.owner
        if kind == "other":
            scope.owner = self.owner
        else:
            scope.owner = scope
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

    def attribute_from(self, event: Any) -> None:
        """Outside a crew there is no enclosing scope: take agent and task from the event itself."""
        if self.attribution.agent_id is None and event.agent_id is not None:
            self.attribute(agent_id=str(event.agent_id), agent_role=label(event.agent_role, fallback="agent"))
        if self.attribution.task_id is None and event.task_id is not None:
            self.attribute(task_id=str(event.task_id), task_name=label(event.task_name))

    def ended(self) -> None:
        """Forget this scope in its parent's list of open children."""
        if self.parent_owner is not None:
            self.parent_owner.open_children.pop(self.key, None)


ROOT = Scope(kind="other", start_ns=0)
"""Where scopes outside any known one (an LLM call outside a crew) hang from."""
