"""CrewAI events in, crewtrace events out, one released CrewAI event at a time (in emission order)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crewtrace.events import (
    AgentExecutionCompletedEvent,
    AgentExecutionErrorEvent,
    AgentExecutionStartedEvent,
    CrewKickoffCompletedEvent,
    CrewKickoffFailedEvent,
    CrewKickoffStartedEvent,
    EventBus,
    TaskCompletedEvent,
    TaskFailedEvent,
    TaskStartedEvent,
    TokenUsage,
)
from crewtrace.events.labels import label
from crewtrace.integrations.crewai import _fields as f
from crewtrace.integrations.crewai._calls import Calls
from crewtrace.integrations.crewai._flows import Flows
from crewtrace.integrations.crewai._scopes import Book, Scope
from crewtrace.integrations.crewai._steps import Steps

__all__ = ["Item", "Translator"]

_logger = logging.getLogger("crewtrace.integrations.crewai")

Handler = Callable[[Any, Any, Scope], None]
Item = tuple[Any, Any, int]
"""(source, CrewAI event, arrival in ns): the arrival time of a text chunk (handled inline), else 0."""


@dataclass(slots=True)
class _Held:
    """A scope's end that came before its open parts' ends (from other threads and tasks)."""

    item: Item
    since: float = field(default_factory=time.monotonic)


class Translator:
    """Turns each CrewAI event into the crewtrace event(s) it means and emits them on ``bus``.

    Each event's attribution comes from the scope it belongs to (its
    ``parent_event_id``, or ``started_event_id`` for a scope's end), so agent and
    task are those of the kickoff that made the call, whichever thread emitted it.
    A scope's end that comes while parts of it are still open (a flow method
    ending in another task just before its flow, a coworker's run) waits for
    them, for at most the caller's grace period (:meth:`expire`); then they
    are ended as left open. Not thread-safe: the caller releases events one
    at a time, in order.
    """

    def __init__(self, bus: EventBus, scope_starting: frozenset[str], scope_ending: frozenset[str]) -> None:
        self._scope_starting = scope_starting
        self._scope_ending = scope_ending
        self._book = book = Book(bus)
        self.usage: dict[str, TokenUsage] = {}
        """Usage of calls whose completed event has none, worked out from CrewAI's counters (``_usage``)."""
        self.calls = calls = Calls(book, self.usage)
        flows, steps = Flows(book), Steps(book)
        self._fail_run = book.failer(CrewKickoffFailedEvent)
        self._fail_task = book.failer(TaskFailedEvent)
        self._fail_agent = book.failer(AgentExecutionErrorEvent)
        self._untranslated: set[str] = set()
        self._held: dict[int, _Held] = {}  # scope ends waiting for their parts', by the scope
        self._handlers: dict[str, Handler] = {
            "flow_started": flows.started,
            "flow_finished": flows.ended,
            "flow_failed": flows.ended,
            "flow_paused": flows.ended,
            "method_execution_started": flows.method_started,
            "method_execution_finished": flows.method_ended,
            "method_execution_failed": flows.method_ended,
            "method_execution_paused": flows.method_ended,
            "crew_kickoff_started": self._crew_started,
            "crew_kickoff_completed": self._crew_ended,
            "crew_kickoff_failed": self._crew_ended,
            "task_started": self._task_started,
            "task_completed": self._task_ended,
            "task_failed": self._task_ended,
            "agent_execution_started": self._agent_started,
            "agent_execution_completed": self._agent_ended,
            "agent_execution_error": self._agent_ended,
            "lite_agent_execution_started": self._lite_agent_started,
            "lite_agent_execution_completed": self._agent_ended,
            "lite_agent_execution_error": self._agent_ended,
            "llm_call_started": calls.started,
            "llm_thinking_chunk": calls.thinking_chunk,
            "llm_call_completed": calls.ended,
            "llm_call_failed": calls.ended,
            "tool_usage_started": calls.tool_started,
            "tool_usage_finished": calls.tool_ended,
            "tool_usage_error": calls.tool_ended,
            "tool_selection_error": calls.tool_error,
            "tool_validate_input_error": calls.tool_error,
            "mcp_tool_execution_started": self._mcp_tool_started,
            "mcp_tool_execution_completed": calls.tool_ended,
            "mcp_tool_execution_failed": calls.tool_ended,
            "memory_query_started": steps.memory_query,
            "memory_query_completed": steps.ended,
            "memory_query_failed": steps.ended,
            "memory_save_started": steps.memory_save,
            "memory_save_completed": steps.ended,
            "memory_save_failed": steps.ended,
            "knowledge_search_query_started": steps.knowledge_query,
            "knowledge_search_query_completed": steps.ended,
            "knowledge_search_query_failed": steps.ended,
            "llm_guardrail_started": steps.guardrail,
            "llm_guardrail_completed": steps.ended,
            "llm_guardrail_failed": steps.ended,
            "agent_reasoning_started": steps.reasoning,
            "agent_reasoning_completed": steps.ended,
            "agent_reasoning_failed": steps.ended,
        }

    def release(self, item: Item, *, held: bool = False) -> None:
        source, event, arrived = item
        if arrived:  # a text chunk: straight to its call
            self.calls.chunk(source, event, arrived)
            return
        kind = event.type
        if kind != "llm_thinking_chunk":  # keys first (not per chunk), so that this event's text is redacted with them
            f.register_keys(source, event)
        ending = kind in self._scope_ending
        anchor = event.started_event_id if ending else event.parent_event_id
        scope = self._book.find(anchor)
        if ending and not held and scope.open_children and not scope.done:
            self._held[id(scope)] = _Held(item)
            return
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(source, event, scope)
        elif kind in self._scope_starting:  # a scope crewtrace does not report (memory retrieval, MCP connection)
            passing = scope.child("other", 0, event.event_id)
            self._book.attribute_from(passing, source, event)
            self._book.remember(event.event_id, passing)
        elif kind not in self._untranslated and not ending:
            self._untranslated.add(kind)
            _logger.debug("CrewAI's %s events have no crewtrace counterpart: not translated", kind)
        if ending:
            if anchor is not None:
                self._book.forget(anchor)
            parent = scope.parent_owner
            if parent is not None and not parent.open_children:
                waiting = self._held.pop(id(parent), None)
                if waiting is not None:  # its last part has ended: now the scope's own end
                    self.release(waiting.item, held=True)

    def pending(self) -> bool:
        """Whether a scope's end waits for its parts (the caller then calls :meth:`expire` later)."""
        return bool(self._held)

    def expire(self, grace_s: float) -> None:
        """Release the scope ends that waited ``grace_s`` for their parts: what is still open ends as left open."""
        deadline = time.monotonic() - grace_s
        for key, waiting in list(self._held.items()):
            if waiting.since <= deadline and self._held.pop(key, None) is waiting:
                self.release(waiting.item, held=True)

    def close_all(self, end_ns: int) -> None:
        """End everything still open (instrumentation closing), innermost first."""
        self.expire(0.0)
        self._book.close_all(end_ns)

    # -- crew ----------------------------------------------------------------------

    def _crew_started(self, source: Any, event: Any, parent: Scope) -> None:
        run = parent.child("run", f.timestamp_ns(event.timestamp), event.event_id)
        run.attribute(
            run_id=event.event_id,  # one id per kickoff
            crew_name=label(event.crew_name, fallback="crew"),
            task_id=None,
            task_name=None,
            agent_id=None,
            agent_role=None,
            step_id=None,
        )
        self._book.remember(event.event_id, run)
        self._book.opened(run, self._fail_run)
        self._book.emit(
            source,
            run.stamp(CrewKickoffStartedEvent, timestamp_ns=run.start_ns, inputs=dict(event.inputs or {})),
        )

    def _crew_ended(self, source: Any, event: Any, run: Scope) -> None:
        if run.kind != "run":
            return
        end_ns = f.timestamp_ns(event.timestamp)
        if event.type == "crew_kickoff_failed":
            self._fail_run(run, end_ns, *f.failure_of(event.error), source=source)
            return
        if not self._book.ending(run, end_ns):
            return
        usage = getattr(event.output, "token_usage", None)
        self._book.emit(
            source,
            run.stamp(
                CrewKickoffCompletedEvent,
                **run.ending(end_ns),
                output=f.text_of(event.output),
                token_usage=TokenUsage(
                    input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                    output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                ),
            ),
        )

    # -- task ----------------------------------------------------------------------

    def _task_started(self, source: Any, event: Any, parent: Scope) -> None:
        scope = parent.child("task", f.timestamp_ns(event.timestamp), event.event_id)
        task = event.task
        scope.attribute(
            task_id=event.task_id or (str(task.id) if task is not None else event.event_id),
            task_name=self._book.labels.task_of(task, event.task_id),
            agent_id=None,
            agent_role=None,
            step_id=None,
        )
        self._book.remember(event.event_id, scope)
        self._book.opened(scope, self._fail_task)
        self._book.emit(
            source,
            scope.stamp(
                TaskStartedEvent,
                timestamp_ns=scope.start_ns,
                description=str(getattr(task, "description", "") or ""),
                expected_output=str(getattr(task, "expected_output", "") or ""),
            ),
        )

    def _task_ended(self, source: Any, event: Any, scope: Scope) -> None:
        if scope.kind != "task":
            return
        end_ns = f.timestamp_ns(event.timestamp)
        if event.type == "task_failed":
            self._fail_task(scope, end_ns, *f.failure_of(event.error, event.error_type), source=source)
        elif self._book.ending(scope, end_ns):
            event = scope.stamp(TaskCompletedEvent, **scope.ending(end_ns), output=f.text_of(event.output))
            self._book.emit(source, event)

    # -- agent ---------------------------------------------------------------------

    def _agent_started(self, source: Any, event: Any, parent: Scope) -> None:
        agent = event.agent
        delegation: dict[str, str | None] = {}
        scope = parent.child("agent", f.timestamp_ns(event.timestamp), event.event_id)
        if parent.kind == "tool":  # a coworker another agent delegated to: it works for that agent's task
            delegation = {"parent_agent_id": parent.attribution.agent_id, "parent_tool_call_id": parent.key}
        elif parent.kind != "task" and event.task is not None:  # an agent run outside a crew's task
            scope.attribute(task_id=str(event.task.id), task_name=self._book.labels.task(event.task))
        self._start_agent(source, scope, agent, agent.role, agent.goal, delegation)

    def _lite_agent_started(self, source: Any, event: Any, parent: Scope) -> None:
        """``Agent.kickoff()``: an agent without a crew (or inside one's tool) is a run of its own."""
        scope = parent.child("agent", f.timestamp_ns(event.timestamp), event.event_id)
        if scope.attribution.run_id is None:
            scope.attribute(run_id=event.event_id)
        info = event.agent_info or {}
        self._start_agent(source, scope, source, info.get("role"), info.get("goal"), {})

    def _start_agent(
        self, source: Any, scope: Scope, agent: Any, role: Any, goal: Any, delegation: dict[str, str | None]
    ) -> None:
        step_id = scope.attribution.step_id  # the step it runs in; its own calls run in none until one starts
        scope.attribute(agent_id=str(agent.id), agent_role=self._book.labels.agent(agent), step_id=None)
        self._book.remember(scope.key, scope)
        self._book.opened(scope, self._fail_agent)
        model, provider = f.agent_model_of(agent)
        self._book.emit(
            source,
            scope.stamp(
                AgentExecutionStartedEvent,
                timestamp_ns=scope.start_ns,
                role=str(role or ""),
                goal=str(goal or ""),
                model=model,
                provider=provider,
                step_id=step_id,
                **delegation,
            ),
        )

    def _agent_ended(self, source: Any, event: Any, scope: Scope) -> None:
        if scope.kind != "agent":
            return
        end_ns = f.timestamp_ns(event.timestamp)
        if event.type in ("agent_execution_error", "lite_agent_execution_error"):
            self._fail_agent(scope, end_ns, *f.failure_of(event.error), source=source)
        elif self._book.ending(scope, end_ns):
            event = scope.stamp(AgentExecutionCompletedEvent, **scope.ending(end_ns), output=f.text_of(event.output))
            self._book.emit(source, event)

    # -- MCP -----------------------------------------------------------------------

    def _mcp_tool_started(self, source: Any, event: Any, parent: Scope) -> None:
        """Inside a tool use (its usual place) an MCP tool run only passes the tool's attribution on."""
        if self.calls.mcp_tool_started(source, event, parent) is None:
            self._book.remember(event.event_id, parent.child("other", 0, event.event_id))
