"""``OTelBridge``: crewtrace events in, OpenTelemetry spans, span events and metrics out.

A listener like any other: it reads events and nothing else. Spans are
parented by the ids the events carry (run, task, agent), never by the current
context across yields, so the tree holds across threads, asyncio tasks and
abandoned generators. Only the workflow span (and an LLM call made outside a
crew) takes its parent from the context current when the event is emitted:
that is how a span the application opened around ``kickoff()`` becomes the
parent of the run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, TracerProvider

from crewtrace._version import __version__
from crewtrace.errors import ErrorType
from crewtrace.events import (
    AgentExecutionCompletedEvent,
    AgentExecutionErrorEvent,
    AgentExecutionStartedEvent,
    BaseEvent,
    BaseEventListener,
    CrewKickoffCompletedEvent,
    CrewKickoffFailedEvent,
    CrewKickoffStartedEvent,
    EventBus,
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
    StreamChunkType,
    TaskCompletedEvent,
    TaskFailedEvent,
    TaskStartedEvent,
    ToolUsageErrorEvent,
    ToolUsageFinishedEvent,
    ToolUsageStartedEvent,
)
from crewtrace.events.base import FailureMixin
from crewtrace.telemetry import _settings, names
from crewtrace.telemetry._attributes import (
    SpanKey,
    agent_key,
    attribution,
    defined,
    input_messages,
    mark_failed,
    output_messages,
    run_key,
    task_key,
    tool_key,
)
from crewtrace.telemetry._chunks import ChunkTimeline
from crewtrace.telemetry._labels import LabelCaps
from crewtrace.telemetry.instruments import create_instruments

__all__ = ["OTelBridge"]

_SCOPE_NAME = "crewtrace"
_GAP_BATCH = 1024  # chunk gaps kept per stream before they are recorded


@dataclass(slots=True)
class _Call:
    """What the bridge keeps for one LLM call between its started and ended events."""

    span: Span
    name: str
    stream: bool
    metric_attributes: dict[str, Any]
    timeline: ChunkTimeline


@dataclass(slots=True)
class _Open:
    """A crew, task, agent or tool span while it is open."""

    span: Span
    name: str


class OTelBridge(BaseEventListener):
    """Turns crewtrace events into spans, chunk span events and metrics.

    Args:
        tracer_provider: defaults to the global one.
        meter_provider: defaults to the global one.
        capture_content: record prompts, completions, chunk text, tool arguments
            and results, and error messages. ``True`` or ``False``; ``None`` (the
            default) reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``,
            on only for an explicit true (``true``, ``1``, ``yes``, ``on``,
            ``SPAN_ONLY``, ``SPAN_AND_EVENT``). Anything else is a ``TypeError``.
        max_chunk_events: span events per chat span for its chunks (first,
            last, and coalesced groups between); keep it under the SDK's span
            event limit (128 by default).
        max_label_values: distinct values per metric label (agent, task,
            model, error type) before further ones are reported as ``_OTHER``.
        bus: the event bus to listen on; defaults to ``crewtrace_event_bus``.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        capture_content: bool | None = None,
        max_chunk_events: int = 64,
        max_label_values: int = 100,
        bus: EventBus | None = None,
    ) -> None:
        if max_chunk_events < 3:
            raise ValueError(f"max_chunk_events must be at least 3 (first, last and one group), got {max_chunk_events}")
        if max_label_values < 1:
            raise ValueError(f"max_label_values must be at least 1, got {max_label_values}")
        self.capture_content = _settings.capture_content(capture_content)
        self._max_chunk_events = max_chunk_events
        self._tracer = trace.get_tracer(_SCOPE_NAME, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE_NAME, __version__, meter_provider=meter_provider)
        self._instruments = create_instruments(meter)
        self._labels = LabelCaps(max_label_values)
        self._spans: dict[SpanKey, _Open] = {}
        self._calls: dict[str, _Call] = {}
        self._lock = threading.Lock()
        super().__init__(bus)

    def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
        on = crewtrace_event_bus.register_handler
        on(CrewKickoffStartedEvent, self._on_crew_started)
        on(CrewKickoffCompletedEvent, self._on_crew_ended)
        on(CrewKickoffFailedEvent, self._on_crew_ended)
        on(TaskStartedEvent, self._on_task_started)
        on(TaskCompletedEvent, self._on_task_ended)
        on(TaskFailedEvent, self._on_task_ended)
        on(AgentExecutionStartedEvent, self._on_agent_started)
        on(AgentExecutionCompletedEvent, self._on_agent_ended)
        on(AgentExecutionErrorEvent, self._on_agent_ended)
        on(ToolUsageStartedEvent, self._on_tool_started)
        on(ToolUsageFinishedEvent, self._on_tool_ended)
        on(ToolUsageErrorEvent, self._on_tool_ended)
        on(LLMCallStartedEvent, self._on_call_started)
        on(LLMStreamChunkEvent, self._on_chunk)
        on(LLMCallCompletedEvent, self._on_call_completed)
        on(LLMCallFailedEvent, self._on_call_failed)

    def open_spans(self) -> tuple[str, ...]:
        """Names of the spans the bridge holds open (crew, task, agent, tool, then LLM calls)."""
        with self._lock:
            return (*(o.name for o in self._spans.values()), *(c.name for c in self._calls.values()))

    def label_value_counts(self) -> dict[str, int]:
        """Distinct values each capped metric label (and the agent/task pairs) holds so far."""
        return self._labels.counts()

    def close(self) -> None:
        """Stop listening, and end any span still open so none leaks."""
        super().close()
        with self._lock:
            calls, self._calls = self._calls, {}
            spans, self._spans = self._spans, {}
        for call in calls.values():
            call.span.set_attributes(
                {names.ERROR_TYPE: ErrorType.BRIDGE_CLOSED, names.STREAM_CHUNK_COUNT: call.timeline.count}
            )
            if call.stream:
                self._instruments.stream_active.add(-1, call.metric_attributes)
            call.span.end()
        for opened in spans.values():
            opened.span.end()

    # -- crew, task and agent spans ------------------------------------------------

    def _on_crew_started(self, source: Any, event: CrewKickoffStartedEvent) -> None:
        self._open(
            run_key(event),
            None,
            f"{names.OP_INVOKE_WORKFLOW} {event.crew_name}",
            event,
            {
                names.OPERATION_NAME: names.OP_INVOKE_WORKFLOW,
                names.WORKFLOW_NAME: event.crew_name,
                names.RUN_ID: event.run_id,
            },
        )

    def _on_crew_ended(self, source: Any, event: CrewKickoffCompletedEvent | CrewKickoffFailedEvent) -> None:
        self._close(run_key(event), event)

    def _on_task_started(self, source: Any, event: TaskStartedEvent) -> None:
        attributes = attribution(event)
        if self.capture_content:
            attributes[names.TASK_DESCRIPTION] = event.description
        self._open(task_key(event), run_key(event), f"{names.OP_EXECUTE_TASK} {event.task_name}", event, attributes)

    def _on_task_ended(self, source: Any, event: TaskCompletedEvent | TaskFailedEvent) -> None:
        content = (
            {names.TASK_OUTPUT: event.output} if self.capture_content and isinstance(event, TaskCompletedEvent) else {}
        )
        self._close(task_key(event), event, content)

    def _on_agent_started(self, source: Any, event: AgentExecutionStartedEvent) -> None:
        attributes = attribution(event)
        attributes[names.OPERATION_NAME] = names.OP_INVOKE_AGENT
        self._open(agent_key(event), task_key(event), f"{names.OP_INVOKE_AGENT} {event.agent_role}", event, attributes)

    def _on_agent_ended(self, source: Any, event: AgentExecutionCompletedEvent | AgentExecutionErrorEvent) -> None:
        self._close(agent_key(event), event)

    def _on_tool_started(self, source: Any, event: ToolUsageStartedEvent) -> None:
        attributes = attribution(event)
        attributes.update(
            {
                names.OPERATION_NAME: names.OP_EXECUTE_TOOL,
                names.TOOL_NAME: event.tool_name,
                names.TOOL_CALL_ID: event.tool_call_id,
                names.TOOL_TYPE: names.TOOL_TYPE_FUNCTION,
            }
        )
        if self.capture_content:
            attributes[names.TOOL_CALL_ARGUMENTS] = event.arguments
        self._open(tool_key(event), agent_key(event), f"{names.OP_EXECUTE_TOOL} {event.tool_name}", event, attributes)

    def _on_tool_ended(self, source: Any, event: ToolUsageFinishedEvent | ToolUsageErrorEvent) -> None:
        error_type = event.error_type if isinstance(event, ToolUsageErrorEvent) else None
        content: dict[str, Any] = {}
        if self.capture_content and isinstance(event, ToolUsageFinishedEvent):
            content[names.TOOL_CALL_RESULT] = event.output
        with self._lock:
            opened = self._spans.get(tool_key(event))
        labels = self._labels
        attributes = defined(
            {
                names.OPERATION_NAME: names.OP_EXECUTE_TOOL,
                **labels.agent_and_task(event.agent_role, event.task_name),
                names.TOOL_NAME: labels.capped(names.TOOL_NAME, event.tool_name),
                names.ERROR_TYPE: None if error_type is None else labels.capped(names.ERROR_TYPE, error_type),
            }
        )
        context = trace.set_span_in_context(opened.span) if opened is not None else None
        record = self._instruments
        record.tool_calls.add(1, attributes)
        if error_type is not None:
            record.tool_errors.add(1, attributes)
        record.tool_duration.record(event.duration_s, attributes, context)
        self._close(tool_key(event), event, content)

    def _open(
        self, key: SpanKey, parent_key: SpanKey | None, name: str, event: BaseEvent, attributes: dict[str, Any]
    ) -> None:
        span = self._tracer.start_span(
            name,
            context=self._parent_context(parent_key),
            kind=SpanKind.INTERNAL,
            attributes=defined(attributes),
            start_time=event.timestamp_ns,
        )
        with self._lock:
            self._spans[key] = _Open(span, name)

    def _close(self, key: SpanKey, event: BaseEvent, attributes: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            opened = self._spans.pop(key, None)
        if opened is None:
            return
        span = opened.span
        if attributes:
            span.set_attributes(attributes)
        if isinstance(event, FailureMixin):
            mark_failed(span, event, self.capture_content)
        span.end(end_time=event.timestamp_ns)

    def _parent_context(self, *keys: SpanKey | None) -> otel_context.Context | None:
        """The first open span among ``keys``; else the emitter's current context."""
        for key in keys:
            opened = self._spans.get(key) if key is not None else None
            if opened is not None:
                return trace.set_span_in_context(opened.span)
        return None

    # -- LLM calls -----------------------------------------------------------------

    def _on_call_started(self, source: Any, event: LLMCallStartedEvent) -> None:
        attributes = attribution(event)
        attributes.update(
            {
                names.OPERATION_NAME: names.OP_CHAT,
                names.PROVIDER_NAME: event.provider,
                names.REQUEST_MODEL: event.model,
                names.REQUEST_STREAM: event.stream,
                names.REQUEST_TEMPERATURE: event.temperature,
                names.REQUEST_MAX_TOKENS: event.max_tokens,
                names.SERVER_ADDRESS: event.server_address,
                names.SERVER_PORT: event.server_port,
            }
        )
        if self.capture_content:
            attributes[names.INPUT_MESSAGES] = json.dumps(input_messages(event.messages))
        name = f"{names.OP_CHAT} {event.model}"
        span = self._tracer.start_span(
            name,
            context=self._parent_context(agent_key(event), task_key(event), run_key(event)),
            kind=SpanKind.CLIENT,
            attributes=defined(attributes),
            start_time=event.timestamp_ns,
        )
        metric_attributes = defined(
            {
                names.OPERATION_NAME: names.OP_CHAT,
                names.PROVIDER_NAME: event.provider or "unknown",
                names.REQUEST_MODEL: self._labels.capped(names.REQUEST_MODEL, event.model),
                **self._labels.agent_and_task(event.agent_role, event.task_name),
            }
        )
        timeline = ChunkTimeline(
            event.timestamp_ns, max_events=self._max_chunk_events, capture_text=self.capture_content
        )
        with self._lock:
            self._calls[event.call_id] = _Call(span, name, event.stream, metric_attributes, timeline)
        if event.stream:
            self._instruments.stream_active.add(1, metric_attributes)

    def _on_chunk(self, source: Any, event: LLMStreamChunkEvent) -> None:
        call = self._calls.get(event.call_id)
        if call is not None:
            timeline = call.timeline
            timeline.add(event.timestamp_ns, event.chunk, event.chunk_type is StreamChunkType.TOOL_CALL)
            if len(timeline.gaps) >= _GAP_BATCH:
                self._record_gaps(call, call.metric_attributes)

    def _on_call_completed(self, source: Any, event: LLMCallCompletedEvent) -> None:
        call = self._pop_call(event.call_id)
        if call is None:
            return
        span = call.span
        usage = event.usage
        span.set_attributes(
            defined(
                {
                    names.RESPONSE_MODEL: event.response_model,
                    names.RESPONSE_ID: event.response_id,
                    names.RESPONSE_FINISH_REASONS: [event.finish_reason] if event.finish_reason else None,
                    names.USAGE_INPUT_TOKENS: usage.input_tokens if usage else None,
                    names.USAGE_OUTPUT_TOKENS: usage.output_tokens if usage else None,
                }
            )
        )
        if self.capture_content:
            span.set_attribute(names.OUTPUT_MESSAGES, json.dumps(output_messages(event.response, event.finish_reason)))
        context = trace.set_span_in_context(span)
        attributes = call.metric_attributes
        record = self._instruments
        if usage is not None:
            record.token_usage.record(
                usage.input_tokens, {**attributes, names.TOKEN_TYPE: names.TOKEN_TYPE_INPUT}, context
            )
            record.token_usage.record(
                usage.output_tokens, {**attributes, names.TOKEN_TYPE: names.TOKEN_TYPE_OUTPUT}, context
            )
        if event.cost_usd is not None:
            record.usage_cost.record(event.cost_usd, attributes, context)
        self._finish(call, event, attributes, context)

    def _on_call_failed(self, source: Any, event: LLMCallFailedEvent) -> None:
        call = self._pop_call(event.call_id)
        if call is None:
            return
        mark_failed(call.span, event, self.capture_content)
        attributes = {
            **call.metric_attributes,
            names.ERROR_TYPE: self._labels.capped(names.ERROR_TYPE, event.error_type),
        }
        self._finish(call, event, attributes, trace.set_span_in_context(call.span))

    def _finish(
        self,
        call: _Call,
        event: LLMCallCompletedEvent | LLMCallFailedEvent,
        attributes: dict[str, Any],
        context: otel_context.Context,
    ) -> None:
        """What completed and failed calls share: timings, chunk events and metrics, then the end."""
        span = call.span
        record = self._instruments
        record.operation_duration.record(event.duration_s, attributes, context)
        if call.stream:
            timeline = call.timeline
            span.set_attribute(names.STREAM_CHUNK_COUNT, event.chunk_count)
            if event.time_to_first_chunk_s is not None:
                span.set_attribute(names.RESPONSE_TIME_TO_FIRST_CHUNK, event.time_to_first_chunk_s)
                record.time_to_first_chunk.record(event.time_to_first_chunk_s, attributes, context)
            for event_attributes, timestamp in timeline.events():
                span.add_event(names.CHUNK_EVENT, event_attributes, timestamp=timestamp)
            self._record_gaps(call, attributes)
            if event.chunk_count:
                record.stream_chunks.add(event.chunk_count, attributes)
            record.stream_active.add(-1, call.metric_attributes)
        span.end(end_time=event.timestamp_ns)

    def _record_gaps(self, call: _Call, attributes: dict[str, Any]) -> None:
        """time_per_output_chunk, one point per gap, recorded in batches: memory stays bounded."""
        # No span context: an exemplar per chunk gap would cost more than it tells.
        record = self._instruments.time_per_output_chunk.record
        for gap in call.timeline.take_gaps():
            record(gap, attributes)

    def _pop_call(self, call_id: str) -> _Call | None:
        with self._lock:
            return self._calls.pop(call_id, None)
