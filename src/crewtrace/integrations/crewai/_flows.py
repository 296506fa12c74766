"""CrewAI's flow runs and their method executions as crewtrace events.

CrewAI runs flows of its own too (every agent execution's ``AgentExecutor``, memory's
``RecallFlow`` and ``EncodingFlow``); they are made with ``suppress_flow_events`` and are not
the user's flows: their scopes only pass attribution on.
"""

from __future__ import annotations

import logging
from typing import Any

from crewtrace.events import (
    FlowCompletedEvent,
    FlowFailedEvent,
    FlowMethodCompletedEvent,
    FlowMethodFailedEvent,
    FlowMethodPausedEvent,
    FlowMethodStartedEvent,
    FlowPausedEvent,
    FlowStartedEvent,
)
from crewtrace.events.labels import label
from crewtrace.integrations.crewai import _fields as f
from crewtrace.integrations.crewai._scopes import Book, Scope

__all__ = ["Flows"]

_logger = logging.getLogger("crewtrace.integrations.crewai")


class Flows:
    """Flow runs (``flow_started`` to ``flow_finished``/``failed``/``paused``) and their methods."""

    def __init__(self, book: Book) -> None:
        self._book = book
        self._fail_flow = book.failer(FlowFailedEvent)
        self._fail_method = book.failer(FlowMethodFailedEvent)

    def started(self, source: Any, event: Any, parent: Scope) -> None:
        book = self._book
        if getattr(source, "suppress_flow_events", False):  # one of CrewAI's own flows
            book.remember(event.event_id, parent.child("other", 0, event.event_id))
            return
        flow = parent.child("flow", f.timestamp_ns(event.timestamp), event.event_id)
        flow.attribute(
            flow_name=label(event.flow_name, fallback="flow"),
            flow_run_id=event.event_id,  # one id per kickoff
            flow_method=None,
            run_id=None,
            crew_name=None,
            task_id=None,
            task_name=None,
            agent_id=None,
            agent_role=None,
            step_id=None,
        )
        book.remember(event.event_id, flow)
        book.opened(flow, self._fail_flow)
        book.emit(source, flow.stamp(FlowStartedEvent, timestamp_ns=flow.start_ns, inputs=dict(event.inputs or {})))

    def ended(self, source: Any, event: Any, flow: Scope) -> None:
        if flow.kind != "flow":
            return
        end_ns = f.timestamp_ns(event.timestamp)
        if event.type == "flow_failed":
            self._fail_flow(flow, end_ns, *f.failure_of(event.error), source=source)
        elif self._book.ending(flow, end_ns):
            if event.type == "flow_paused":
                method = label(event.method_name, fallback="method")
                self._book.emit(source, flow.stamp(FlowPausedEvent, **flow.ending(end_ns), flow_method=method))
            else:
                self._book.emit(source, flow.stamp(FlowCompletedEvent, **flow.ending(end_ns)))

    def method_started(self, source: Any, event: Any, parent: Scope) -> None:
        book = self._book
        method = parent.child("method", f.timestamp_ns(event.timestamp), event.event_id)
        method.attribute(flow_method=label(event.method_name, fallback="method"))
        method.method_kind = _method_kind(source, event.method_name)
        book.remember(event.event_id, method)
        book.opened(method, self._fail_method)
        started = method.stamp(FlowMethodStartedEvent, timestamp_ns=method.start_ns, method_kind=method.method_kind)
        book.emit(source, started)

    def method_ended(self, source: Any, event: Any, method: Scope) -> None:
        if method.kind != "method":
            return
        end_ns = f.timestamp_ns(event.timestamp)
        if event.type == "method_execution_failed":
            self._fail_method(method, end_ns, *f.failure_of(event.error), source=source)
        elif self._book.ending(method, end_ns):
            if event.type == "method_execution_paused":
                self._book.emit(source, method.stamp(FlowMethodPausedEvent, **method.ending(end_ns)))
                return
            result = event.result
            route = (
                label(result, fallback="route") if method.method_kind == "router" and isinstance(result, str) else None
            )
            self._book.emit(source, method.stamp(FlowMethodCompletedEvent, **method.ending(end_ns), route=route))


def _method_kind(flow: Any, name: str) -> str:
    """``router``, ``start`` or ``listen``, from the flow class's definition (CrewAI's public ``flow_definition()``)."""
    try:
        method = flow.flow_definition().methods[name]
    except Exception:  # a flow class CrewAI cannot describe: its methods are still spans
        _logger.debug("no definition of flow method %s", name, exc_info=True)
        return "listen"
    if method.router:
        return "router"
    return "start" if method.is_start else "listen"
