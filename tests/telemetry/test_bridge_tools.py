"""Tool calls in telemetry: execute_tool spans, tool-call chunk events, tool metrics."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tests.support.llms import MakeLLM
from tests.support.metrics import points_by_name
from tests.support.openai_server import FakeOpenAIServer, Reply, ToolCallReply, chop

from crewtrace import Agent, Crew, Task, tool
from crewtrace.events import EventBus
from crewtrace.telemetry import OTelBridge


@tool
def lookup(city: str) -> str:
    """Weather by city."""
    if city == "Atlantis":
        raise LookupError("no such city")
    return f"sunny in {city}"


def run_tool_crew(server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus) -> None:
    calls = [
        ToolCallReply("call_ok", "lookup", '{"city": "Lisbon"}'),
        ToolCallReply("call_bad", "lookup", '{"city": "Atlantis"}'),
    ]

    def respond(body: dict[str, Any]) -> Reply:
        if body["messages"][-1]["role"] != "tool":
            return Reply(tool_calls=calls)
        return Reply(chunks=chop("It is sunny in Lisbon."))

    server.responder = respond
    agent = Agent(role="Forecaster", goal="g", backstory="b", llm=make_llm(), tools=[lookup])
    task = Task(name="forecast", description="Forecast.", expected_output="x", agent=agent)
    Crew(name="weather", agents=[agent], tasks=[task], bus=bus).kickoff()


@pytest.mark.parametrize("capture", [False, True], ids=["capture-off", "capture-on"])
def test_execute_tool_spans_sit_under_the_agent_next_to_the_chat_spans(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    bus: EventBus,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    span_exporter: InMemorySpanExporter,
    capture: bool,
) -> None:
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=capture, bus=bus)
    run_tool_crew(server, make_llm, bus)
    bridge.close()
    spans = span_exporter.get_finished_spans()
    (agent,) = [s for s in spans if s.name == "invoke_agent Forecaster"]
    chats = [s for s in spans if s.name.startswith("chat ")]
    tools = {s.attributes["gen_ai.tool.call.id"]: s for s in spans if s.name == "execute_tool lookup"}
    assert len(chats) == 2 and set(tools) == {"call_ok", "call_bad"}
    for span in [*chats, *tools.values()]:
        assert span.parent.span_id == agent.context.span_id
    ok, bad = tools["call_ok"], tools["call_bad"]
    for span in (ok, bad):
        assert span.kind is SpanKind.INTERNAL
        assert span.attributes["gen_ai.operation.name"] == "execute_tool"
        assert span.attributes["gen_ai.tool.name"] == "lookup" and span.attributes["gen_ai.tool.type"] == "function"
        assert (
            span.attributes["gen_ai.agent.name"] == "Forecaster"
            and span.attributes["crewtrace.task.name"] == "forecast"
        )
    assert chats[0].end_time <= ok.start_time <= ok.end_time <= bad.start_time <= chats[1].start_time
    assert ok.status.status_code is StatusCode.UNSET
    assert bad.status.status_code is StatusCode.ERROR and bad.attributes["error.type"] == "LookupError"
    if capture:
        assert ok.attributes["gen_ai.tool.call.arguments"] == '{"city": "Lisbon"}'
        assert ok.attributes["gen_ai.tool.call.result"] == "sunny in Lisbon"
    else:
        assert not any(key.startswith("gen_ai.tool.call.") and key != "gen_ai.tool.call.id" for key in ok.attributes)


def test_tool_call_chunks_are_span_events_told_apart_from_text(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    bus: EventBus,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    bridge = OTelBridge(tracer_provider, meter_provider, bus=bus)
    run_tool_crew(server, make_llm, bus)
    bridge.close()
    first_chat, second_chat = sorted(
        (s for s in span_exporter.get_finished_spans() if s.name.startswith("chat ")), key=lambda s: s.start_time
    )
    types = {e.attributes["crewtrace.chunk.type"] for e in first_chat.events}
    assert types <= {"tool_call", "mixed"} and "tool_call" in types
    assert {e.attributes["crewtrace.chunk.type"] for e in second_chat.events} == {"text"}
    assert (
        sum(e.attributes["crewtrace.chunk.count"] for e in first_chat.events)
        == first_chat.attributes["crewtrace.stream.chunk_count"]
    )


def test_tool_metrics_count_calls_and_errors_per_agent_task_and_tool(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    bus: EventBus,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
) -> None:
    bridge = OTelBridge(tracer_provider, meter_provider, bus=bus)
    run_tool_crew(server, make_llm, bus)
    bridge.close()
    points = points_by_name(metric_reader)
    calls = {p.attributes.get("error.type"): p.value for p in points["crewtrace.tool.calls"]}
    assert calls == {None: 1, "LookupError": 1}
    (errors,) = points["crewtrace.tool.errors"]
    assert errors.value == 1 and errors.attributes["error.type"] == "LookupError"
    durations = points["gen_ai.execute_tool.duration"]
    assert sum(p.count for p in durations) == 2
    for point in durations:
        assert point.attributes["gen_ai.agent.name"] == "Forecaster"
        assert point.attributes["crewtrace.task.name"] == "forecast"
        assert point.attributes["gen_ai.tool.name"] == "lookup"
        assert point.exemplars, "a tool duration links to its execute_tool span"
