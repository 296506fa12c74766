"""Putting events that arrive out of order back into the order they were emitted in.

CrewAI runs chunk handlers inline and every other handler on a thread pool, so a
call's started event can be handled after its first chunks, and a task's end
before its last LLM call started. Every CrewAI event names what came before it
(``previous_event_id``, in its own context) and the scope it belongs to
(``parent_event_id``, or ``started_event_id`` for a scope's end). An event is
released once both have been released; an id never seen (an event emitted before
instrumentation, or of a class registered after it) holds an event back for at
most ``grace_s`` seconds (the caller calls :meth:`expire`), and what waits for that
event is released after it, in order.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Reorderer"]


@dataclass(slots=True)
class _Waiting:
    seq: int
    """Arrival order: what becomes ready together is released earliest arrived first."""
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
        self._seen: OrderedDict[str, None] = OrderedDict()  # the oldest first, forgotten in O(1)
        self._waiters: dict[str, list[_Waiting]] = {}
        self._waiting: OrderedDict[str, _Waiting] = OrderedDict()
        self._arrivals = itertools.count()

    def arrive(
        self, event_id: str, scope: str | None, previous: str | None, item: Any, *, streamed: bool = False
    ) -> bool:
        """Release ``item`` once its ``scope`` and ``previous`` ids were released (None: nothing to wait for).

        Returns whether it was released now (else it waits: the caller makes sure :meth:`expire` runs).

        ``streamed``: one of a stream's chunks, whose ``previous`` (when not the stream's own start) is
        the chunk before it, which nothing else waits for: that id is forgotten once this one is
        released, so a stream of any length keeps one id, not all of them.
        """
        seen = self._seen
        if (scope is None or scope in seen) and (previous is None or previous in seen):
            # The common case (every chunk of a call under way): a release and a mark, nothing else.
            self._release(item)
            seen[event_id] = None
            if streamed and previous is not None and previous != scope:
                del seen[previous]
            elif len(seen) > self._max_seen:
                seen.popitem(last=False)
            if event_id in self._waiters:
                self._done_waiters(event_id)
            return True
        missing = [dep for dep in (scope, previous) if dep is not None and dep not in seen]
        waiting = _Waiting(next(self._arrivals), event_id, missing, item)
        self._waiting[event_id] = waiting
        for dep in missing:
            self._waiters.setdefault(dep, []).append(waiting)
        return False

    def pending(self) -> bool:
        return bool(self._waiting)

    def drain(self) -> None:
        """Release everything still waiting (closing time), in dependency order as far as it goes."""
        self._release_stuck(float("inf"))
        while self._waiting:  # only a cycle of ids, which CrewAI never makes, is left: oldest first
            _, waiting = self._waiting.popitem(last=False)
            self._done(waiting.event_id, waiting.item)

    def expire(self) -> None:
        """Release what has waited longer than the grace period for an id that never came."""
        self._release_stuck(time.monotonic() - self._grace_s)

    def _release_stuck(self, deadline: float) -> None:
        """Release items that arrived by ``deadline`` and wait for an id that never arrived, oldest first.

        An item waiting only for items that did arrive (held themselves) keeps its place: it is
        released after them, when they are, so an expiry never puts a chunk before its call's start.
        """
        progress = True
        while progress:  # releasing one can leave another waiting only for ids that never came
            progress = False
            for waiting in list(self._waiting.values()):
                if waiting.since > deadline:
                    break
                if self._waiting.get(waiting.event_id) is not waiting:  # released meanwhile, after what it waited for
                    continue
                if any(dep in self._waiting for dep in waiting.deps):
                    continue
                del self._waiting[waiting.event_id]
                self._done(waiting.event_id, waiting.item)
                progress = True

    def _done(self, event_id: str, item: Any) -> None:
        self._release(item)
        self._mark(event_id)
        self._done_waiters(event_id)

    def _done_waiters(self, event_id: str) -> None:
        """Release what waited on ``event_id``, and what waited on those, earliest arrived first.

        Arrival order, not the order of dependency levels: an agent's end that waited only on its
        start must not be released before its calls, which waited on steps in between.
        """
        ready: list[tuple[int, _Waiting]] = []
        released = event_id
        while True:
            for waiting in self._waiters.pop(released, ()):
                if not waiting.deps or self._waiting.get(waiting.event_id) is not waiting:
                    continue
                waiting.deps = [dep for dep in waiting.deps if dep not in self._seen]
                if not waiting.deps:
                    heapq.heappush(ready, (waiting.seq, waiting))
            if not ready:
                return
            _, waiting = heapq.heappop(ready)
            del self._waiting[waiting.event_id]
            self._release(waiting.item)
            self._mark(waiting.event_id)
            released = waiting.event_id

    def _mark(self, event_id: str) -> None:
        seen = self._seen
        seen[event_id] = None
        if len(seen) > self._max_seen:
            seen.popitem(last=False)
