"""When a trace that arrives span by span is complete enough to draw.

The rule: a trace is drawn once its root span (the one without a parent) has arrived and no new span
of it has arrived for ``settle`` seconds. Spans arrive when they end and a root ends after its
children, so by then the trace's own process has exported them; ``settle`` leaves room for spans of
the same trace exported by other processes. A trace whose root never arrives (its parent lives in
a process that exports elsewhere) is drawn after ``orphan_after`` seconds without a new span, marked
so. Spans that arrive after their trace was drawn draw it again, whole, saying how many came late.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from crewtrace.cli.spans import SpanRecord

__all__ = ["ORPHAN_AFTER_S", "CompletedTrace", "TraceAssembler"]

ORPHAN_AFTER_S = 60.0
_REMEMBERED = 100  # drawn traces kept, so late spans can redraw them whole


@dataclass
class CompletedTrace:
    """A trace ready to draw. ``root_received`` False: drawn without its root. ``late_spans``: drawn before."""

    trace_id: str
    spans: list[SpanRecord]
    root_received: bool
    late_spans: int = 0


@dataclass
class _Open:
    spans: list[SpanRecord] = field(default_factory=list)
    span_ids: set[str] = field(default_factory=set)  # an export retried after a lost answer repeats its spans
    root_received: bool = False
    last_arrival: float = 0.0
    drawn_before: int = 0  # spans of it already drawn


class TraceAssembler:
    """Collects spans from any thread; :meth:`take_completed` hands out the traces that are complete."""

    def __init__(
        self,
        settle: float,
        *,
        orphan_after: float = ORPHAN_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settle = settle
        self._orphan_after = max(orphan_after, settle)
        self._clock = clock
        self._cond = threading.Condition()
        self._open: OrderedDict[str, _Open] = OrderedDict()  # oldest first
        self._drawn: OrderedDict[str, list[SpanRecord]] = OrderedDict()

    def add(self, spans: Iterable[SpanRecord]) -> None:
        now = self._clock()
        with self._cond:
            for span in spans:
                state = self._open.get(span.trace_id)
                if state is None:
                    state = self._open[span.trace_id] = _Open()
                    drawn = self._drawn.pop(span.trace_id, None)
                    if drawn is not None:
                        state.spans = drawn
                        state.span_ids = {old.span_id for old in drawn}
                        state.root_received = any(old.parent_id is None for old in drawn)
                        state.drawn_before = len(drawn)
                if span.span_id in state.span_ids:
                    continue
                state.span_ids.add(span.span_id)
                state.spans.append(span)
                state.root_received = state.root_received or span.parent_id is None
                state.last_arrival = now
            self._cond.notify_all()

    def take_completed(self, timeout: float) -> list[CompletedTrace]:
        """The traces complete now, oldest first; waits up to ``timeout`` seconds for the first one."""
        deadline = self._clock() + timeout
        with self._cond:
            while True:
                now = self._clock()
                due = [trace for trace in self._open if self._due_at(trace) <= now]
                if due or now >= deadline:
                    return [self._complete(trace) for trace in due]
                wake = min((self._due_at(trace) for trace in self._open), default=deadline)
                self._cond.wait(max(min(wake, deadline) - now, 0.001))

    def take_all(self) -> list[CompletedTrace]:
        """Every trace still open, complete or not (at exit)."""
        with self._cond:
            return [self._complete(trace) for trace in list(self._open)]

    def _due_at(self, trace_id: str) -> float:
        state = self._open[trace_id]
        return state.last_arrival + (self._settle if state.root_received else self._orphan_after)

    def _complete(self, trace_id: str) -> CompletedTrace:
        state = self._open.pop(trace_id)
        late = len(state.spans) - state.drawn_before if state.drawn_before else 0
        self._drawn[trace_id] = state.spans
        while len(self._drawn) > _REMEMBERED:
            self._drawn.popitem(last=False)
        return CompletedTrace(trace_id, list(state.spans), state.root_received, late)
