"""When `crewtrace watch` draws a trace: root in and quiet for the settle time; orphans later; late spans redraw."""

from __future__ import annotations

import threading

from crewtrace.cli._traces import ORPHAN_AFTER_S, TraceAssembler
from crewtrace.cli.spans import SpanRecord
from crewtrace.cli.waterfall import render_trace


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def span(trace: str, span_id: str, parent: str | None) -> SpanRecord:
    return SpanRecord(trace_id=trace, span_id=span_id, parent_id=parent, name=span_id, start_ns=0, end_ns=1)


def test_a_trace_is_complete_once_its_root_is_in_and_nothing_came_for_the_settle_time() -> None:
    clock = Clock()
    traces = TraceAssembler(2.0, clock=clock)
    traces.add([span("t1", "chat", "agent"), span("t1", "agent", "root")])
    clock.now += 10
    assert traces.take_completed(0) == [], "no root yet: children alone are not a trace"
    traces.add([span("t1", "root", None)])
    clock.now += 1.9
    assert traces.take_completed(0) == []
    traces.add([span("t1", "tool", "agent")])  # another process's span, still settling in
    clock.now += 1.9
    assert traces.take_completed(0) == [], "a new span restarts the quiet period"
    clock.now += 0.2
    (done,) = traces.take_completed(0)
    assert done.root_received and done.late_spans == 0
    assert [s.span_id for s in done.spans] == ["chat", "agent", "root", "tool"]
    assert traces.take_completed(0) == [], "handed out once"


def test_a_trace_whose_root_never_comes_is_drawn_after_the_orphan_wait() -> None:
    clock = Clock()
    traces = TraceAssembler(1.0, clock=clock)
    traces.add([span("t2", "task", "remote-parent")])
    clock.now += ORPHAN_AFTER_S - 1
    assert traces.take_completed(0) == []
    clock.now += 1
    (done,) = traces.take_completed(0)
    assert not done.root_received


def test_spans_after_the_trace_was_drawn_draw_it_again_whole() -> None:
    clock = Clock()
    traces = TraceAssembler(1.0, clock=clock)
    traces.add([span("t3", "root", None), span("t3", "chat", "root")])
    clock.now += 1
    (first,) = traces.take_completed(0)
    traces.add([span("t3", "server", "chat")])
    clock.now += 1
    (again,) = traces.take_completed(0)
    assert [s.span_id for s in again.spans] == ["root", "chat", "server"]
    assert again.root_received and again.late_spans == 1 and first.late_spans == 0


def test_traces_complete_independently_oldest_first_and_take_all_flushes_the_rest() -> None:
    clock = Clock()
    traces = TraceAssembler(1.0, clock=clock)
    traces.add([span("a", "root", None)])
    traces.add([span("b", "root", None)])
    traces.add([span("c", "child", "root")])
    clock.now += 1
    assert [t.trace_id for t in traces.take_completed(0)] == ["a", "b"]
    (rest,) = traces.take_all()
    assert rest.trace_id == "c" and not rest.root_received


def test_a_waiting_reader_wakes_when_a_trace_completes() -> None:
    traces = TraceAssembler(0.05)
    timer = threading.Timer(0.05, traces.add, args=([span("t4", "root", None)],))
    timer.start()
    try:
        (done,) = traces.take_completed(timeout=30)
    finally:
        timer.cancel()
    assert done.trace_id == "t4"


def test_a_span_exported_twice_counts_once() -> None:
    clock = Clock()
    traces = TraceAssembler(1.0, clock=clock)
    traces.add([span("t5", "root", None), span("t5", "chat", "root")])
    traces.add([span("t5", "chat", "root")])  # the exporter retried a batch whose answer it lost
    clock.now += 1
    (done,) = traces.take_completed(0)
    assert [s.span_id for s in done.spans] == ["root", "chat"]


def test_parent_cycles_and_deep_nesting_still_draw_every_span() -> None:
    cycle = [span("t6", "a", "b"), span("t6", "b", "a"), span("t6", "root", None)]
    assert sorted(line.split(" |")[0].strip() for line in render_trace(cycle).splitlines()[1:]) == ["a", "b", "root"]
    deep = [span("t7", "0", None), *(span("t7", str(depth), str(depth - 1)) for depth in range(1, 3000))]
    assert len(render_trace(deep).splitlines()) == 3001, "deeper than Python's recursion limit"
