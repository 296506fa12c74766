"""What each kind of span records as it ends: the metrics of a run, an agent, a call, a tool or a guardrail.

One hook per kind, run by the bridge's one lifecycle (``OpenSpan.finish``); every
point carries the span's metric attributes (set at its start) and ``error.type`` if it
failed, with the span as the exemplar's context.
"""

from __future__ import annotations

from typing import Any, Final

from opentelemetry import trace

from crewtrace.events import GuardrailCompletedEvent, LLMCallCompletedEvent, LLMCallFailedEvent
from crewtrace.telemetry import names
from crewtrace.telemetry._attributes import clean
from crewtrace.telemetry._chunks import ChunkTimeline
from crewtrace.telemetry._details import DetailsEvents
from crewtrace.telemetry._labels import LabelCaps
from crewtrace.telemetry._records import Ending, OpenSpan
from crewtrace.telemetry.instruments import Instruments

__all__ = ["FinishHooks"]

_NO_SPAN: Final = trace.set_span_in_context(trace.INVALID_SPAN)
"""The context of the chunk gaps' points: the SDK takes the current one for none (an empty one too), and
offers each point measured in a sampled span's context to the exemplar reservoir."""


class FinishHooks:
    """The kinds' hooks, over one set of instruments and label caps."""

    def __init__(self, instruments: Instruments, labels: LabelCaps, details: DetailsEvents) -> None:
        self._instruments = instruments
        self._labels = labels
        self._details = details

    def tool(self, record: OpenSpan, ending: Ending) -> None:
        """A tool call's metrics: counted, failures counted, timed."""
        attributes = self._with_error(record.metric_attributes, ending)
        context = trace.set_span_in_context(record.span)
        instruments = self._instruments
        instruments.tool_calls.add(1, attributes)
        if ending.error_type is not None:
            instruments.tool_errors.add(1, attributes)
        instruments.execute_tool_duration.record(ending.duration_s, attributes, context)

    def workflow(self, record: OpenSpan, ending: Ending) -> None:
        """A crew run's duration, or a flow run's."""
        attributes = self._with_error(record.metric_attributes, ending)
        context = trace.set_span_in_context(record.span)
        self._instruments.workflow_duration.record(ending.duration_s, attributes, context)

    def agent(self, record: OpenSpan, ending: Ending) -> None:
        """An agent invocation's duration."""
        attributes = self._with_error(record.metric_attributes, ending)
        context = trace.set_span_in_context(record.span)
        self._instruments.invoke_agent_duration.record(ending.duration_s, attributes, context)

    def guardrail(self, record: OpenSpan, ending: Ending) -> None:
        """A guardrail check that rejected the output: counted by agent and task."""
        event = ending.event
        if isinstance(event, GuardrailCompletedEvent) and not event.passed:
            self._instruments.guardrail_rejections.add(1, record.metric_attributes)

    def call(self, record: OpenSpan, ending: Ending) -> None:
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
        if record.details is not None:
            error = {names.ERROR_TYPE: clean(ending.error_type)} if ending.error_type is not None else {}
            self._details.emit(span, {**record.details, **error}, ending.end_ns)
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
        self.record_gaps(timeline, attributes)
        if chunk_count:
            instruments.stream_chunks.add(chunk_count, attributes)
        instruments.stream_active.add(-1, record.metric_attributes)

    def _with_error(self, attributes: dict[str, Any], ending: Ending) -> dict[str, Any]:
        if ending.error_type is None:
            return attributes
        return {**attributes, names.ERROR_TYPE: self._labels.capped(names.ERROR_TYPE, ending.error_type)}

    def record_gaps(self, timeline: ChunkTimeline, attributes: dict[str, Any]) -> None:
        """time_per_output_chunk, one point per gap, recorded in batches: memory stays bounded."""
        # No span: an exemplar per chunk gap would cost more than it tells, whatever span is current.
        record = self._instruments.time_per_output_chunk.record
        for gap in timeline.take_gaps():
            record(gap, attributes, _NO_SPAN)
