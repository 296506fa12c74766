"""CrewAI's memory and knowledge look-ups, memory saves, guardrail checks and reasoning as crewtrace steps.

A step is a scope of its own (``step_id``): the LLM calls CrewAI makes for it (a memory's
analysis, a knowledge query's rewrite, a plan) run inside it and keep the agent and task it
serves. A memory save runs on CrewAI's background thread pool and can outlive its agent and its
task: it is nobody's child, so their end does not cut it short, and :meth:`Book.close_all` ends it
if it is still running at ``close()``.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

from crewtrace.events import (
    BaseEvent,
    GuardrailCompletedEvent,
    GuardrailFailedEvent,
    GuardrailStartedEvent,
    MemorySaveCompletedEvent,
    MemorySaveFailedEvent,
    MemorySaveStartedEvent,
    ReasoningCompletedEvent,
    ReasoningFailedEvent,
    ReasoningStartedEvent,
    RetrievalCompletedEvent,
    RetrievalFailedEvent,
    RetrievalStartedEvent,
)
from crewtrace.events.labels import label
from crewtrace.integrations.crewai import _fields as f
from crewtrace.integrations.crewai._scopes import Book, Scope
from crewtrace.redaction import bound, redact

__all__ = ["Steps"]

_FAILED: dict[str, type[BaseEvent]] = {
    "retrieval": RetrievalFailedEvent,
    "memory_save": MemorySaveFailedEvent,
    "guardrail": GuardrailFailedEvent,
    "reasoning": ReasoningFailedEvent,
}


class Steps:
    """Look-ups (``retrieval``), memory saves, guardrail checks and reasoning steps."""

    def __init__(self, book: Book) -> None:
        self._book = book
        self._saves: dict[int, list[Scope]] = {}  # open background saves by memory object
        self._fail = {name: book.failer(failed) for name, failed in _FAILED.items()}

    def memory_query(self, source: Any, event: Any, parent: Scope) -> None:
        step = self._open("retrieval", source, event, parent)
        self._book.emit(
            source,
            step.stamp(
                RetrievalStartedEvent,
                timestamp_ns=step.start_ns,
                data_source="memory",
                data_source_id=_store_of(source),
                query=str(event.query or ""),
                limit=event.limit,
            ),
        )

    def knowledge_query(self, source: Any, event: Any, parent: Scope) -> None:
        step = self._open("retrieval", source, event, parent)
        self._book.emit(source, step.stamp(RetrievalStartedEvent, timestamp_ns=step.start_ns, data_source="knowledge"))

    def memory_save(self, source: Any, event: Any, parent: Scope) -> None:
        step = self._open("memory_save", source, event, parent, detached=True)
        self._saves[id(source)] = [*self._running_saves(source), step]
        started = step.stamp(MemorySaveStartedEvent, timestamp_ns=step.start_ns, data_source_id=_store_of(source))
        self._book.emit(source, started)

    def guardrail(self, source: Any, event: Any, parent: Scope) -> None:
        step = self._open("guardrail", source, event, parent)
        name = label(event.guardrail_name, fallback=event.guardrail_type or "guardrail")
        self._book.emit(
            source,
            step.stamp(
                GuardrailStartedEvent,
                timestamp_ns=step.start_ns,
                guardrail_name=name,
                guardrail_type=event.guardrail_type,
                attempt=event.retry_count,
            ),
        )

    def reasoning(self, source: Any, event: Any, parent: Scope) -> None:
        step = self._open("reasoning", source, event, parent)
        self._book.emit(source, step.stamp(ReasoningStartedEvent, timestamp_ns=step.start_ns, attempt=event.attempt))

    def ended(self, source: Any, event: Any, step: Scope) -> None:
        if step.kind != "step":
            saves = self._running_saves(source) if event.type == "memory_save_failed" else []
            if saves:  # a background save's failure, reported from outside its scope: the oldest running one's
                end_ns = f.timestamp_ns(event.timestamp)
                self._fail["memory_save"](saves[0], end_ns, *f.failure_of(event.error), source=source)
            return
        end_ns = f.timestamp_ns(event.timestamp)
        if event.type.endswith("_failed"):
            self._fail[step.name](step, end_ns, *f.failure_of(event.error), source=source)
        elif self._book.ending(step, end_ns):
            self._book.emit(source, self._completed(step, event, end_ns))
        if step.name == "memory_save":
            self._running_saves(source)

    @staticmethod
    def _completed(step: Scope, event: Any, end_ns: int) -> BaseEvent:
        ending = step.ending(end_ns)
        if step.name == "retrieval":
            results = getattr(event, "results", None)
            count = len(results) if isinstance(results, Sized) and not isinstance(results, str) else None
            return step.stamp(RetrievalCompletedEvent, **ending, result_count=count)
        if step.name == "memory_save":
            return step.stamp(MemorySaveCompletedEvent, **ending)
        if step.name == "guardrail":
            return step.stamp(
                GuardrailCompletedEvent,
                **ending,
                passed=bool(event.success),
                attempt=event.retry_count,
                feedback="" if event.success else bound(redact(str(event.error or ""))),
            )
        return step.stamp(ReasoningCompletedEvent, **ending, attempt=event.attempt, ready=event.ready, plan=event.plan)

    def _running_saves(self, memory: Any) -> list[Scope]:
        """The memory's saves still running (the ended ones forgotten)."""
        running = [save for save in self._saves.pop(id(memory), ()) if not save.done]
        if running:
            self._saves[id(memory)] = running
        return running

    def _open(self, name: str, source: Any, event: Any, parent: Scope, *, detached: bool = False) -> Scope:
        step = parent.child("step", f.timestamp_ns(event.timestamp), event.event_id, detached=detached)
        step.name = name
        self._book.attribute_from(step, source, event)
        step.attribute(step_id=event.event_id)
        self._book.remember(event.event_id, step)
        self._book.opened(step, self._fail[name])
        return step


def _store_of(memory: Any) -> str | None:
    """The memory store's scope (``/crew/<name>``): configuration, not content."""
    root = getattr(memory, "root_scope", None)
    return label(root, fallback="memory") if isinstance(root, str) and root else None
