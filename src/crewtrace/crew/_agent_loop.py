"""An agent's work on one task: LLM call, tool calls, results back to the model, until an answer.

Bad tool calls (unknown tool, arguments that are not JSON or fail the
schema, a tool that raises, overruns its timeout or returns what cannot be
sent back as text) never end the run: the error goes back to the model as the
tool's result, so it can correct itself, and a ``ToolUsageErrorEvent`` records it.
Nor does a result or an error holding text the model's API cannot carry (a lone
surrogate): it goes back escaped.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any, TypedDict

from crewtrace.crew._flow import LLMRequest, Request, ToolRequest
from crewtrace.crew.agent import Agent
from crewtrace.crew.tool import Tool, ToolOutcome
from crewtrace.errors import ErrorType, MaxIterationsError, error_type_of
from crewtrace.events.base import TokenUsage
from crewtrace.events.bus import EventBus
from crewtrace.events.scope import ExecutionScope
from crewtrace.events.tool_calls import ToolCall
from crewtrace.events.types.tool import ToolUsageErrorEvent, ToolUsageFinishedEvent, ToolUsageStartedEvent
from crewtrace.llm import CallResult
from crewtrace.redaction import error_message


class _ToolIdentity(TypedDict):
    """The fields every event of one tool call shares, beside its scope."""

    tool_name: str
    declared: bool
    tool_call_id: str
    arguments: str
    iteration: int


def agent_loop(
    bus: EventBus, scope: ExecutionScope, agent: Agent, messages: list[dict[str, Any]]
) -> Generator[Request, Any, tuple[str, TokenUsage, int]]:
    """Returns the final answer, the token usage of every call it took, and how many calls that was."""
    tools = {tool.name: tool for tool in agent.tools}
    schemas = [tool.schema for tool in agent.tools] or None
    usage = TokenUsage()
    for iteration in range(agent.max_iterations):
        result: CallResult = yield LLMRequest(agent.llm, messages, schemas, bus)
        usage = usage + (result.usage or TokenUsage())
        if not result.tool_calls:
            return result.text, usage, iteration + 1
        messages = [*messages, _assistant_turn(result)]
        for call in result.tool_calls:
            output = yield from _call_tool(bus, scope, agent, tools.get(call.function.name or ""), call, iteration)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": _sendable(output)})
    raise MaxIterationsError(agent.role, agent.max_iterations)


def _call_tool(
    bus: EventBus, scope: ExecutionScope, agent: Agent, tool: Tool | None, call: ToolCall, iteration: int
) -> Generator[Request, Any, str]:
    """Run one tool call and return what the model gets back: the output or the error."""
    source = tool or agent
    identity = _ToolIdentity(
        tool_name=call.function.name or "",
        declared=tool is not None,  # a name not among the agent's tools was made up by the model: content
        tool_call_id=call.id or "",
        arguments=call.function.arguments,
        iteration=iteration,
    )
    started = time.perf_counter()
    try:
        bus.emit(source, scope.stamp(ToolUsageStartedEvent, **identity))
        outcome = yield from _outcome(agent, tool, call)
    except BaseException as exc:  # interrupted or cancelled while the tool ran: its span must end too
        failed = scope.stamp(
            ToolUsageErrorEvent,
            **identity,
            error=error_message(exc),
            error_type=error_type_of(exc),
            duration_s=time.perf_counter() - started,
        )
        bus.emit(source, failed)
        raise
    if outcome.error is None:
        output = outcome.output or ""
        bus.emit(source, scope.stamp(ToolUsageFinishedEvent, **identity, output=output, duration_s=outcome.duration_s))
        return output
    assert outcome.error_type is not None  # every failed ToolOutcome names its cause
    bus.emit(
        source,
        scope.stamp(
            ToolUsageErrorEvent,
            **identity,
            error=outcome.error,
            error_type=outcome.error_type,
            duration_s=outcome.duration_s,
        ),
    )
    return f"Error: {outcome.error}. Correct the call or answer without this tool."


def _outcome(agent: Agent, tool: Tool | None, call: ToolCall) -> Generator[Request, Any, ToolOutcome]:
    if tool is None:
        known = ", ".join(sorted(t.name for t in agent.tools)) or "none"
        return ToolOutcome(
            None, f"unknown tool {call.function.name!r} (available: {known})", ErrorType.UNKNOWN_TOOL, 0.0
        )
    try:
        arguments = tool.parse_arguments(call.function.arguments)
    except ValueError as exc:
        return ToolOutcome(None, str(exc), ErrorType.INVALID_ARGUMENTS, 0.0)
    outcome: ToolOutcome = yield ToolRequest(tool, arguments)
    return outcome


def _sendable(text: str) -> str:
    """``text`` as a model's API can carry it: a lone surrogate (a file name that is not UTF-8, in a tool's
    result or error) would fail the next request, so it goes as its ``\\udcxx`` escape."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _assistant_turn(result: CallResult) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": result.text or None,
        "tool_calls": [call.model_dump(exclude={"index"}) for call in result.tool_calls],
    }
