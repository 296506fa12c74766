"""How events map to span keys and span attributes: what the bridge reads off each event."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Span, Status, StatusCode

from crewtrace.events import BaseEvent, ToolUsageEvent
from crewtrace.events.base import FailureMixin
from crewtrace.redaction import bound, redact
from crewtrace.telemetry import names

SpanKey = tuple[str | None, ...]


def run_key(event: BaseEvent) -> SpanKey:
    return ("run", event.run_id)


def task_key(event: BaseEvent) -> SpanKey:
    return ("task", event.run_id, event.task_id)


def agent_key(event: BaseEvent) -> SpanKey:
    return ("agent", event.run_id, event.task_id, event.agent_id)


def tool_key(event: ToolUsageEvent) -> SpanKey:
    return ("tool", event.run_id, event.task_id, event.agent_id, event.tool_call_id)


def attribution(event: BaseEvent) -> dict[str, Any]:
    """Span attributes naming the run, task and agent an event belongs to."""
    return {
        names.WORKFLOW_NAME: event.crew_name,
        names.RUN_ID: event.run_id,
        names.TASK_NAME: event.task_name,
        names.TASK_ID: event.task_id,
        names.AGENT_NAME: event.agent_role,
        names.AGENT_ID: event.agent_id,
    }


def defined(attributes: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in attributes.items() if value is not None}


def mark_failed(span: Span, event: FailureMixin, capture_content: bool) -> None:
    """ERROR status and ``error.type``, for every kind of span.

    The message of an error can echo tool arguments or the request (a ``KeyError``
    of an argument value, a provider's validation error): it is content. With capture
    off the status says only the error type; with capture on, the message (already
    redacted and bounded by the emitter, and again here, as it is recorded).
    """
    span.set_attribute(names.ERROR_TYPE, event.error_type)
    description = bound(redact(event.error)) if capture_content else event.error_type
    span.set_status(Status(StatusCode.ERROR, description))


def input_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI chat messages in the conventions' ``gen_ai.input.messages`` shape."""
    return [
        {"role": message.get("role"), "parts": [{"type": "text", "content": message.get("content")}]}
        for message in messages
    ]


def output_messages(text: str, finish_reason: str | None) -> list[dict[str, Any]]:
    return [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": finish_reason}]
