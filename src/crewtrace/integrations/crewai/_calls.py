"""CrewAI's LLM calls and tool uses as crewtrace events: started, chunks with a per-call index, one end."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from crewai.tools.mcp_native_tool import MCPNativeTool
from crewai.tools.mcp_tool_wrapper import MCPToolWrapper
from crewai.utilities.string_utils import sanitize_tool_name

from crewtrace.errors import ErrorType
from crewtrace.events import (
    FunctionCall,
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
    StreamChunkType,
    TokenUsage,
    ToolCall,
    ToolUsageErrorEvent,
    ToolUsageEvent,
    ToolUsageFinishedEvent,
    ToolUsageStartedEvent,
)
from crewtrace.events.labels import OTHER
from crewtrace.events.pricing import price
from crewtrace.integrations.crewai import _fields as f
from crewtrace.integrations.crewai._entry import raised_error_type
from crewtrace.integrations.crewai._scopes import LEFT_OPEN, Book, Scope
from crewtrace.redaction import error_message

__all__ = ["Calls"]

_MCP_TOOLS = (MCPNativeTool, MCPToolWrapper)
_ENDED_KEPT = 4096
# CrewAI's tool failure reasons that crewtrace's own crews name too; CrewAI's other reasons are kept as they are.
_FAILURE_REASONS = {"unknown_tool": ErrorType.UNKNOWN_TOOL, "invalid_input": ErrorType.INVALID_ARGUMENTS}
# CrewAI's tool errors that come without a tool use of their own (its text-parsing agents' path).
_TOOL_ERRORS = {
    "tool_selection_error": ErrorType.UNKNOWN_TOOL,
    "tool_validate_input_error": ErrorType.INVALID_ARGUMENTS,
}


class Calls:
    """Per-call state (keyed by CrewAI's ``call_id``) and the events of calls and tools.

    Timings come from CrewAI's event timestamps, so they do not depend on when
    a pool thread got round to an event.
    """

    def __init__(self, book: Book, usage: dict[str, TokenUsage]) -> None:
        self._book = book
        self._usage = usage  # usage worked out from CrewAI's counters, by call id (see ``_usage``)
        self.open: dict[str, Scope] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        """Calls that ended lately: CrewAI's litellm path emits a failure twice (its stream handler's, its call's)."""
        self._generation = -1
        self._chunk_listeners = False

    # -- LLM calls -----------------------------------------------------------------

    def started(self, source: Any, event: Any, parent: Scope) -> None:
        if event.call_id in self.open:
            return
        call = self._open(source, event, parent, f.timestamp_ns(event.timestamp))
        self._book.remember(event.event_id, call)
        host, port = f.server_of(source)
        messages = event.messages
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        max_tokens = event.max_tokens
        self._book.emit(
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

    def chunk(self, source: Any, event: Any, arrived: int) -> None:
        """One streamed text or tool-call chunk, ``arrived`` when CrewAI emitted it: the hot path."""
        call = self.open.get(event.call_id)
        if call is None:
            call = self._late_start(source, event, self._book.find(event.parent_event_id))
        values = self._counted(call, event, arrived)
        if values is None:
            return
        if event.response_id is not None:
            values["response_id"] = event.response_id
        tool_call = event.tool_call
        if tool_call is not None:  # already in OpenAI's shape: the call as far as it has arrived
            function = tool_call.function
            values["chunk_type"] = StreamChunkType.TOOL_CALL
            values["tool_call"] = ToolCall(
                id=tool_call.id,
                function=FunctionCall(name=function.name or None, arguments=function.arguments or ""),
                index=tool_call.index,
            )
        self._book.bus.emit(source, LLMStreamChunkEvent.assemble(values))

    def thinking_chunk(self, source: Any, event: Any, parent: Scope) -> None:
        """A thinking model's reasoning chunk (CrewAI hands these to its thread pool, so its own time counts)."""
        call = self.open.get(event.call_id)
        if call is None:
            call = self._late_start(source, event, parent)
        values = self._counted(call, event, f.timestamp_ns(event.timestamp))
        if values is not None:
            values["chunk_type"] = StreamChunkType.REASONING
            values["response_id"] = event.response_id
            self._book.emit(source, LLMStreamChunkEvent.assemble(values))

    def _counted(self, call: Scope, event: Any, ts: int) -> dict[str, Any] | None:
        """Count a chunk of ``call``; its event's values if anyone listens to chunks.

        Everything a chunk event shares with its call was validated once, at the call's first
        chunk; a chunk adds its own four values.
        """
        index = call.chunks
        call.chunks = index + 1
        if call.first_chunk_ns is None:
            call.first_chunk_ns = ts
        bus = self._book.bus
        if bus.generation != self._generation:  # listeners changed: look them up again (once per change)
            self._generation = bus.generation
            self._chunk_listeners = bus.has_handlers(LLMStreamChunkEvent)
        if not self._chunk_listeners:
            return None
        fields = call.chunk_fields
        if fields is None:
            template = call.stamp(
                LLMStreamChunkEvent,
                timestamp_ns=call.start_ns,
                call_id=call.call_id,
                model=call.model,
                provider=call.provider,
                chunk="",
                chunk_index=0,
            )
            fields = call.chunk_fields = template.shared_fields()
        return {**fields, "event_id": event.event_id, "timestamp_ns": ts, "chunk": event.chunk, "chunk_index": index}

    def ended(self, source: Any, event: Any, parent: Scope) -> None:
        if event.call_id in self._ended:
            return
        call = self.open.get(event.call_id) or self._late_start(source, event, parent)
        end_ns = f.timestamp_ns(event.timestamp)
        if event.type == "llm_call_failed":
            error, error_type = f.call_failure_of(event.error, raised_error_type(call.call_id))
            self.fail(call, end_ns, error, error_type, source)
            return
        if not self._close(call, end_ns):
            return
        response = event.response
        try:
            usage = f.usage_of(event.usage, call.model) or self._usage.pop(call.call_id, None)
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
        self._book.bus.emit(source, completed)

    def fail(
        self,
        call: Scope,
        end_ns: int,
        error: str = LEFT_OPEN,
        error_type: str = ErrorType.CANCELLED,
        source: Any = None,
    ) -> None:
        """End a call as failed: CrewAI said so, or its scope ended without a word about it."""
        if self._close(call, end_ns):
            self._emit_failed(source, call, end_ns, error, error_type)

    def _emit_failed(self, source: Any, call: Scope, end_ns: int, error: str, error_type: str) -> None:
        self._book.emit(
            source,
            call.stamp(
                LLMCallFailedEvent,
                **_call_ending(call, end_ns),
                error=error,
                error_type=error_type,
            ),
        )

    def _close(self, call: Scope, end_ns: int) -> bool:
        if not self._book.ending(call, end_ns):
            return False
        self.open.pop(call.call_id, None)
        self._ended[call.call_id] = None
        if len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)
        return True

    def _open(self, source: Any, event: Any, parent: Scope, start_ns: int) -> Scope:
        call = parent.child("call", start_ns, "call:" + event.call_id)
        call.call_id = event.call_id
        self._book.attribute_from(call, source, event)
        call.model, call.provider = f.model_of(event.model, source)
        stream = getattr(event, "stream", None)
        call.stream = bool(getattr(source, "stream", False) if stream is None else stream)
        if parent.owner is not None:
            parent.owner.llm_calls += 1
        self.open[event.call_id] = call
        self._book.opened(call, self.fail)
        return call

    def _late_start(self, source: Any, event: Any, parent: Scope) -> Scope:
        """A call whose started event never came (emitted before instrumentation) gets one now: started first."""
        ts = f.timestamp_ns(event.timestamp)
        call = self._open(source, event, parent, ts)
        call.stream = call.stream or event.type != "llm_call_completed"
        self._book.emit(
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

    # -- tools ---------------------------------------------------------------------

    def tool_started(self, source: Any, event: Any, parent: Scope) -> None:
        tool = self._tool(source, event, parent, event.event_id)
        tool.arguments = f.arguments_of(event.tool_args)
        mcp = _mcp_tool(source, event.tool_name)
        if mcp is not None:  # a tool an MCP server serves: its own name there, and the extension type
            tool.name = mcp.original_tool_name
            tool.tool_type = "extension"
            tool.declared = True
        self._book.remember(event.event_id, tool)
        self._emit_tool(source, tool, ToolUsageStartedEvent, tool.start_ns)

    def mcp_tool_started(self, source: Any, event: Any, parent: Scope) -> Scope | None:
        """An MCP tool run outside a tool use (inside one, that tool use is its span): a tool span of its own."""
        if parent.kind == "tool":
            return None
        tool = self._tool(source, event, parent, event.event_id)
        tool.arguments = f.arguments_of(event.tool_args or {})
        tool.tool_type = "extension"
        tool.declared = True  # the server's own tool, run by CrewAI's MCP client
        self._book.remember(event.event_id, tool)
        self._emit_tool(source, tool, ToolUsageStartedEvent, tool.start_ns)
        return tool

    def tool_ended(self, source: Any, event: Any, tool: Scope) -> None:
        if tool.kind != "tool":
            return
        end_ns = f.timestamp_ns(event.timestamp)
        failure = getattr(event, "failure", None)
        if event.type in ("tool_usage_error", "mcp_tool_execution_failed"):
            self.tool_failed(tool, end_ns, *f.failure_of(event.error), source=source)
        elif failure is not None:  # the tool ran and said it did not succeed (or did not exist)
            reason = str(getattr(getattr(failure, "reason", None), "value", "") or OTHER)
            error_type = _FAILURE_REASONS.get(reason, reason)
            self.tool_failed(tool, end_ns, f.failure_of(getattr(failure, "message", ""))[0], error_type, source)
        elif self._book.ending(tool, end_ns):
            output = f.text_of(getattr(event, "output", None) if event.type == "tool_usage_finished" else event.result)
            self._emit_tool(source, tool, ToolUsageFinishedEvent, end_ns, output=output)

    def tool_error(self, source: Any, event: Any, parent: Scope) -> None:
        """A tool the model asked for that does not exist, or arguments it cannot take: a failed tool use."""
        tool = self._tool(source, event, parent, event.event_id)
        tool.arguments = f.arguments_of(event.tool_args)
        self._emit_tool(source, tool, ToolUsageStartedEvent, tool.start_ns)
        self.tool_failed(tool, tool.start_ns, f.failure_of(event.error)[0], _TOOL_ERRORS[event.type], source)

    def tool_failed(
        self,
        tool: Scope,
        end_ns: int,
        error: str = LEFT_OPEN,
        error_type: str = ErrorType.CANCELLED,
        source: Any = None,
    ) -> None:
        if self._book.ending(tool, end_ns):
            self._emit_tool(source, tool, ToolUsageErrorEvent, end_ns, error=error, error_type=error_type)

    def _tool(self, source: Any, event: Any, parent: Scope, key: str) -> Scope:
        tool = parent.child("tool", f.timestamp_ns(event.timestamp), key)
        self._book.attribute_from(tool, source, event)
        tool.name = event.tool_name
        tool.declared = f.declared_tool(event.tool_name, source, event)
        tool.llm_calls = max(0, (parent.owner.llm_calls if parent.owner is not None else 1) - 1)
        self._book.opened(tool, self.tool_failed)
        return tool

    def _emit_tool(self, source: Any, tool: Scope, kind: type[ToolUsageEvent], ts: int, **outcome: Any) -> None:
        """One tool event; the id is CrewAI's started event's (CrewAI passes no tool-call id to tools)."""
        if kind is not ToolUsageStartedEvent:
            outcome["duration_s"] = f.seconds_between(tool.start_ns, ts)
        self._book.emit(
            source,
            tool.stamp(
                kind,
                timestamp_ns=ts,
                tool_name=tool.name,
                declared=tool.declared,
                tool_call_id=tool.key,
                arguments=tool.arguments,
                iteration=tool.llm_calls,
                tool_type=tool.tool_type,
                **outcome,
            ),
        )


def _mcp_tool(executor: Any, name: str) -> Any:
    """The MCP tool an agent executor called by the name the model used, if it is one."""
    for tool in getattr(executor, "original_tools", None) or ():
        if isinstance(tool, _MCP_TOOLS) and sanitize_tool_name(tool.name) == name:
            return tool
    return None


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
