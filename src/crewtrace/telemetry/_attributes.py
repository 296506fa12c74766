"""What the bridge reads off events: span keys, span attributes, failure status; and clean text for the SDK."""

from __future__ import annotations

import re
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode

from crewtrace.events import AgentExecutionStartedEvent, BaseEvent, ToolUsageEvent
from crewtrace.telemetry import names

SpanKey = tuple[str | None, ...]

_SURROGATE = re.compile("[\ud800-\udfff]")  # the only code points a str holds that UTF-8 cannot encode


def run_key(event: BaseEvent) -> SpanKey:
    return ("run", event.run_id)


def task_key(event: BaseEvent) -> SpanKey:
    return ("task", event.run_id, event.task_id)


def agent_key(event: BaseEvent) -> SpanKey:
    return ("agent", event.run_id, event.task_id, event.agent_id)


def tool_key(event: ToolUsageEvent) -> SpanKey:
    return ("tool", event.run_id, event.task_id, event.agent_id, event.tool_call_id)


def delegating_tool_key(event: AgentExecutionStartedEvent) -> SpanKey:
    """The tool call that started this agent (a delegation to a coworker): the delegating agent's tool span."""
    return ("tool", event.run_id, event.task_id, event.parent_agent_id, event.parent_tool_call_id)


def call_key(call_id: str) -> SpanKey:
    return ("call", call_id)


def flow_key(event: BaseEvent) -> SpanKey:
    return ("flow", event.flow_run_id)


def method_key(event: BaseEvent) -> SpanKey:
    return ("method", event.flow_run_id, event.flow_method)


def step_key(event: BaseEvent) -> SpanKey:
    return ("step", event.step_id)


def enclosing(event: BaseEvent) -> tuple[SpanKey, ...]:
    """Where a run, an agent, a step or an LLM call can sit, innermost first: the first open one is its parent."""
    return (
        step_key(event),
        agent_key(event),
        task_key(event),
        run_key(event),
        method_key(event),
        flow_key(event),
    )


def attribution(event: BaseEvent) -> dict[str, Any]:
    """Span attributes naming the run, crew, task and agent an event belongs to (from the attribution table)."""
    return {key.span_attribute: getattr(event, key.field) for key in names.ATTRIBUTION}


def clean(text: str) -> str:
    """``text`` with every character UTF-8 cannot encode (a lone surrogate) replaced by U+FFFD.

    The one place strings are made safe for OpenTelemetry: a single such character makes the
    OTLP exporters drop the whole batch, other runs' spans included.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def defined(attributes: dict[str, Any]) -> dict[str, Any]:
    """The attributes that have a value, their strings (also in lists, and in maps for log records) cleaned."""
    return {key: _cleaned(value) for key, value in attributes.items() if value is not None}


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [_cleaned(item) for item in value]
    if isinstance(value, dict):
        return {key: _cleaned(item) for key, item in value.items()}
    return value


def mark_failed(span: Span, error_type: str, message: str, capture_content: bool) -> None:
    """ERROR status and ``error.type``, for every kind of span.

    The message of an error can echo tool arguments or the request (a ``KeyError``
    of an argument value, a provider's validation error): it is content. With capture
    off the status says only the error type; with capture on, the message, which the
    failure event redacted and bounded as it was built (``FailureMixin.error``).
    """
    span.set_attribute(names.ERROR_TYPE, clean(error_type))
    description = message if capture_content else error_type
    span.set_status(Status(StatusCode.ERROR, clean(description)))


def input_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI chat messages in the conventions' ``gen_ai.input.messages`` shape."""
    return [
        {"role": message.get("role"), "parts": [{"type": "text", "content": message.get("content")}]}
        for message in messages
    ]


def output_messages(text: str, finish_reason: str | None) -> list[dict[str, Any]]:
    return [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": finish_reason}]
