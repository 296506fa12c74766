"""``OTelBridge``: crewtrace events in, OpenTelemetry spans, span events and metrics out.

A listener like any other: it reads events and nothing else. Spans are
parented by the ids the events carry (flow, method, run, task, agent, step),
never by the current context across yields, so the tree holds across threads,
asyncio tasks and abandoned generators. Only an outermost span (a flow run, a
crew run outside a flow, an agent or an LLM call outside both) takes its
parent from the context current when the event is emitted: that is how a span
the application opened around ``kickoff()`` becomes the parent of the run.

Every span, whatever its kind, has one lifecycle: :meth:`OTelBridge._start`
opens it and keeps one record in one store; :meth:`OTelBridge._end` (on the
ending event) or :meth:`OTelBridge.close` (when the bridge stops first) ends it
through :meth:`OTelBridge._finish`, which runs the kind's hook (the metrics of
a call or a tool), marks failures and ends the span.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.trace import Span, SpanKind, TracerProvider

from crewtrace._version import __version__
from crewtrace.errors import ConfigurationError, ErrorType
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
    FailureMixin,
    FlowStartedEvent,
    GuardrailCompletedEvent,
    GuardrailStartedEvent,
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
    TaskCompletedEvent,
    TaskFailedEvent,
    TaskStartedEvent,
    ToolUsageErrorEvent,
    ToolUsageFinishedEvent,
    ToolUsageStartedEvent,
)
from crewtrace.telemetry import _settings, names
from crewtrace.telemetry._attributes import (
    SpanKey,
    agent_key,
    attribution,
    call_key,
    clean,
    defined,
    delegating_tool_key,
    enclosing,
    input_messages,
    mark_failed,
    output_messages,
    run_key,
    task_key,
    tool_key,
)
from crewtrace.telemetry._chunks import ChunkTimeline
from crewtrace.telemetry._labels import LabelCaps
from crewtrace.telemetry._steps import ENDS, STARTS
from crewtrace.telemetry.instruments import create_instruments

__all__ = ["OTelBridge"]

_SCOPE_NAME = "crewtrace"
_CLOSED = "telemetry was shut down while this was still running"


@dataclass(frozen=True, slots=True)
class _Ending:
    """How an open span ends: its ending event, or the bridge closing first (``event`` is None)."""

    end_ns: int
    duration_s: float
    error_type: str | None = None
    message: str = ""
    event: BaseEvent | None = None


@dataclass(slots=True)
class _Open:
    """One open span, whatever its kind, between its start and its end."""

    span: Span
    name: str
    start_ns: int
    finish: Callable[[_Open, _Ending], None] | None = None
    """The kind's hook, run as the span ends: the metrics of a call or a tool."""
    metric_attributes: dict[str, Any] = field(default_factory=dict)
    timeline: ChunkTimeline | None = None
    """A streamed call's chunks."""


class OTelBridge(BaseEventListener):
    """Turns crewtrace events into spans, chunk span events and metrics.

    Args:
        tracer_provider: defaults to the global one.
        meter_provider: defaults to the global one.
        capture_content: record prompts, completions, chunk text, tool arguments
            and results, and error messages. ``True`` or ``False``; ``None`` (the
            default) reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``,
            on only for an explicit true (``true``, ``1``, ``yes``, ``on``,
            ``SPAN_ONLY``, ``SPAN_AND_EVENT``).
        max_chunk_events: span events per chat span for its chunks (first,
            last, and coalesced groups between); never more than the span event
            limit (``OTEL_SPAN_EVENT_COUNT_LIMIT``, 128 by default) allows.
        max_label_values: distinct values per metric label (agent, task,
            model, error type) before further ones are reported as ``_OTHER``.
        bus: the event bus to listen on; defaults to ``crewtrace_event_bus``.

    Raises:
        ConfigurationError: an argument that cannot work.
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
            raise ConfigurationError(
                f"max_chunk_events must be at least 3 (first, last and one group), got {max_chunk_events}"
            )
        if max_label_values < 1:
            raise ConfigurationError(f"max_label_values must be at least 1, got {max_label_values}")
        self.capture_content = _settings.capture_content(capture_content)
        span_event_limit = SpanLimits().max_events  # the SDK evicts the oldest events past it: the first chunk's
        self._max_chunk_events = (
            max_chunk_events if span_event_limit is None else min(max_chunk_events, span_event_limit)
        )
        self._tracer = trace.get_tracer(_SCOPE_NAME, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE_NAME, __version__, meter_provider=meter_provider)
        self._instruments = create_instruments(meter)
        self._labels = LabelCaps(max_label_values)
        self._open: dict[SpanKey, _Open] = {}
        self._streams: dict[str, _Open] = {}  # the open streamed calls by call id: a chunk's one lookup
        self._lock = threading.Lock()
        self._step_hooks: dict[type[BaseEvent], Callable[[_Open, _Ending], None]] = {
            FlowStartedEvent: self._flow_finished,
            GuardrailStartedEvent: self._guardrail_finished,
        }
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
        on(LLMCallCompletedEvent, self._on_call_ended)
        on(LLMCallFailedEvent, self._on_call_ended)
        for started in STARTS:
            on(started, self._on_span_started)
        for ended in ENDS:
            on(ended, self._on_span_ended)

    def open_spans(self) -> tuple[str, ...]:
        """Names of the spans the bridge holds open, in the order they started."""
        with self._lock:
            return tuple(opened.name for opened in self._open.values())

    def label_value_counts(self) -> dict[str, int]:
        """Distinct values each capped metric label (and the attribution labels' combinations) holds so far."""
        return self._labels.counts()

    def close(self) -> None:
        """Stop listening, and end every span still open, innermost first, as failed with ``bridge_closed``.

        A run cut off this way says so up to its workflow span: ERROR status and the same ``error.type``.
        """
        super().close()
        with self._lock:
            opened, self._open = self._open, {}
            self._streams = {}
        now = time.time_ns()
        for record in reversed(opened.values()):
            duration = max(0, now - record.start_ns) / 1e9
            self._finish(record, _Ending(now, duration, ErrorType.BRIDGE_CLOSED, _CLOSED))

    # -- the one span lifecycle ----------------------------------------------------

    def _start(
        self,
        key: SpanKey,
        parents: Sequence[SpanKey],
        name: str,
        event: BaseEvent,
        attributes: dict[str, Any],
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        finish: Callable[[_Open, _Ending], None] | None = None,
        metric_attributes: dict[str, Any] | None = None,
        timeline: ChunkTimeline | None = None,
    ) -> _Open:
        """Open a span under the first of ``parents`` that is open (else the emitter's context) and keep it."""
        name = clean(name)
        span = self._tracer.start_span(
            name,
            context=self._parent_context(parents),
            kind=kind,
            attributes=defined(attributes),
            start_time=event.timestamp_ns,
        )
        record = _Open(span, name, event.timestamp_ns, finish, metric_attributes or {}, timeline)
        with self._lock:
            self._open[key] = record
        return record

    def _end(self, key: SpanKey, event: BaseEvent, attributes: Mapping[str, Any] | None = None) -> None:
        """End the span ``key`` on its ending event (completed or failed); unknown keys are ignored."""
        with self._lock:
            record = self._open.pop(key, None)
        if record is None:
            return
        if attributes:
            record.span.set_attributes(defined(dict(attributes)))
        duration = getattr(event, "duration_s", None)
        if not isinstance(duration, float):
            duration = max(0, event.timestamp_ns - record.start_ns) / 1e9
        failure = event if isinstance(event, FailureMixin) else None
        self._finish(
            record,
            _Ending(
                event.timestamp_ns,
                duration,
                failure.error_type if failure else None,
                failure.error if failure else "",
                event,
            ),
        )

    def _finish(self, record: _Open, ending: _Ending) -> None:
        span = record.span
        if record.finish is not None:
            record.finish(record, ending)
        if ending.error_type is not None:
            mark_failed(span, ending.error_type, ending.message, self.capture_content)
        span.end(end_time=ending.end_ns)

    def _parent_context(self, keys: Sequence[SpanKey]) -> otel_context.Context | None:
        """The first open span among ``keys``; else the emitter's current context."""
        for key in keys:
            record = self._open.get(key)
            if record is not None:
                return trace.set_span_in_context(record.span)
        return None

    # -- crew, task, agent and tool spans ------------------------------------------

    def _on_crew_started(self, source: Any, event: CrewKickoffStartedEvent) -> None:
        attributes = {names.OPERATION_NAME: names.OP_INVOKE_WORKFLOW, **attribution(event)}
        name = f"{names.OP_INVOKE_WORKFLOW} {event.crew_name}"
        self._start(run_key(event), enclosing(event), name, event, attributes)

    def _on_crew_ended(self, source: Any, event: CrewKickoffCompletedEvent | CrewKickoffFailedEvent) -> None:
        self._end(run_key(event), event)

    def _on_task_started(self, source: Any, event: TaskStartedEvent) -> None:
        attributes = attribution(event)
        if self.capture_content:
            attributes[names.TASK_DESCRIPTION] = event.description
        name = f"{names.OP_EXECUTE_TASK} {event.task_name}"
        self._start(task_key(event), (run_key(event),), name, event, attributes)

    def _on_task_ended(self, source: Any, event: TaskCompletedEvent | TaskFailedEvent) -> None:
        output = event.output if self.capture_content and isinstance(event, TaskCompletedEvent) else None
        self._end(task_key(event), event, {names.TASK_OUTPUT: output})

    def _on_agent_started(self, source: Any, event: AgentExecutionStartedEvent) -> None:
        attributes = {names.OPERATION_NAME: names.OP_INVOKE_AGENT, **attribution(event)}
        name = f"{names.OP_INVOKE_AGENT} {event.agent_role}"
        parents = enclosing(event)
        if event.parent_tool_call_id is not None:
            parents = (delegating_tool_key(event), *parents)
        self._start(agent_key(event), parents, name, event, attributes)

    def _on_agent_ended(self, source: Any, event: AgentExecutionCompletedEvent | AgentExecutionErrorEvent) -> None:
        self._end(agent_key(event), event)

    def _on_tool_started(self, source: Any, event: ToolUsageStartedEvent) -> None:
        attributes = {
            names.OPERATION_NAME: names.OP_EXECUTE_TOOL,
            **attribution(event),
            names.TOOL_NAME: event.tool_name,
            names.TOOL_CALL_ID: event.tool_call_id,
            names.TOOL_TYPE: event.tool_type,
        }
        if self.capture_content:
            attributes[names.TOOL_CALL_ARGUMENTS] = event.arguments
        metric_attributes = {
            names.OPERATION_NAME: names.OP_EXECUTE_TOOL,
            **self._labels.attribution(event),
            names.TOOL_NAME: self._labels.capped(names.TOOL_NAME, event.tool_name),
        }
        name = f"{names.OP_EXECUTE_TOOL} {event.tool_name}"
        self._start(
            tool_key(event),
            enclosing(event),
            name,
            event,
            attributes,
            finish=self._tool_finished,
            metric_attributes=metric_attributes,
        )

    def _on_tool_ended(self, source: Any, event: ToolUsageFinishedEvent | ToolUsageErrorEvent) -> None:
        output = event.output if self.capture_content and isinstance(event, ToolUsageFinishedEvent) else None
        self._end(tool_key(event), event, {names.TOOL_CALL_RESULT: output})

    def _tool_finished(self, record: _Open, ending: _Ending) -> None:
        """A tool call's metrics: counted, failures counted, timed."""
        attributes = self._with_error(record.metric_attributes, ending)
        context = trace.set_span_in_context(record.span)
        instruments = self._instruments
        instruments.tool_calls.add(1, attributes)
        if ending.error_type is not None:
            instruments.tool_errors.add(1, attributes)
        instruments.tool_duration.record(ending.duration_s, attributes, context)

    # -- flows, methods and steps ------------------------------------------------------

    def _on_span_started(self, source: Any, event: BaseEvent) -> None:
        """A flow run, flow method or step starting (its span from ``_steps.STARTS``)."""
        start = STARTS[type(event)](event, self.capture_content)
        finish = self._step_hooks.get(type(event))
        metric_attributes = self._labels.attribution(event) if finish is not None else None
        self._start(
            start.key,
            start.parents,
            start.name,
            event,
            start.attributes,
            finish=finish,
            metric_attributes=metric_attributes,
        )

    def _on_span_ended(self, source: Any, event: BaseEvent) -> None:
        key, attributes = ENDS[type(event)](event, self.capture_content)
        self._end(key, event, attributes)

    def _flow_finished(self, record: _Open, ending: _Ending) -> None:
        """A flow run's duration, labelled by flow name (and error type)."""
        attributes = self._with_error(record.metric_attributes, ending)
        context = trace.set_span_in_context(record.span)
        self._instruments.flow_duration.record(ending.duration_s, attributes, context)

    def _guardrail_finished(self, record: _Open, ending: _Ending) -> None:
        """A rejection counted by agent and task."""
        event = ending.event
        if isinstance(event, GuardrailCompletedEvent) and not event.passed:
            self._instruments.guardrail_rejections.add(1, record.metric_attributes)

    # -- LLM calls -----------------------------------------------------------------

    def _on_call_started(self, source: Any, event: LLMCallStartedEvent) -> None:
        attributes = {
            **attribution(event),
            names.OPERATION_NAME: names.OP_CHAT,
            names.PROVIDER_NAME: event.provider,
            names.REQUEST_MODEL: event.model,
            names.REQUEST_STREAM: event.stream,
            names.REQUEST_TEMPERATURE: event.temperature,
            names.REQUEST_MAX_TOKENS: event.max_tokens,
            names.SERVER_ADDRESS: event.server_address,
            names.SERVER_PORT: event.server_port,
        }
        if self.capture_content:
            attributes[names.INPUT_MESSAGES] = json.dumps(input_messages(event.messages))
        metric_attributes = {
            names.OPERATION_NAME: names.OP_CHAT,
            names.PROVIDER_NAME: clean(event.provider or "unknown"),
            names.REQUEST_MODEL: self._labels.capped(names.REQUEST_MODEL, event.model),
            **self._labels.attribution(event),
        }
        timeline = None
        if event.stream:
            timeline = ChunkTimeline(
                event.timestamp_ns, max_events=self._max_chunk_events, capture_text=self.capture_content
            )
            self._instruments.stream_active.add(1, metric_attributes)
        record = self._start(
            call_key(event.call_id),
            enclosing(event),
            f"{names.OP_CHAT} {event.model}",
            event,
            attributes,
            kind=SpanKind.CLIENT,
            finish=self._call_finished,
            metric_attributes=metric_attributes,
            timeline=timeline,
        )
        if timeline is not None:
            self._streams[event.call_id] = record

    def _on_chunk(self, source: Any, event: LLMStreamChunkEvent) -> None:
        """The per-chunk path: one lookup, the timeline's bookkeeping, and a batch of gaps recorded now and then."""
        record = self._streams.get(event.call_id)
        if record is not None:
            timeline = record.timeline
            if timeline is not None and timeline.add(event.timestamp_ns, event.chunk, event.chunk_type):
                self._record_gaps(timeline, record.metric_attributes)

    def _on_call_ended(self, source: Any, event: LLMCallCompletedEvent | LLMCallFailedEvent) -> None:
        self._streams.pop(event.call_id, None)
        attributes = None
        if isinstance(event, LLMCallCompletedEvent):
            usage = event.usage
            attributes = {
                names.RESPONSE_MODEL: event.response_model,
                names.RESPONSE_ID: event.response_id,
                names.RESPONSE_FINISH_REASONS: [event.finish_reason] if event.finish_reason else None,
                names.USAGE_INPUT_TOKENS: usage.input_tokens if usage else None,
                names.USAGE_OUTPUT_TOKENS: usage.output_tokens if usage else None,
            }
            if self.capture_content:
                attributes[names.OUTPUT_MESSAGES] = json.dumps(output_messages(event.response, event.finish_reason))
        self._end(call_key(event.call_id), event, attributes)

    def _call_finished(self, record: _Open, ending: _Ending) -> None:
        """A call's metrics, all in one place, and its chunk events and counts on the span."""
        span = record.span
        attributes = self._with_error(record.metric_attributes, ending)
        context = trace.set_span_in_context(span)
        instruments = self._instruments
        event = ending.event
        if isinstance(event, LLMCallCompletedEvent):
            usage = event.usage
            if usage is not None:
                instruments.token_usage.record(
                    usage.input_tokens, {**attributes, names.TOKEN_TYPE: names.TOKEN_TYPE_INPUT}, context
                )
                instruments.token_usage.record(
                    usage.output_tokens, {**attributes, names.TOKEN_TYPE: names.TOKEN_TYPE_OUTPUT}, context
                )
            if event.cost_usd is not None:
                instruments.usage_cost.record(event.cost_usd, attributes, context)
        instruments.operation_duration.record(ending.duration_s, attributes, context)
        timeline = record.timeline
        if timeline is None:
            return
        chunk_count = event.chunk_count if isinstance(event, (LLMCallCompletedEvent, LLMCallFailedEvent)) else None
        if chunk_count is None:
            chunk_count = timeline.count
        span.set_attribute(names.STREAM_CHUNK_COUNT, chunk_count)
        ttfc = getattr(event, "time_to_first_chunk_s", None)
        if ttfc is not None:
            span.set_attribute(names.RESPONSE_TIME_TO_FIRST_CHUNK, ttfc)
            instruments.time_to_first_chunk.record(ttfc, attributes, context)
        for event_attributes, timestamp in timeline.events():
            span.add_event(names.CHUNK_EVENT, event_attributes, timestamp=timestamp)
        self._record_gaps(timeline, attributes)
        if chunk_count:
            instruments.stream_chunks.add(chunk_count, attributes)
        instruments.stream_active.add(-1, record.metric_attributes)

    def _with_error(self, attributes: dict[str, Any], ending: _Ending) -> dict[str, Any]:
        if ending.error_type is None:
            return attributes
        return {**attributes, names.ERROR_TYPE: self._labels.capped(names.ERROR_TYPE, ending.error_type)}

    def _record_gaps(self, timeline: ChunkTimeline, attributes: dict[str, Any]) -> None:
        """time_per_output_chunk, one point per gap, recorded in batches: memory stays bounded."""
        # No span context: an exemplar per chunk gap would cost more than it tells.
        record = self._instruments.time_per_output_chunk.record
        for gap in timeline.take_gaps():
            record(gap, attributes)
