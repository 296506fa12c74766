"""Putting events that arrive out of order back into the order they were emitted in.

CrewAI runs chunk handlers inline and every other handler on a thread pool, so a
call's started event can be handled after its first chunks, and a task's end
before its last LLM call started. Every CrewAI event names what came before it
(``previous_event_id``, in its own context) and the scope it belongs to
(``parent_event_id``, or ``started_event_id`` for a scope's end). An event is
released once both have been released; an id never seen (an event emitted before
instrumentation, or of a class registered after it) holds an event back for at
most ``grace_s`` seconds (the caller calls :meth:`expire`).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Reorderer"]


@dataclass(slots=True)
class _Waiting:
    event_id: str
    deps: list[str]
    item: Any
    since: float = field(default_factory=time.monotonic)


class Reorderer:
    """Releases items in dependency order; not thread-safe (the caller holds a lock).

    Args:
        release: called with each item once its dependencies are released.
        max_seen: ids remembered as released (oldest forgotten first).
        grace_s: longest an item waits for an id that may never come.
    """

    def __init__(self, release: Callable[[Any], None], *, max_seen: int = 65_536, grace_s: float = 0.25) -> None:
        self._release = release
        self._max_seen = max_seen
        self._grace_s = grace_s
        self._seen: dict[str, None] = {}  # insertion-ordered: the oldest is first
        self._waiters: dict[str, list[_Waiting]] = {}
        self._waiting: OrderedDict[str, _Waiting] = OrderedDict()

    def arrive(self, event_id: str, deps: tuple[str | None, ...], item: Any) -> None:
        """Release ``item`` now if every id in ``deps`` was released, else when they are."""
        seen = self._seen
        missing = [dep for dep in deps if dep is not None and dep not in seen]
        if not missing:  # the common case (every chunk): no deque, no bookkeeping beyond "seen"
            self._release(item)
            self._mark(event_id)
            if event_id in self._waiters:
                self._done_waiters(event_id)
            return
        waiting = _Waiting(event_id, missing, item)
        self._waiting[event_id] = waiting
        for dep in missing:
            self._waiters.setdefault(dep, []).append(waiting)

    def pending(self) -> bool:
        return bool(self._waiting)

    def drain(self) -> None:
        """Release everything still waiting, oldest first (closing time)."""
        while self._waiting:
            _, waiting = self._waiting.popitem(last=False)
            self._done(waiting.event_id, waiting.item)

    def expire(self) -> None:
        """Release what has waited longer than the grace period for an id that never came."""
        deadline = time.monotonic() - self._grace_s
        while self._waiting:
            waiting = next(iter(self._waiting.values()))
            if waiting.since > deadline:
                return
            del self._waiting[waiting.event_id]
            self._done(waiting.event_id, waiting.item)

    def _done(self, event_id: str, item: Any) -> None:
        self._release(item)
        self._mark(event_id)
        self._done_waiters(event_id)

    def _done_waiters(self, event_id: str) -> None:
        """Release what waited on ``event_id``, and what waited on those, in arrival order."""
        ready = deque([event_id])
        while ready:
            for waiting in self._waiters.pop(ready.popleft(), ()):
                if not waiting.deps or self._waiting.get(waiting.event_id) is not waiting:
                    continue
                waiting.deps = [dep for dep in waiting.deps if dep not in self._seen]
                if not waiting.deps:
                    del self._waiting[waiting.event_id]
                    self._release(waiting.item)
                    self._mark(waiting.event_id)
                    ready.append(waiting.event_id)

    def _mark(self, event_id: str) -> None:
        seen = self._seen
        seen[event_id] = None
        if len(seen) > self._max_seen:
            del seen[next(iter(seen))]
