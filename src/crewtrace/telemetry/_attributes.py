"""How events map to span keys and span attributes: what the bridge reads off each event."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode

from crewtrace.events import BaseEvent, ToolUsageEvent
from crewtrace.events.base import FailureMixin
from crewtrace.telemetry import names

SpanKey = tuple[str | None, ...]


def capture_content_from_env() -> bool:
    """The GenAI convention's switch: any value but empty/false/0/no/NO_CONTENT turns capture on."""
    value = os.environ.get(names.ENV_CAPTURE_CONTENT, "").strip().lower()
    return value not in ("", "false", "0", "no", "no_content")


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


def mark_failed(span: Span, event: FailureMixin) -> None:
    span.set_attribute(names.ERROR_TYPE, event.error_type)
    span.set_status(Status(StatusCode.ERROR, event.error))


def input_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI chat messages in the conventions' ``gen_ai.input.messages`` shape."""
    return [
        {"role": message.get("role"), "parts": [{"type": "text", "content": message.get("content")}]}
        for message in messages
    ]


def output_messages(text: str, finish_reason: str | None) -> list[dict[str, Any]]:
    return [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": finish_reason}]
