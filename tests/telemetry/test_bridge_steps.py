"""The bridge on the event families CrewAI applications add (flows, steps), from crewtrace's own events.

No CrewAI here: any listener or adapter can emit these events, and the bridge places their spans
by the attribution they carry alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.support.trace_assertions import assert_one_trace, children, metric_points

from crewtrace.events import (
    AgentExecutionCompletedEvent,
    AgentExecutionStartedEvent,
    EventBus,
    ExecutionScope,
    FlowCompletedEvent,
    FlowFailedEvent,
    FlowMethodCompletedEvent,
    FlowMethodPausedEvent,
    FlowMethodStartedEvent,
    FlowPausedEvent,
    FlowStartedEvent,
    GuardrailCompletedEvent,
    GuardrailStartedEvent,
    LLMCallCompletedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
    MemorySaveCompletedEvent,
    MemorySaveStartedEvent,
    ReasoningCompletedEvent,
    ReasoningStartedEvent,
    RetrievalCompletedEvent,
    RetrievalStartedEvent,
    StreamChunkType,
    TokenUsage,
    ToolUsageFinishedEvent,
    ToolUsageStartedEvent,
)
from crewtrace.telemetry import OTelBridge

FLOW = ExecutionScope(flow_name="Pipeline", flow_run_id="flow-1")
RUN = {"gen_ai.operation.name": "invoke_workflow"}
METHOD = FLOW.within(flow_method="gather")
AGENT = ExecutionScope(run_id="run-1", crew_name="team", task_id="t-1", task_name="research", agent_id="a-1",
                       agent_role="Researcher")  # fmt: skip


@pytest.fixture
def bridge(tracer_provider: TracerProvider, meter_provider: MeterProvider, bus: EventBus) -> Iterator[OTelBridge]:
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=False, bus=bus)
    yield bridge
    bridge.close()


def call(bus: EventBus, scope: ExecutionScope, call_id: str, chunks: list[tuple[str, StreamChunkType]]) -> None:
    """A streamed LLM call in ``scope``: started, its chunks, completed with usage."""
    fields: dict[str, Any] = {"call_id": call_id, "model": "m", "provider": "openai"}
    bus.emit(None, scope.stamp(LLMCallStartedEvent, **fields, messages=[], stream=True))
    for index, (text, kind) in enumerate(chunks):
        bus.emit(None, scope.stamp(LLMStreamChunkEvent, **fields, chunk=text, chunk_index=index, chunk_type=kind))
    usage = TokenUsage(input_tokens=3, output_tokens=len(chunks))
    done = scope.stamp(
        LLMCallCompletedEvent, **fields, response="", usage=usage, chunk_count=len(chunks), duration_s=0.1
    )
    bus.emit(None, done)


def by_name(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def test_a_flow_holds_its_methods_and_what_they_run(
    bus: EventBus, bridge: OTelBridge, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    bus.emit(None, FLOW.stamp(FlowStartedEvent))
    bus.emit(None, METHOD.stamp(FlowMethodStartedEvent, method_kind="router"))
    call(bus, METHOD, "c-1", [("a", StreamChunkType.TEXT), ("b", StreamChunkType.TEXT)])
    bus.emit(None, METHOD.stamp(FlowMethodCompletedEvent, duration_s=0.2, route="publish"))
    bus.emit(None, FLOW.stamp(FlowCompletedEvent, duration_s=0.3))
    spans = span_exporter.get_finished_spans()
    assert_one_trace(spans)
    flow = by_name(span_exporter, "invoke_workflow Pipeline")
    method = by_name(span_exporter, "execute_flow_method gather")
    assert flow.attributes["gen_ai.workflow.name"] == "Pipeline" and flow.attributes["gen_ai.operation.name"] == (
        "invoke_workflow"
    )
    assert method.parent == flow.context and method.attributes["crewtrace.flow.route"] == "publish"
    assert method.attributes["crewtrace.flow.method.kind"] == "router"
    (chat,) = children(spans, method)
    assert chat.attributes["crewtrace.flow.name"] == "Pipeline" and chat.attributes["crewtrace.flow.method"] == "gather"
    for point in metric_points(metric_reader, "gen_ai.client.token.usage"):
        assert point.attributes["crewtrace.flow.name"] == "Pipeline"
        assert point.attributes["crewtrace.flow.method"] == "gather"
        assert "crewtrace.flow.run.id" not in point.attributes, "ids are never labels"
    (duration,) = metric_points(metric_reader, "gen_ai.workflow.duration")  # a flow run is a workflow run
    assert dict(duration.attributes) == {**RUN, "crewtrace.flow.name": "Pipeline", "gen_ai.workflow.name": "Pipeline"}
    assert duration.sum == pytest.approx(0.3)
    assert bridge.open_spans() == ()


def test_failed_and_paused_flows_say_so(
    bus: EventBus, bridge: OTelBridge, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    bus.emit(None, FLOW.stamp(FlowStartedEvent))
    bus.emit(None, FLOW.stamp(FlowFailedEvent, duration_s=1.0, error="boom", error_type="LookupError"))
    failed = by_name(span_exporter, "invoke_workflow Pipeline")
    assert failed.status.status_code is StatusCode.ERROR and failed.attributes["error.type"] == "LookupError"
    span_exporter.clear()
    paused = ExecutionScope(flow_name="Review", flow_run_id="flow-2")
    bus.emit(None, paused.stamp(FlowStartedEvent))
    bus.emit(None, paused.within(flow_method="draft").stamp(FlowMethodStartedEvent, method_kind="start"))
    bus.emit(None, paused.within(flow_method="draft").stamp(FlowMethodPausedEvent, duration_s=0.1))
    bus.emit(None, paused.stamp(FlowPausedEvent, duration_s=0.2, flow_method="draft"))
    for name in ("invoke_workflow Review", "execute_flow_method draft"):
        span = by_name(span_exporter, name)
        assert span.attributes["crewtrace.flow.outcome"] == "paused" and span.status.status_code is StatusCode.UNSET
    labels = [dict(p.attributes) for p in metric_points(metric_reader, "gen_ai.workflow.duration")]
    pipeline = {**RUN, "crewtrace.flow.name": "Pipeline", "gen_ai.workflow.name": "Pipeline"}
    assert {**pipeline, "error.type": "LookupError"} in labels
    assert {**RUN, "crewtrace.flow.name": "Review", "gen_ai.workflow.name": "Review"} in labels


def test_steps_hold_the_calls_made_for_them_and_a_save_can_outlive_its_agent(
    bus: EventBus, bridge: OTelBridge, span_exporter: InMemorySpanExporter
) -> None:
    bus.emit(None, AGENT.stamp(AgentExecutionStartedEvent, role="Researcher", goal="g"))
    look_up = AGENT.within(step_id="s-1")
    bus.emit(None, look_up.stamp(RetrievalStartedEvent, data_source="knowledge", limit=3))
    call(bus, look_up, "c-1", [("q", StreamChunkType.TEXT)])
    bus.emit(None, look_up.stamp(RetrievalCompletedEvent, duration_s=0.1, result_count=2))
    save = AGENT.within(step_id="s-2")
    bus.emit(None, save.stamp(MemorySaveStartedEvent, data_source_id="/crew/team"))
    bus.emit(None, AGENT.stamp(AgentExecutionCompletedEvent, output="", duration_s=1.0))
    call(bus, save, "c-2", [("m", StreamChunkType.TEXT)])  # the save's analysis, after the agent ended
    bus.emit(None, save.stamp(MemorySaveCompletedEvent, duration_s=2.0))
    spans = span_exporter.get_finished_spans()
    assert_one_trace(spans)
    agent = by_name(span_exporter, "invoke_agent Researcher")
    retrieval = by_name(span_exporter, "retrieval knowledge")
    saving = by_name(span_exporter, "save_memory /crew/team")
    assert retrieval.parent == agent.context and saving.parent == agent.context
    assert retrieval.attributes["gen_ai.operation.name"] == "retrieval"
    assert (
        retrieval.attributes["crewtrace.retrieval.result_count"] == 2
        and retrieval.attributes["gen_ai.request.top_k"] == 3
    )
    assert [s.name for s in children(spans, retrieval)] == ["chat m"]
    assert [s.name for s in children(spans, saving)] == ["chat m"], "under the save, though its agent had ended"
    assert saving.end_time > agent.end_time


def test_a_guardrail_rejection_is_counted_by_agent_and_task(
    bus: EventBus, bridge: OTelBridge, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    for attempt, passed in enumerate((False, True)):
        check = AGENT.within(step_id=f"g-{attempt}")
        bus.emit(None, check.stamp(GuardrailStartedEvent, guardrail_name="length", attempt=attempt))
        bus.emit(
            None, check.stamp(GuardrailCompletedEvent, duration_s=0.01, passed=passed, attempt=attempt, feedback="x")
        )
    checks = [s for s in span_exporter.get_finished_spans() if s.name == "apply_guardrail length"]
    assert [s.attributes["crewtrace.guardrail.passed"] for s in checks] == [False, True]
    assert all("crewtrace.guardrail.feedback" not in s.attributes for s in checks), "feedback is content"
    (rejected,) = metric_points(metric_reader, "crewtrace.guardrail.rejections")
    assert rejected.value == 1
    assert dict(rejected.attributes) == {
        "gen_ai.workflow.name": "team",
        "crewtrace.task.name": "research",
        "gen_ai.agent.name": "Researcher",
    }


def test_a_delegated_agent_sits_under_the_tool_call_that_started_it(
    bus: EventBus, bridge: OTelBridge, span_exporter: InMemorySpanExporter
) -> None:
    bus.emit(None, AGENT.stamp(AgentExecutionStartedEvent, role="Manager", goal="g"))
    tool = {"tool_name": "delegate", "declared": True, "tool_call_id": "tc-1", "arguments": "{}", "iteration": 0}
    bus.emit(None, AGENT.stamp(ToolUsageStartedEvent, **tool))
    coworker = AGENT.within(agent_id="a-2", agent_role="Writer")
    bus.emit(
        None,
        coworker.stamp(
            AgentExecutionStartedEvent, role="Writer", goal="g", parent_agent_id="a-1", parent_tool_call_id="tc-1"
        ),
    )
    bus.emit(None, coworker.stamp(AgentExecutionCompletedEvent, output="", duration_s=0.5))
    bus.emit(None, AGENT.stamp(ToolUsageFinishedEvent, **tool, output="", duration_s=0.6))
    assert (
        by_name(span_exporter, "invoke_agent Writer").parent == by_name(span_exporter, "execute_tool delegate").context
    )


def test_a_plan_step_holds_its_calls_and_reasoning_chunks_are_a_type_of_their_own(
    bus: EventBus, bridge: OTelBridge, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    bus.emit(None, AGENT.stamp(AgentExecutionStartedEvent, role="Researcher", goal="g"))
    plan = AGENT.within(step_id="p-1")
    bus.emit(None, plan.stamp(ReasoningStartedEvent))
    chunks = [("hm", StreamChunkType.REASONING), ("hm2", StreamChunkType.REASONING), ("ok", StreamChunkType.TEXT)]
    call(bus, plan, "c-1", chunks)
    bus.emit(None, plan.stamp(ReasoningCompletedEvent, duration_s=0.2, ready=True))
    step = by_name(span_exporter, "plan Researcher")
    assert step.attributes["gen_ai.operation.name"] == "plan" and step.attributes["crewtrace.plan.ready"] is True
    (chat,) = children(span_exporter.get_finished_spans(), step)
    types = [e.attributes["crewtrace.chunk.type"] for e in chat.events]
    assert types == ["reasoning", "reasoning", "text"]
    (counted,) = metric_points(metric_reader, "crewtrace.stream.chunks")
    assert counted.value == 3


def test_closing_ends_open_flows_and_steps_as_failed(
    bus: EventBus, bridge: OTelBridge, span_exporter: InMemorySpanExporter
) -> None:
    bus.emit(None, FLOW.stamp(FlowStartedEvent))
    bus.emit(None, METHOD.stamp(FlowMethodStartedEvent, method_kind="start"))
    bus.emit(None, METHOD.within(step_id="s-1").stamp(MemorySaveStartedEvent))
    assert bridge.open_spans() == ("invoke_workflow Pipeline", "execute_flow_method gather", "save_memory memory")
    bridge.close()
    spans = span_exporter.get_finished_spans()
    assert len(spans) == 3 and all(s.attributes["error.type"] == "bridge_closed" for s in spans)
    assert bridge.open_spans() == ()
