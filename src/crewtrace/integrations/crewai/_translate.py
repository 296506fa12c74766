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
    BaseEvent,
    CrewKickoffCompletedEvent,
    CrewKickoffFailedEvent,
    CrewKickoffStartedEvent,
    EventBus,
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
    TaskCompletedEvent,
    TaskFailedEvent,
    TaskStartedEvent,
    TokenUsage,
    ToolCallChunk,
    ToolUsageErrorEvent,
    ToolUsageFinishedEvent,
    ToolUsageStartedEvent,
)
from crewtrace.integrations.crewai import _fields as f
from crewtrace.integrations.crewai._scopes import ROOT, Scope

__all__ = ["Translator"]

_MAX_SCOPES = 65_536  # scopes whose end never came (CrewAI pairs nearly all) are forgotten oldest first
_LEFT_OPEN = "ended before its parts: closed by crewtrace"


class Translator:
    """Turns each CrewAI event into the crewtrace event(s) it means and emits them on ``bus``.

    Not thread-safe: the caller releases events one at a time, in order.
    """

    def __init__(self, bus: EventBus, scope_starting: frozenset[str], scope_ending: frozenset[str]) -> None:
        self._bus = bus
        self._scope_starting = scope_starting
        self._scope_ending = scope_ending
        self._scopes: OrderedDict[str, Scope] = OrderedDict()
        self._calls: dict[str, Scope] = {}
        self._runs: dict[str, Scope] = {}
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
            "llm_call_started": self._call_started,
            "llm_stream_chunk": self._chunk,
            "llm_call_completed": self._call_ended,
            "llm_call_failed": self._call_ended,
            "tool_usage_started": self._tool_started,
            "tool_usage_finished": self._tool_ended,
            "tool_usage_error": self._tool_ended,
        }

    def release(self, item: tuple[Any, Any]) -> None:
        source, event = item
        kind = event.type
        ending = kind in self._scope_ending
        anchor = event.started_event_id if ending else event.parent_event_id
        scope = self._scopes.get(anchor, ROOT) if anchor is not None else ROOT
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(source, event, scope)
        elif kind in self._scope_starting:
            self._remember(event.event_id, scope.child("other", 0, event.event_id))
        if ending and anchor is not None:
            self._scopes.pop(anchor, None)

    def close_all(self, end_ns: int) -> None:
        """End everything still open (instrumentation closing): every run, then calls outside runs."""
        for run in list(self._runs.values()):
            self._close_children(run, end_ns)
            self._emit(
                None,
                CrewKickoffFailedEvent(
                    **_who(run),
                    error=_LEFT_OPEN,
                    error_type=ErrorType.CANCELLED,
                    duration_s=f.seconds_between(run.start_ns, end_ns),
                    timestamp_ns=end_ns,
                ),
            )
        for call in list(self._calls.values()):
            self._fail_call(call, end_ns)
        self._runs.clear()
        self._calls.clear()
        self._scopes.clear()

    # -- crew, task, agent ---------------------------------------------------------

    def _crew_started(self, source: Any, event: Any, parent: Scope) -> None:
        scope = parent.child("run", f.timestamp_ns(event.timestamp), event.event_id)
        scope.run_id = event.event_id
        scope.crew_name = event.crew_name or "crew"
        self._remember(event.event_id, scope)
        self._runs[event.event_id] = scope
        self._emit(
            source, CrewKickoffStartedEvent(**_who(scope), inputs=dict(event.inputs or {}), timestamp_ns=scope.start_ns)
        )

    def _crew_ended(self, source: Any, event: Any, scope: Scope) -> None:
        if scope.kind != "run":
            return
        end_ns = f.timestamp_ns(event.timestamp)
        self._close_children(scope, end_ns)
        self._runs.pop(scope.key, None)
        scope.ended()
        duration = f.seconds_between(scope.start_ns, end_ns)
        if event.type == "crew_kickoff_failed":
            error, error_type = f.failure_of(event.error)
            self._emit(
                source,
                CrewKickoffFailedEvent(
                    **_who(scope), error=error, error_type=error_type, duration_s=duration, timestamp_ns=end_ns
                ),
            )
            return
        usage = getattr(event.output, "token_usage", None)
        token_usage = TokenUsage(
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        )
        self._emit(
            source,
            CrewKickoffCompletedEvent(
                **_who(scope),
                output=f.text_of(event.output),
                token_usage=token_usage,
                duration_s=duration,
                timestamp_ns=end_ns,
            ),
        )

    def _task_started(self, source: Any, event: Any, parent: Scope) -> None:
        scope = parent.child("task", f.timestamp_ns(event.timestamp), event.event_id)
        task = event.task
        scope.task_id = event.task_id or (str(task.id) if task is not None else event.event_id)
        scope.task_name = f.task_label(task, event.task_name)
        scope.agent_id = scope.agent_role = None
        self._remember(event.event_id, scope)
        self._emit(
            source,
            TaskStartedEvent(
                **_who(scope),
                description=str(getattr(task, "description", "") or ""),
                expected_output=str(getattr(task, "expected_output", "") or ""),
                timestamp_ns=scope.start_ns,
            ),
        )

    def _task_ended(self, source: Any, event: Any, scope: Scope) -> None:
        if scope.kind != "task":
            return
        end_ns = f.timestamp_ns(event.timestamp)
        self._close_children(scope, end_ns)
        scope.ended()
        duration = f.seconds_between(scope.start_ns, end_ns)
        if event.type == "task_failed":
            error, error_type = f.failure_of(event.error, event.error_type)
            self._emit(
                source,
                TaskFailedEvent(
                    **_who(scope), error=error, error_type=error_type, duration_s=duration, timestamp_ns=end_ns
                ),
            )
        else:
            self._emit(
                source,
                TaskCompletedEvent(
                    **_who(scope), output=f.text_of(event.output), duration_s=duration, timestamp_ns=end_ns
                ),
            )

    def _agent_started(self, source: Any, event: Any, parent: Scope) -> None:
        scope = parent.child("agent", f.timestamp_ns(event.timestamp), event.event_id)
        agent = event.agent
        scope.agent_id = str(agent.id)
        scope.agent_role = f.role_template(agent, event.agent_role)
        if parent.kind != "task" and event.task is not None:  # an agent run outside a crew's task
            scope.task_id = str(event.task.id)
            scope.task_name = f.task_label(event.task, None)
        self._remember(event.event_id, scope)
        self._emit(
            source, AgentExecutionStartedEvent(**_who(scope), goal=str(agent.goal or ""), timestamp_ns=scope.start_ns)
        )

    def _agent_ended(self, source: Any, event: Any, scope: Scope) -> None:
        if scope.kind != "agent":
            return
        end_ns = f.timestamp_ns(event.timestamp)
        self._close_children(scope, end_ns)
        scope.ended()
        duration = f.seconds_between(scope.start_ns, end_ns)
        if event.type == "agent_execution_error":
            error, error_type = f.failure_of(event.error)
            self._emit(
                source,
                AgentExecutionErrorEvent(
                    **_who(scope), error=error, error_type=error_type, duration_s=duration, timestamp_ns=end_ns
                ),
            )
        else:
            self._emit(
                source,
                AgentExecutionCompletedEvent(
                    **_who(scope), output=f.text_of(event.output), duration_s=duration, timestamp_ns=end_ns
                ),
            )

    # -- LLM calls -----------------------------------------------------------------

    def _call_started(self, source: Any, event: Any, parent: Scope) -> None:
        call = self._open_call(source, event, parent, f.timestamp_ns(event.timestamp))
        self._remember(event.event_id, call)
        host, port = f.server_of(source)
        messages = event.messages
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        max_tokens = event.max_tokens
        self._emit(
            source,
            LLMCallStartedEvent(
                **_who(call),
                call_id=event.call_id,
                model=call.model,
                provider=call.provider,
                messages=list(messages or []),
                stream=call.stream,
                temperature=event.temperature,
                max_tokens=int(max_tokens) if max_tokens is not None else None,
                server_address=host,
                server_port=port,
                timestamp_ns=call.start_ns,
            ),
        )

    def _open_call(self, source: Any, event: Any, parent: Scope, start_ns: int) -> Scope:
        call = parent.child("call", start_ns, "call:" + event.call_id)
        _attribute_from_event(call, event)
        call.model = event.model or getattr(source, "model", None) or "unknown"
        call.provider = f.provider_of(call.model, source)
        stream = getattr(event, "stream", None)
        call.stream = bool(getattr(source, "stream", False) if stream is None else stream)
        if parent.owner is not None:
            parent.owner.llm_calls += 1
        self._calls[event.call_id] = call
        return call

    def _call_for(self, source: Any, event: Any, parent: Scope) -> Scope:
        """The call's state; a call whose started event never came gets one now, so started comes first."""
        call = self._calls.get(event.call_id)
        if call is None:
            ts = f.timestamp_ns(event.timestamp)
            call = self._open_call(source, event, parent, ts)
            call.stream = call.stream or event.type == "llm_stream_chunk"
            self._emit(
                source,
                LLMCallStartedEvent(
                    **_who(call),
                    call_id=event.call_id,
                    model=call.model,
                    provider=call.provider,
                    messages=[],
                    stream=call.stream,
                    timestamp_ns=ts,
                ),
            )
        return call

    def _chunk(self, source: Any, event: Any, parent: Scope) -> None:
        call = self._calls.get(event.call_id) or self._call_for(source, event, parent)
        ts = f.timestamp_ns(event.timestamp)
        index = call.chunks
        call.chunks = index + 1
        if call.first_chunk_ns is None:
            call.first_chunk_ns = ts
        tool_call = event.tool_call
        fragment = None
        if tool_call is not None:
            first = tool_call.index not in call.tool_indexes
            call.tool_indexes.add(tool_call.index)
            fragment = ToolCallChunk(
                index=tool_call.index,
                id=tool_call.id if first else None,
                name=tool_call.function.name if first else None,
                arguments=event.chunk,
            )
        self._bus.emit(
            source,
            LLMStreamChunkEvent(
                run_id=call.run_id,
                crew_name=call.crew_name,
                task_id=call.task_id,
                task_name=call.task_name,
                agent_id=call.agent_id,
                agent_role=call.agent_role,
                timestamp_ns=ts,
                call_id=event.call_id,
                model=call.model,
                provider=call.provider,
                chunk=event.chunk,
                chunk_index=index,
                response_id=event.response_id,
                call_type="tool_call" if fragment is not None else "text",
                tool_call=fragment,
            ),
        )

    def _call_ended(self, source: Any, event: Any, parent: Scope) -> None:
        call = self._call_for(source, event, parent)
        del self._calls[event.call_id]
        call.ended()
        end_ns = f.timestamp_ns(event.timestamp)
        timing = _timing(call, end_ns)
        if event.type == "llm_call_failed":
            error, error_type = f.failure_of(event.error)
            self._emit(source, LLMCallFailedEvent(**timing, error=error, error_type=error_type))
            return
        response = event.response
        self._emit(
            source,
            LLMCallCompletedEvent(
                **timing,
                response=response if isinstance(response, str) else "",
                usage=f.usage_of(event.usage),
                finish_reason=event.finish_reason,
                response_id=event.response_id,
            ),
        )

    def _fail_call(self, call: Scope, end_ns: int) -> None:
        self._calls.pop(call.key.removeprefix("call:"), None)
        call.ended()
        self._emit(None, LLMCallFailedEvent(**_timing(call, end_ns), error=_LEFT_OPEN, error_type=ErrorType.CANCELLED))

    # -- tools ---------------------------------------------------------------------

    def _tool_started(self, source: Any, event: Any, parent: Scope) -> None:
        tool = parent.child("tool", f.timestamp_ns(event.timestamp), event.event_id)
        _attribute_from_event(tool, event)
        tool.name = event.tool_name
        tool.arguments = f.arguments_of(event.tool_args)
        tool.llm_calls = max(0, (parent.owner.llm_calls if parent.owner is not None else 1) - 1)
        self._remember(event.event_id, tool)
        self._emit(source, ToolUsageStartedEvent(**_who(tool), **_tool(tool), timestamp_ns=tool.start_ns))

    def _tool_ended(self, source: Any, event: Any, tool: Scope) -> None:
        if tool.kind != "tool":
            return
        tool.ended()
        end_ns = f.timestamp_ns(event.timestamp)
        duration = f.seconds_between(tool.start_ns, end_ns)
        if event.type == "tool_usage_error":
            error, error_type = f.failure_of(event.error)
            self._emit(
                source,
                ToolUsageErrorEvent(
                    **_who(tool),
                    **_tool(tool),
                    error=error,
                    error_type=error_type,
                    duration_s=duration,
                    timestamp_ns=end_ns,
                ),
            )
        else:
            self._emit(
                source,
                ToolUsageFinishedEvent(
                    **_who(tool),
                    **_tool(tool),
                    output=f.text_of(event.output),
                    duration_s=duration,
                    timestamp_ns=end_ns,
                ),
            )

    # -- shared --------------------------------------------------------------------

    def _close_children(self, scope: Scope, end_ns: int) -> None:
        """End, innermost first, what a scope's end left open (CrewAI emits no end for a cancelled part)."""
        for child in reversed(list(scope.open_children.values())):
            self._close_children(child, end_ns)
            duration = f.seconds_between(child.start_ns, end_ns)
            if child.kind == "call":
                self._fail_call(child, end_ns)
                continue
            child.ended()
            self._scopes.pop(child.key, None)
            if child.kind == "tool":
                self._emit(
                    None,
                    ToolUsageErrorEvent(
                        **_who(child),
                        **_tool(child),
                        error=_LEFT_OPEN,
                        error_type=ErrorType.CANCELLED,
                        duration_s=duration,
                        timestamp_ns=end_ns,
                    ),
                )
            elif child.kind == "agent":
                self._emit(
                    None,
                    AgentExecutionErrorEvent(
                        **_who(child),
                        error=_LEFT_OPEN,
                        error_type=ErrorType.CANCELLED,
                        duration_s=duration,
                        timestamp_ns=end_ns,
                    ),
                )
            elif child.kind == "task":
                self._emit(
                    None,
                    TaskFailedEvent(
                        **_who(child),
                        error=_LEFT_OPEN,
                        error_type=ErrorType.CANCELLED,
                        duration_s=duration,
                        timestamp_ns=end_ns,
                    ),
                )

    def _remember(self, event_id: str, scope: Scope) -> None:
        self._scopes[event_id] = scope
        if len(self._scopes) > _MAX_SCOPES:
            self._scopes.popitem(last=False)

    def _emit(self, source: Any, event: BaseEvent) -> None:
        self._bus.emit(source, event)


def _who(scope: Scope) -> dict[str, Any]:
    """The attribution fields every crewtrace event takes, from the scope it happened in."""
    return {
        "run_id": scope.run_id,
        "crew_name": scope.crew_name,
        "task_id": scope.task_id,
        "task_name": scope.task_name,
        "agent_id": scope.agent_id,
        "agent_role": scope.agent_role,
    }


def _tool(tool: Scope) -> dict[str, Any]:
    return {"tool_name": tool.name, "tool_call_id": tool.key, "arguments": tool.arguments, "iteration": tool.llm_calls}


def _timing(call: Scope, end_ns: int) -> dict[str, Any]:
    """An ended call's attribution, identity, chunk count and timings, all from CrewAI's own clock."""
    first = call.first_chunk_ns
    return {
        **_who(call),
        "timestamp_ns": end_ns,
        "call_id": call.key.removeprefix("call:"),
        "model": call.model,
        "provider": call.provider,
        "chunk_count": call.chunks,
        "duration_s": f.seconds_between(call.start_ns, end_ns),
        "time_to_first_chunk_s": f.seconds_between(call.start_ns, first) if first is not None else None,
    }


def _attribute_from_event(scope: Scope, event: Any) -> None:
    """Outside a crew there is no enclosing scope: take agent and task from the event itself."""
    if scope.agent_id is None and event.agent_id is not None:
        scope.agent_id = str(event.agent_id)
        scope.agent_role = event.agent_role
    if scope.task_id is None and event.task_id is not None:
        scope.task_id = str(event.task_id)
        scope.task_name = event.task_name
