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
a run, an agent, a call or a tool), marks failures and ends the span. Flow runs,
flow methods and steps (what CrewAI applications add) go through it too, their
spans described in ``_steps``.

Among other GenAI instrumentations the bridge owns the chat span of each call it
records: it gives the request of that call its context (``_requests``) through the
bus's request hooks. Inside ``suppress_instrumentation()`` it records nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry._logs import LoggerProvider
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.trace import SpanContext, SpanKind, TracerProvider
from opentelemetry.util.genai.invocation import InferenceData
from opentelemetry.util.genai.types import ContentCapturingMode

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
from crewtrace.events.labels import UNKNOWN
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
from crewtrace.telemetry._details import DetailsEvents
from crewtrace.telemetry._finish import FinishHooks
from crewtrace.telemetry._labels import LabelCaps
from crewtrace.telemetry._records import Ending, OpenSpan
from crewtrace.telemetry._requests import published, request_context
from crewtrace.telemetry._steps import ENDS, STARTS
from crewtrace.telemetry.instruments import create_instruments

__all__ = ["OTelBridge"]

_SCOPE_NAME = "crewtrace"
_CLOSED = "telemetry was shut down while this was still running"
_SPAN_CONTENT = frozenset({ContentCapturingMode.SPAN_ONLY, ContentCapturingMode.SPAN_AND_EVENT})


class OTelBridge(BaseEventListener):
    """Turns crewtrace events into spans, chunk span events and metrics.

    Args:
        tracer_provider: defaults to the global one.
        meter_provider: defaults to the global one.
        capture_content: where prompts, completions, chunk text, tool arguments
            and results, and error messages go: a ``ContentCapturingMode``
            (``NO_CONTENT``, ``SPAN_ONLY``, ``EVENT_ONLY``: in each call's
            ``gen_ai.client.inference.operation.details`` event only,
            ``SPAN_AND_EVENT``), ``True`` (``SPAN_ONLY``) or ``False``; ``None``
            (the default) reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
            (a mode's name, or ``true``/``false``). The details event is emitted under
            the modes with events, or when ``OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT=true``.
        logger_provider: where the details events go; defaults to the global one.
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
        capture_content: bool | ContentCapturingMode | None = None,
        max_chunk_events: int = 64,
        max_label_values: int = 100,
        bus: EventBus | None = None,
        logger_provider: LoggerProvider | None = None,
    ) -> None:
        if max_chunk_events < 3:
            raise ConfigurationError(
                f"max_chunk_events must be at least 3 (first, last and one group), got {max_chunk_events}"
            )
        if max_label_values < 1:
            raise ConfigurationError(f"max_label_values must be at least 1, got {max_label_values}")
        self.capture_mode = _settings.capture_mode(capture_content)
        self.capture_content = self.capture_mode in _SPAN_CONTENT
        """Whether content goes on spans."""
        self._details = DetailsEvents(self.capture_mode, logger_provider, _SCOPE_NAME)
        span_event_limit = SpanLimits().max_events  # the SDK evicts the oldest events past it: the first chunk's
        self._max_chunk_events = (
            max_chunk_events if span_event_limit is None else min(max_chunk_events, span_event_limit)
        )
        self._tracer = trace.get_tracer(_SCOPE_NAME, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE_NAME, __version__, meter_provider=meter_provider)
        self._instruments = create_instruments(meter)
        self._labels = LabelCaps(max_label_values)
        self._hooks = FinishHooks(self._instruments, self._labels, self._details)
        self._open: dict[SpanKey, OpenSpan] = {}
        self._streams: dict[str, OpenSpan] = {}  # the open streamed calls by call id: a chunk's one lookup
        self._lock = threading.Lock()
        self._step_hooks: dict[type[BaseEvent], Callable[[OpenSpan, Ending], None]] = {
            FlowStartedEvent: self._hooks.workflow,
            GuardrailStartedEvent: self._hooks.guardrail,
        }
        super().__init__(bus)
        self.bus.on_request(self._request_context)

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

    def span_context(self, call_id: str) -> SpanContext | None:
        """The chat span of an LLM call while it is open (to link a log line or a record to its trace)."""
        record = self._open.get(call_key(call_id))
        return record.span.get_span_context() if record is not None else None

    def label_value_counts(self) -> dict[str, int]:
        """Distinct values each capped metric label (and the attribution labels' combinations) holds so far."""
        return self._labels.counts()

    def close(self) -> None:
        """Stop listening, and end every span still open, innermost first, as failed with ``bridge_closed``.

        A run cut off this way says so up to its workflow span: ERROR status and the same ``error.type``.
        """
        self.bus.off_request(self._request_context)
        super().close()
        with self._lock:
            opened, self._open = self._open, {}
            self._streams = {}
        now = time.time_ns()
        for record in reversed(opened.values()):
            duration = max(0, now - record.start_ns) / 1e9
            self._finish(record, Ending(now, duration, ErrorType.BRIDGE_CLOSED, _CLOSED))

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
        finish: Callable[[OpenSpan, Ending], None] | None = None,
        metric_attributes: dict[str, Any] | None = None,
    ) -> OpenSpan | None:
        """Open a span under the first of ``parents`` that is open (else the emitter's context) and keep it.

        Inside ``suppress_instrumentation()`` nothing is opened (``None``): its ending event finds no span.
        """
        if not is_instrumentation_enabled():
            return None
        name = clean(name)
        span = self._tracer.start_span(
            name,
            context=self._parent_context(parents),
            kind=kind,
            attributes=defined(attributes),
            start_time=event.timestamp_ns,
        )
        record = OpenSpan(span, name, event.timestamp_ns, finish, metric_attributes or {})
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
            Ending(
                event.timestamp_ns,
                duration,
                failure.error_type if failure else None,
                failure.error if failure else "",
                event,
            ),
        )

    def _finish(self, record: OpenSpan, ending: Ending) -> None:
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
        metric_attributes = {names.OPERATION_NAME: names.OP_INVOKE_WORKFLOW, **self._labels.attribution(event)}
        self._start(
            run_key(event),
            enclosing(event),
            f"{names.OP_INVOKE_WORKFLOW} {event.crew_name}",
            event,
            attributes,
            finish=self._hooks.workflow,
            metric_attributes=metric_attributes,
        )

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
        attributes = {
            names.OPERATION_NAME: names.OP_INVOKE_AGENT,
            **attribution(event),
            names.PROVIDER_NAME: event.provider,
            names.REQUEST_MODEL: event.model,
        }
        metric_attributes = {
            names.OPERATION_NAME: names.OP_INVOKE_AGENT,
            **self._labels.attribution(event),
            **self._model_labels(event.model, event.provider),
        }
        name = f"{names.OP_INVOKE_AGENT} {event.agent_role}"
        parents = enclosing(event)
        if event.parent_tool_call_id is not None:  # a coworker: under the tool call that delegated to it
            parents = (delegating_tool_key(event), *parents)
        self._start(
            agent_key(event),
            parents,
            name,
            event,
            attributes,
            finish=self._hooks.agent,
            metric_attributes=metric_attributes,
        )

    def _on_agent_ended(self, source: Any, event: AgentExecutionCompletedEvent | AgentExecutionErrorEvent) -> None:
        self._end(agent_key(event), event)

    def _on_tool_started(self, source: Any, event: ToolUsageStartedEvent) -> None:
        # A name the model made up is content (any length, any characters): labelled _UNKNOWN, outside the cap.
        tool_name = event.tool_name if event.declared else UNKNOWN
        attributes = {
            names.OPERATION_NAME: names.OP_EXECUTE_TOOL,
            **attribution(event),
            names.TOOL_NAME: tool_name,
            names.TOOL_CALL_ID: event.tool_call_id,
            names.TOOL_TYPE: event.tool_type,
        }
        if self.capture_content:
            attributes[names.TOOL_CALL_ARGUMENTS] = event.arguments
            if not event.declared:
                attributes[names.TOOL_REQUESTED_NAME] = event.tool_name
        metric_attributes = {
            names.OPERATION_NAME: names.OP_EXECUTE_TOOL,
            **self._labels.attribution(event),
            names.TOOL_NAME: self._labels.capped(names.TOOL_NAME, tool_name) if event.declared else UNKNOWN,
        }
        name = f"{names.OP_EXECUTE_TOOL} {tool_name}"
        self._start(
            tool_key(event),
            enclosing(event),
            name,
            event,
            attributes,
            finish=self._hooks.tool,
            metric_attributes=metric_attributes,
        )

    def _on_tool_ended(self, source: Any, event: ToolUsageFinishedEvent | ToolUsageErrorEvent) -> None:
        output = event.output if self.capture_content and isinstance(event, ToolUsageFinishedEvent) else None
        self._end(tool_key(event), event, {names.TOOL_CALL_RESULT: output})

    # -- flows, methods and steps ------------------------------------------------------

    def _on_span_started(self, source: Any, event: BaseEvent) -> None:
        """A flow run, a flow method or a step starting (its span from ``_steps.STARTS``)."""
        start = STARTS[type(event)](event, self.capture_content)
        finish = self._step_hooks.get(type(event))
        metric_attributes = None
        if isinstance(event, FlowStartedEvent):  # a workflow's duration, by its name as the conventions ask
            metric_attributes = {
                names.OPERATION_NAME: names.OP_INVOKE_WORKFLOW,
                **self._labels.attribution(event),
                names.WORKFLOW_NAME: self._labels.capped(names.WORKFLOW_NAME, event.flow_name or "flow"),
            }
        elif finish is not None:
            metric_attributes = self._labels.attribution(event)
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

    # -- LLM calls -----------------------------------------------------------------

    def _on_call_started(self, source: Any, event: LLMCallStartedEvent) -> None:
        # Sampling-relevant ones (operation, provider, request model, server) are given at the start.
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
        details = None
        if self._details.enabled:
            details = dict(attributes)
            if self._details.content:
                details[names.INPUT_MESSAGES] = input_messages(event.messages)
        if self.capture_content:
            attributes[names.INPUT_MESSAGES] = json.dumps(input_messages(event.messages))
        metric_attributes = {
            names.OPERATION_NAME: names.OP_CHAT,
            **self._model_labels(event.model, event.provider or "unknown"),
            **self._labels.attribution(event),
        }
        record = self._start(
            call_key(event.call_id),
            enclosing(event),
            f"{names.OP_CHAT} {event.model}",
            event,
            attributes,
            kind=SpanKind.CLIENT,
            finish=self._hooks.call,
            metric_attributes=metric_attributes,
        )
        if record is not None:
            record.details = details
            if event.stream:
                # A span the sampler dropped keeps no events: its timeline only counts chunks and their gaps.
                recording = record.span.is_recording()
                record.timeline = ChunkTimeline(
                    event.timestamp_ns,
                    max_events=self._max_chunk_events if recording else 0,
                    capture_text=self.capture_content and recording,
                )
                self._instruments.stream_active.add(1, metric_attributes)
                self._streams[event.call_id] = record

    def _request_context(self, call_id: str) -> AbstractContextManager[dict[str, str]] | None:
        """The bus's request hook: a recorded call's request runs in its chat span's context (``_requests``)."""
        record = self._open.get(call_key(call_id))
        if record is None:
            return None
        record.inference = InferenceData()
        return request_context(record.span, record.inference)

    def _on_chunk(self, source: Any, event: LLMStreamChunkEvent) -> None:
        """The per-chunk path: one lookup, the timeline's bookkeeping, and a batch of gaps recorded now and then."""
        record = self._streams.get(event.call_id)
        if record is not None:
            timeline = record.timeline
            if timeline is not None and timeline.add(event.timestamp_ns, event.chunk, event.chunk_type):
                self._hooks.record_gaps(timeline, record.metric_attributes)

    def _on_call_ended(self, source: Any, event: LLMCallCompletedEvent | LLMCallFailedEvent) -> None:
        self._streams.pop(event.call_id, None)
        record = self._open.get(call_key(event.call_id))
        if record is None:
            return
        attributes: dict[str, Any] = {}
        if isinstance(event, LLMCallCompletedEvent):
            usage = event.usage
            attributes = {
                names.RESPONSE_MODEL: event.response_model,
                names.RESPONSE_ID: event.response_id,
                names.RESPONSE_FINISH_REASONS: [event.finish_reason] if event.finish_reason else None,
                names.USAGE_INPUT_TOKENS: usage.input_tokens if usage else None,
                names.USAGE_OUTPUT_TOKENS: usage.output_tokens if usage else None,
            }
        # What nested instrumentations published fills what crewtrace does not know; its own values win.
        for key, value in published(record.inference).items():
            if attributes.get(key) is None:
                attributes[key] = value
        if record.details is not None:
            record.details.update(attributes)
            if self._details.content and isinstance(event, LLMCallCompletedEvent):
                record.details[names.OUTPUT_MESSAGES] = output_messages(event.response, event.finish_reason)
        if self.capture_content and isinstance(event, LLMCallCompletedEvent):
            attributes[names.OUTPUT_MESSAGES] = json.dumps(output_messages(event.response, event.finish_reason))
        self._end(call_key(event.call_id), event, attributes)

    def _model_labels(self, model: str | None, provider: str | None) -> dict[str, str]:
        """The model and provider as metric labels (the model capped), where known."""
        labels = {}
        if provider is not None:
            labels[names.PROVIDER_NAME] = clean(provider)
        if model is not None:
            labels[names.REQUEST_MODEL] = self._labels.capped(names.REQUEST_MODEL, model)
        return labels
