"""CrewAI's LLM calls and tool uses as crewtrace events: started, chunks with a per-call index, one end."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from crewtrace.errors import ErrorType
from crewtrace.events import (
    EventBus,
    FunctionCall,
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
    StreamChunkType,
    ToolCall,
    ToolUsageErrorEvent,
    ToolUsageEvent,
    ToolUsageFinishedEvent,
    ToolUsageStartedEvent,
)
from crewtrace.events.pricing import price
from crewtrace.integrations.crewai import _fields as f
from crewtrace.integrations.crewai._entry import raised_error_type
from crewtrace.integrations.crewai._scopes import LEFT_OPEN, Scope
from crewtrace.redaction import error_message

__all__ = ["Calls"]

_ENDED_KEPT = 4096


class Calls:
    """Per-call state (keyed by CrewAI's ``call_id``) and the events of calls and tools.

    Timings come from CrewAI's event timestamps, so they do not depend on when
    a pool thread got round to an event.
    """

    def __init__(self, bus: EventBus, remember: Callable[[str, Scope], None]) -> None:
        self._bus = bus
        self._remember = remember
        self.open: dict[str, Scope] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        """Calls that ended lately: CrewAI's litellm path emits a failure twice (its stream handler's, its call's)."""

    # -- LLM calls -----------------------------------------------------------------

    def started(self, source: Any, event: Any, parent: Scope) -> None:
        call = self._open(source, event, parent, f.timestamp_ns(event.timestamp))
        self._remember(event.event_id, call)
        host, port = f.server_of(source)
        messages = event.messages
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        max_tokens = event.max_tokens
        self._bus.emit(
            source,
            call.stamp(
                LLMCallStartedEvent,
                timestamp_ns=call.start_ns,
                call_id=event.call_id,
                model=call.model,
                provider=call.provider,
                messages=list(messages or []),
                stream=call.stream,
                temperature=event.temperature,
                max_tokens=int(max_tokens) if max_tokens is not None else None,
                server_address=host,
                server_port=port,
            ),
        )

    def chunk(self, source: Any, event: Any, parent: Scope) -> None:
        call = self.open.get(event.call_id) or self._late_start(source, event, parent)
        ts = f.timestamp_ns(event.timestamp)
        index = call.chunks
        call.chunks = index + 1
        if call.first_chunk_ns is None:
            call.first_chunk_ns = ts
        tool_call = event.tool_call
        update: dict[str, Any] = {
            "event_id": event.event_id,  # CrewAI's own id (a UUID string): ties the two events together
            "timestamp_ns": ts,
            "chunk": event.chunk,
            "chunk_index": index,
        }
        if event.response_id is not None:
            update["response_id"] = event.response_id
        if tool_call is not None:  # CrewAI's is already in OpenAI's shape: the call as far as it has arrived
            function = tool_call.function
            update["chunk_type"] = StreamChunkType.TOOL_CALL
            update["tool_call"] = ToolCall(
                id=tool_call.id,
                function=FunctionCall(name=function.name or None, arguments=function.arguments or ""),
                index=tool_call.index,
            )
        # The hot path: a copy of the call's validated template with the chunk's own fields,
        # which costs half of building and validating a new event.
        self._bus.emit(source, self._template(call).model_copy(update=update))

    def _template(self, call: Scope) -> LLMStreamChunkEvent:
        template = call.chunk_template
        if template is None:
            template = call.chunk_template = call.stamp(
                LLMStreamChunkEvent,
                timestamp_ns=call.start_ns,
                call_id=call.call_id,
                model=call.model,
                provider=call.provider,
                chunk="",
                chunk_index=0,
            )
        return template

    def ended(self, source: Any, event: Any, parent: Scope) -> None:
        if event.call_id in self._ended:
            return
        call = self.open.get(event.call_id) or self._late_start(source, event, parent)
        end_ns = f.timestamp_ns(event.timestamp)
        if event.type == "llm_call_failed":
            error, error_type = f.call_failure_of(event.error, raised_error_type(call.call_id))
            self.fail(call, end_ns, error, error_type, source)
            return
        self._end(call)
        response = event.response
        try:
            usage = f.usage_of(event.usage, call.model)
            completed = call.stamp(
                LLMCallCompletedEvent,
                **_call_ending(call, end_ns),
                response=response if isinstance(response, str) else "",
                usage=usage,
                finish_reason=_text(event.finish_reason),
                response_id=_text(event.response_id),
                cost_usd=price(call.model, call.provider, usage),  # the price list of crewtrace's own calls
            )
        except Exception as exc:  # odd data CrewAI passed on: the call still ends, as failed, so its span closes
            error = f"crewtrace could not read CrewAI's completed call: {error_message(exc)}"
            self._emit_failed(source, call, end_ns, error, type(exc).__name__)
            return
        self._bus.emit(source, completed)

    def fail(
        self,
        call: Scope,
        end_ns: int,
        error: str = LEFT_OPEN,
        error_type: str = ErrorType.CANCELLED,
        source: Any = None,
    ) -> None:
        """End a call as failed: CrewAI said so, or its scope ended without a word about it."""
        self._end(call)
        self._emit_failed(source, call, end_ns, error, error_type)

    def _emit_failed(self, source: Any, call: Scope, end_ns: int, error: str, error_type: str) -> None:
        self._bus.emit(
            source,
            call.stamp(
                LLMCallFailedEvent,
                **_call_ending(call, end_ns),
                error=error,
                error_type=error_type,
            ),
        )

    def _open(self, source: Any, event: Any, parent: Scope, start_ns: int) -> Scope:
        call = parent.child("call", start_ns, "call:" + event.call_id)
        call.call_id = event.call_id
        call.attribute_from(event)
        call.model, call.provider = f.model_of(event.model, source)
        stream = getattr(event, "stream", None)
        call.stream = bool(getattr(source, "stream", False) if stream is None else stream)
        if parent.owner is not None:
            parent.owner.llm_calls += 1
        self.open[event.call_id] = call
        return call

    def _late_start(self, source: Any, event: Any, parent: Scope) -> Scope:
        """A call whose started event never came (emitted before instrumentation) gets one now: started first."""
        ts = f.timestamp_ns(event.timestamp)
        call = self._open(source, event, parent, ts)
        call.stream = call.stream or event.type == "llm_stream_chunk"
        self._bus.emit(
            source,
            call.stamp(
                LLMCallStartedEvent,
                timestamp_ns=ts,
                call_id=call.call_id,
                model=call.model,
                provider=call.provider,
                messages=[],
                stream=call.stream,
            ),
        )
        return call

    def _end(self, call: Scope) -> None:
        self.open.pop(call.call_id, None)
        self._ended[call.call_id] = None
        if len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)
        call.ended()

    # -- tools ---------------------------------------------------------------------

    def tool_started(self, source: Any, event: Any, parent: Scope) -> None:
        tool = parent.child("tool", f.timestamp_ns(event.timestamp), event.event_id)
        tool.attribute_from(event)
        tool.name = event.tool_name
        tool.declared = f.declared_tool(event.tool_name, source, event)
        tool.arguments = f.arguments_of(event.tool_args)
        tool.llm_calls = max(0, (parent.owner.llm_calls if parent.owner is not None else 1) - 1)
        self._remember(event.event_id, tool)
        self._emit_tool(source, tool, ToolUsageStartedEvent, tool.start_ns)

    def tool_ended(self, source: Any, event: Any, tool: Scope) -> None:
        if tool.kind != "tool":
            return
        end_ns = f.timestamp_ns(event.timestamp)
        if event.type == "tool_usage_error":
            self.tool_failed(tool, end_ns, *f.failure_of(event.error), source=source)
            return
        tool.ended()
        self._emit_tool(source, tool, ToolUsageFinishedEvent, end_ns, output=f.text_of(event.output))

    def tool_failed(
        self,
        tool: Scope,
        end_ns: int,
        error: str = LEFT_OPEN,
        error_type: str = ErrorType.CANCELLED,
        source: Any = None,
    ) -> None:
        tool.ended()
        self._emit_tool(source, tool, ToolUsageErrorEvent, end_ns, error=error, error_type=error_type)

    def _emit_tool(self, source: Any, tool: Scope, kind: type[ToolUsageEvent], ts: int, **outcome: Any) -> None:
        """One tool event; the id is CrewAI's started event's (CrewAI passes no tool-call id to tools)."""
        if kind is not ToolUsageStartedEvent:
            outcome["duration_s"] = f.seconds_between(tool.start_ns, ts)
        self._bus.emit(
            source,
            tool.stamp(
                kind,
                timestamp_ns=ts,
                tool_name=tool.name,
                declared=tool.declared,
                tool_call_id=tool.key,
                arguments=tool.arguments,
                iteration=tool.llm_calls,
                **outcome,
            ),
        )


def _text(value: Any) -> str | None:
    """A text field CrewAI passed on from the provider (an id, a finish reason) as text, whatever it is."""
    return value if value is None or isinstance(value, str) else f.text_of(value)


def _call_ending(call: Scope, end_ns: int) -> dict[str, Any]:
    """The fields a call's completed and failed events share."""
    first = call.first_chunk_ns
    return {
        **call.ending(end_ns),
        "call_id": call.call_id,
        "model": call.model,
        "provider": call.provider,
        "chunk_count": call.chunks,
        "time_to_first_chunk_s": None if first is None else f.seconds_between(call.start_ns, first),
    }
