"""CrewAI events in, crewtrace events out, one released CrewAI event at a time (in emission order)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from crewtrace.errors import ErrorType
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
from crewtrace.integrations.crewai._scopes import LEFT_OPEN, ROOT, Scope

__all__ = ["Translator"]

_MAX_SCOPES = 65_536  # scopes whose end never came are forgotten, oldest first


class Translator:
    """Turns each CrewAI event into the crewtrace event(s) it means and emits them on ``bus``.

    Each event's attribution comes from the scope it belongs to (its
    ``parent_event_id``, or ``started_event_id`` for a scope's end), so agent and
    task are those of the kickoff that made the call, whichever thread emitted it.
    Not thread-safe: the caller releases events one at a time, in order.
    """

    def __init__(self, bus: EventBus, scope_starting: frozenset[str], scope_ending: frozenset[str]) -> None:
        self._bus = bus
        self._scope_starting = scope_starting
        self._scope_ending = scope_ending
        self._scopes: OrderedDict[str, Scope] = OrderedDict()
        self._runs: dict[str, Scope] = {}
        self._calls = Calls(bus, self._remember)
        calls = self._calls
        self._handlers: dict[str, Callable[[Any, Any, Scope], None]] = {
            "crew_kickoff_started": self._crew_started,
            "crew_kickoff_completed": self._crew_ended,
            "crew_kickoff_failed": self._crew_ended,
            "task_started": self._task_started,
            "task_completed": self._task_ended,
            "task_failed": self._task_ended,
            "agent_execution_started": self._agent_started,
            "agent_execution_completed": self._agent_ended,
            "agent_execution_error": self._agent_ended,
            "llm_call_started": calls.started,
            "llm_stream_chunk": calls.chunk,
            "llm_call_completed": calls.ended,
            "llm_call_failed": calls.ended,
            "tool_usage_started": calls.tool_started,
            "tool_usage_finished": calls.tool_ended,
            "tool_usage_error": calls.tool_ended,
        }

    def release(self, item: tuple[Any, Any]) -> None:
        source, event = item
        kind = event.type
        if kind != "llm_stream_chunk":  # keys first, so that this event's own text is redacted with them
            f.register_keys(source, event)
        ending = kind in self._scope_ending
        anchor = event.started_event_id if ending else event.parent_event_id
        scope = self._scopes.get(anchor, ROOT) if anchor is not None else ROOT
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(source, event, scope)
        elif kind in self._scope_starting:  # a scope crewtrace does not report (a flow, memory, ...): pass through
            self._remember(event.event_id, scope.child("other", 0, event.event_id))
        if ending and anchor is not None:
            self._scopes.pop(anchor, None)

    def close_all(self, end_ns: int) -> None:
        """End everything still open (instrumentation closing): every run, then calls outside runs."""
        for run in list(self._runs.values()):
            self._end_run(None, run, end_ns, LEFT_OPEN, ErrorType.CANCELLED)
        for call in list(self._calls.open.values()):
            self._calls.fail(call, end_ns)
        self._scopes.clear()

    # -- crew ----------------------------------------------------------------------

    def _crew_started(self, source: Any, event: Any, parent: Scope) -> None:
        run = parent.child("run", f.timestamp_ns(event.timestamp), event.event_id)
        run.attribute(run_id=event.event_id, crew_name=label(event.crew_name, fallback="crew"))  # one id per kickoff
        self._remember(event.event_id, run)
        self._runs[event.event_id] = run
        self._bus.emit(
            source,
            run.stamp(
                CrewKickoffStartedEvent,
                timestamp_ns=run.start_ns,
                inputs=dict(event.inputs or {}),
            ),
        )

    def _crew_ended(self, source: Any, event: Any, run: Scope) -> None:
        if run.kind != "run":
            return
        end_ns = f.timestamp_ns(event.timestamp)
        if event.type == "crew_kickoff_failed":
            self._end_run(source, run, end_ns, *f.failure_of(event.error))
            return
        self._close_children(run, end_ns)
        self._runs.pop(run.key, None)
        run.ended()
        usage = getattr(event.output, "token_usage", None)
        self._bus.emit(
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

    def _end_run(self, source: Any, run: Scope, end_ns: int, error: str, error_type: str) -> None:
        self._close_children(run, end_ns)
        self._runs.pop(run.key, None)
        run.ended()
        self._bus.emit(
            source,
            run.stamp(
                CrewKickoffFailedEvent,
                **run.ending(end_ns),
                error=error,
                error_type=error_type,
            ),
        )

    # -- task ----------------------------------------------------------------------

    def _task_started(self, source: Any, event: Any, parent: Scope) -> None:
        scope = parent.child("task", f.timestamp_ns(event.timestamp), event.event_id)
        task = event.task
        scope.attribute(
            task_id=event.task_id or (str(task.id) if task is not None else event.event_id),
            task_name=f.task_label(task, event.task_name),
            agent_id=None,
            agent_role=None,
        )
        self._remember(event.event_id, scope)
        self._bus.emit(
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
            self._fail_task(source, scope, end_ns, *f.failure_of(event.error, event.error_type))
            return
        self._close_children(scope, end_ns)
        scope.ended()
        self._bus.emit(
            source,
            scope.stamp(
                TaskCompletedEvent,
                **scope.ending(end_ns),
                output=f.text_of(event.output),
            ),
        )

    def _fail_task(self, source: Any, scope: Scope, end_ns: int, error: str, error_type: str) -> None:
        self._close_children(scope, end_ns)
        scope.ended()
        self._bus.emit(
            source,
            scope.stamp(
                TaskFailedEvent,
                **scope.ending(end_ns),
                error=error,
                error_type=error_type,
            ),
        )

    # -- agent ---------------------------------------------------------------------

    def _agent_started(self, source: Any, event: Any, parent: Scope) -> None:
        scope = parent.child("agent", f.timestamp_ns(event.timestamp), event.event_id)
        agent = event.agent
        scope.attribute(agent_id=str(agent.id), agent_role=f.role_template(agent, event.agent_role))
        if parent.kind != "task" and event.task is not None:  # an agent run outside a crew's task
            scope.attribute(task_id=str(event.task.id), task_name=f.task_label(event.task, None))
        self._remember(event.event_id, scope)
        model, provider = f.agent_model_of(agent)
        self._bus.emit(
            source,
            scope.stamp(
                AgentExecutionStartedEvent,
                timestamp_ns=scope.start_ns,
                role=str(agent.role or ""),
                goal=str(agent.goal or ""),
                model=model,
                provider=provider,
            ),
        )

    def _agent_ended(self, source: Any, event: Any, scope: Scope) -> None:
        if scope.kind != "agent":
            return
        end_ns = f.timestamp_ns(event.timestamp)
        if event.type == "agent_execution_error":
            self._fail_agent(source, scope, end_ns, *f.failure_of(event.error))
            return
        self._close_children(scope, end_ns)
        scope.ended()
        self._bus.emit(
            source,
            scope.stamp(
                AgentExecutionCompletedEvent,
                **scope.ending(end_ns),
                output=f.text_of(event.output),
            ),
        )

    def _fail_agent(self, source: Any, scope: Scope, end_ns: int, error: str, error_type: str) -> None:
        self._close_children(scope, end_ns)
        scope.ended()
        self._bus.emit(
            source,
            scope.stamp(
                AgentExecutionErrorEvent,
                **scope.ending(end_ns),
                error=error,
                error_type=error_type,
            ),
        )

    # -- shared --------------------------------------------------------------------

    def _close_children(self, scope: Scope, end_ns: int) -> None:
        """End, innermost first, what a scope's end left open (CrewAI emits no end for a cancelled part)."""
        for child in reversed(list(scope.open_children.values())):
            self._scopes.pop(child.key, None)
            if child.kind == "call":
                self._calls.fail(child, end_ns)
            elif child.kind == "tool":
                self._calls.tool_failed(child, end_ns)
            elif child.kind == "agent":
                self._fail_agent(None, child, end_ns, LEFT_OPEN, ErrorType.CANCELLED)
            elif child.kind == "task":
                self._fail_task(None, child, end_ns, LEFT_OPEN, ErrorType.CANCELLED)

    def _remember(self, event_id: str, scope: Scope) -> None:
        self._scopes[event_id] = scope
        if len(self._scopes) > _MAX_SCOPES:
            self._scopes.popitem(last=False)
