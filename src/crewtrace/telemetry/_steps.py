"""The spans of what CrewAI applications add to crews: flow runs, flow methods and steps.

Each started event gives a :class:`SpanStart` (key, where it sits, name, attributes), each ending
event its key and the attributes it adds; the bridge runs them through its one span lifecycle.
Steps (a retrieval, a memory save, a guardrail check, a reasoning step) sit in their agent, else
their task, run, flow method or flow, whichever is open: a memory save that outlives its agent
still finds its task or run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crewtrace.events import (
    BaseEvent,
    FlowCompletedEvent,
    FlowFailedEvent,
    FlowMethodCompletedEvent,
    FlowMethodFailedEvent,
    FlowMethodPausedEvent,
    FlowMethodStartedEvent,
    FlowPausedEvent,
    FlowStartedEvent,
    GuardrailCompletedEvent,
    GuardrailFailedEvent,
    GuardrailStartedEvent,
    MemorySaveCompletedEvent,
    MemorySaveFailedEvent,
    MemorySaveStartedEvent,
    ReasoningCompletedEvent,
    ReasoningFailedEvent,
    ReasoningStartedEvent,
    RetrievalCompletedEvent,
    RetrievalFailedEvent,
    RetrievalStartedEvent,
)
from crewtrace.telemetry import names
from crewtrace.telemetry._attributes import SpanKey, attribution, enclosing, flow_key, method_key, step_key

__all__ = ["ENDS", "STARTS", "SpanStart"]


@dataclass(frozen=True, slots=True)
class SpanStart:
    key: SpanKey
    parents: tuple[SpanKey, ...]
    name: str
    attributes: dict[str, Any]


def _flow(event: FlowStartedEvent, capture: bool) -> SpanStart:
    attributes = {
        names.OPERATION_NAME: names.OP_INVOKE_WORKFLOW,
        **attribution(event),
        names.WORKFLOW_NAME: event.flow_name,
    }
    return SpanStart(flow_key(event), (), f"{names.OP_INVOKE_WORKFLOW} {event.flow_name}", attributes)


def _method(event: FlowMethodStartedEvent, capture: bool) -> SpanStart:
    attributes = {**attribution(event), names.FLOW_METHOD_KIND: event.method_kind}
    name = f"{names.SPAN_FLOW_METHOD} {event.flow_method}"
    return SpanStart(method_key(event), (flow_key(event),), name, attributes)


def _retrieval(event: RetrievalStartedEvent, capture: bool) -> SpanStart:
    attributes = {
        names.OPERATION_NAME: names.OP_RETRIEVAL,
        **attribution(event),
        names.RETRIEVAL_SOURCE: event.data_source,
        names.DATA_SOURCE_ID: event.data_source_id,
        names.REQUEST_TOP_K: event.limit,
    }
    if capture:
        attributes[names.RETRIEVAL_QUERY_TEXT] = event.query
    name = f"{names.OP_RETRIEVAL} {event.data_source_id or event.data_source}"
    return SpanStart(step_key(event), enclosing(event), name, attributes)


def _memory_save(event: MemorySaveStartedEvent, capture: bool) -> SpanStart:
    attributes = {**attribution(event), names.DATA_SOURCE_ID: event.data_source_id}
    name = f"{names.SPAN_MEMORY_SAVE} {event.data_source_id or 'memory'}"
    return SpanStart(step_key(event), enclosing(event), name, attributes)


def _guardrail(event: GuardrailStartedEvent, capture: bool) -> SpanStart:
    attributes = {
        **attribution(event),
        names.GUARDRAIL_NAME: event.guardrail_name,
        names.GUARDRAIL_TYPE: event.guardrail_type,
        names.GUARDRAIL_ATTEMPT: event.attempt,
    }
    return SpanStart(step_key(event), enclosing(event), f"{names.SPAN_GUARDRAIL} {event.guardrail_name}", attributes)


def _reasoning(event: ReasoningStartedEvent, capture: bool) -> SpanStart:
    attributes = {names.OPERATION_NAME: names.OP_PLAN, **attribution(event), names.PLAN_ATTEMPT: event.attempt}
    return SpanStart(step_key(event), enclosing(event), f"{names.OP_PLAN} {event.agent_role or 'agent'}", attributes)


STARTS: Mapping[type[BaseEvent], Callable[[Any, bool], SpanStart]] = {
    FlowStartedEvent: _flow,
    FlowMethodStartedEvent: _method,
    RetrievalStartedEvent: _retrieval,
    MemorySaveStartedEvent: _memory_save,
    GuardrailStartedEvent: _guardrail,
    ReasoningStartedEvent: _reasoning,
}
"""Started event class -> its span."""


_PAUSED = {names.FLOW_OUTCOME: "paused"}  # stopped for human feedback: not an error


def _flow_ended(event: BaseEvent, capture: bool) -> tuple[SpanKey, dict[str, Any]]:
    return flow_key(event), _PAUSED if isinstance(event, FlowPausedEvent) else {}


def _method_ended(event: BaseEvent, capture: bool) -> tuple[SpanKey, dict[str, Any]]:
    if isinstance(event, FlowMethodCompletedEvent):
        return method_key(event), {names.FLOW_ROUTE: event.route}
    return method_key(event), _PAUSED if isinstance(event, FlowMethodPausedEvent) else {}


def _step_ended(event: BaseEvent, capture: bool) -> tuple[SpanKey, dict[str, Any]]:
    attributes: dict[str, Any] = {}
    if isinstance(event, RetrievalCompletedEvent):
        attributes[names.RETRIEVAL_RESULT_COUNT] = event.result_count
    elif isinstance(event, GuardrailCompletedEvent):
        attributes[names.GUARDRAIL_PASSED] = event.passed
        if capture and not event.passed:
            attributes[names.GUARDRAIL_FEEDBACK] = event.feedback
    elif isinstance(event, ReasoningCompletedEvent):
        attributes[names.PLAN_READY] = event.ready
    return step_key(event), attributes


ENDS: Mapping[type[BaseEvent], Callable[[BaseEvent, bool], tuple[SpanKey, dict[str, Any]]]] = {
    FlowCompletedEvent: _flow_ended,
    FlowFailedEvent: _flow_ended,
    FlowPausedEvent: _flow_ended,
    FlowMethodCompletedEvent: _method_ended,
    FlowMethodFailedEvent: _method_ended,
    FlowMethodPausedEvent: _method_ended,
    RetrievalCompletedEvent: _step_ended,
    RetrievalFailedEvent: _step_ended,
    MemorySaveCompletedEvent: _step_ended,
    MemorySaveFailedEvent: _step_ended,
    GuardrailCompletedEvent: _step_ended,
    GuardrailFailedEvent: _step_ended,
    ReasoningCompletedEvent: _step_ended,
    ReasoningFailedEvent: _step_ended,
}
"""Ending event class -> its span's key and the attributes it adds."""
