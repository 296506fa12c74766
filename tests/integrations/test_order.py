"""The reorderer that puts CrewAI's pool-delivered events back into emission order."""

from __future__ import annotations

import os

import pytest

if os.environ.get("CI") != "true":  # under CI the test extra has installed CrewAI: a missing one fails there
    pytest.importorskip("crewai", reason="needs CrewAI: pip install -e '.[test,crewai]' (make test uses .venv-crewai)")

from tests.support.polling import wait_until

from crewtrace.integrations.crewai._order import Reorderer


def test_events_wait_for_their_scope_and_their_predecessor_then_keep_arrival_order() -> None:
    released: list[str] = []
    order = Reorderer(released.append)
    # A call's chunks (inline) arrive before its started event (pool); its end before both.
    order.arrive("end", "start", "c2", "end")
    order.arrive("c1", "start", "start", "c1")
    order.arrive("c2", "start", "c1", "c2")
    assert released == [] and order.pending()
    order.arrive("start", "agent", None, "start")
    assert released == []
    order.arrive("agent", None, None, "agent")
    assert released == ["agent", "start", "c1", "c2", "end"]
    assert not order.pending()


def test_an_id_that_never_comes_holds_events_back_only_for_the_grace_period() -> None:
    released: list[str] = []
    order = Reorderer(released.append, grace_s=0.05)
    order.arrive("first", "emitted-before-instrumentation", None, "first")
    order.arrive("second", "first", None, "second")
    assert released == []
    wait_until(lambda: (order.expire(), released)[1], what="expiry releases the held events")
    assert released == ["first", "second"], "what waited on the expired event follows it"


def test_drain_releases_everything_oldest_first() -> None:
    released: list[str] = []
    order = Reorderer(released.append)
    order.arrive("a", "x", None, "a")
    order.arrive("b", "y", None, "b")
    order.drain()
    assert released == ["a", "b"] and not order.pending()


def test_seen_ids_are_bounded() -> None:
    order = Reorderer(lambda item: None, max_seen=10)
    for n in range(100):
        order.arrive(f"e{n}", None, None, n)
    assert len(order._seen) == 10


def test_an_expiry_keeps_what_waits_for_a_held_event_behind_it() -> None:
    released: list[str] = []
    order = Reorderer(released.append, grace_s=0.0)
    # Emitted after an event this instrumentation never saw; its chunk arrives first (inline), then the start.
    order.arrive("chunk", "start", "start", "chunk")
    order.arrive("start", "scope", "emitted-before-instrumentation", "start")
    order.arrive("scope", None, "emitted-before-instrumentation", "scope")
    order.expire()
    assert released == ["scope", "start", "chunk"], "never a chunk before its call's start"
    assert not order.pending()


def test_drain_keeps_dependency_order() -> None:
    released: list[str] = []
    order = Reorderer(released.append)
    order.arrive("end", "start", None, "end")
    order.arrive("start", "never", None, "start")
    order.drain()
    assert released == ["start", "end"] and not order.pending()


def test_what_becomes_ready_together_is_released_in_arrival_order() -> None:
    released: list[str] = []
    order = Reorderer(released.append)
    # An agent's run: its executor scope, a call in it, then the agent's end (which names only the agent's start).
    order.arrive("executor", "agent", None, "executor")
    order.arrive("call", "executor", "executor", "call")
    order.arrive("end", "agent", "agent", "end")
    order.arrive("agent", None, None, "agent")
    assert released == ["agent", "executor", "call", "end"]


def test_a_stream_keeps_one_id_however_long() -> None:
    released: list[str] = []
    order = Reorderer(released.append)
    order.arrive("start", None, None, "start")
    previous = "start"
    for n in range(1000):
        order.arrive(f"c{n}", "start", previous, n, streamed=True)
        previous = f"c{n}"
    order.arrive("end", "start", previous, "end")
    assert released == ["start", *range(1000), "end"]
    assert len(order._seen) == 3, "the start, the last chunk, the end"
