"""The GenAI conventions as they stand: the four capture modes and the details event, the three duration metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.genai.types import ContentCapturingMode
from tests.support.crews import scripted, three_task_crew
from tests.support.llms import API_KEY
from tests.support.openai_server import FakeOpenAIServer, Reply
from tests.support.otlp_receiver import OTLPGrpcReceiver, OTLPHttpReceiver
from tests.support.peers import crewtrace_chats
from tests.support.trace_assertions import metric_points

from crewtrace import LLM
from crewtrace.errors import ConfigurationError
from crewtrace.events import EventBus
from crewtrace.telemetry import OTelBridge, Telemetry

MakeLLM = Callable[..., LLM]
REFUSED = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there
ENV_CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENV_EMIT_EVENT = "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT"
DETAILS = "gen_ai.client.inference.operation.details"
PROMPT = "What is in the box?"
ANSWER = ["It ", "is ", "a ", "cat."]


@pytest.fixture
def log_exporter() -> InMemoryLogRecordExporter:
    return InMemoryLogRecordExporter()


@pytest.fixture
def logger_provider(log_exporter: InMemoryLogRecordExporter) -> Iterator[LoggerProvider]:
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    yield provider
    provider.shutdown()


def one_call(
    make_llm: MakeLLM,
    server: FakeOpenAIServer,
    bus: EventBus,
    providers: tuple[TracerProvider, MeterProvider, LoggerProvider],
    capture: bool | ContentCapturingMode | None = None,
) -> OTelBridge:
    tracer_provider, meter_provider, logger_provider = providers
    bridge = OTelBridge(
        tracer_provider, meter_provider, capture_content=capture, bus=bus, logger_provider=logger_provider
    )
    server.queue(Reply(chunks=ANSWER))
    try:
        make_llm().call(PROMPT)
    finally:
        bridge.close()
    return bridge


@pytest.fixture
def providers(
    tracer_provider: TracerProvider, meter_provider: MeterProvider, logger_provider: LoggerProvider
) -> tuple[TracerProvider, MeterProvider, LoggerProvider]:
    return tracer_provider, meter_provider, logger_provider


# value of the variable -> (content on spans, details event, content in the event)
MODES = {
    "NO_CONTENT": (False, False, False),
    "SPAN_ONLY": (True, False, False),
    "EVENT_ONLY": (False, True, True),
    "SPAN_AND_EVENT": (True, True, True),
    "span_and_event": (True, True, True),
    "true": (True, False, False),
    "false": (False, False, False),
    "": (False, False, False),
}


@pytest.mark.parametrize(("value", "expected"), MODES.items(), ids=[v or "unset" for v in MODES])
def test_the_four_capture_modes_and_the_booleans(
    value: str,
    expected: tuple[bool, bool, bool],
    make_llm: MakeLLM,
    server: FakeOpenAIServer,
    bus: EventBus,
    providers: tuple[TracerProvider, MeterProvider, LoggerProvider],
    span_exporter: InMemorySpanExporter,
    log_exporter: InMemoryLogRecordExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_spans, event, in_event = expected
    monkeypatch.setenv(ENV_CAPTURE, value)
    bridge = one_call(make_llm, server, bus, providers)
    assert bridge.capture_content is on_spans
    (chat,) = crewtrace_chats(span_exporter.get_finished_spans())
    assert ("gen_ai.input.messages" in chat.attributes) is on_spans
    assert ("gen_ai.output.messages" in chat.attributes) is on_spans
    records = [r.log_record for r in log_exporter.get_finished_logs()]
    assert len(records) == int(event)
    if not event:
        return
    (record,) = records
    assert record.event_name == DETAILS
    assert (record.trace_id, record.span_id) == (chat.context.trace_id, chat.context.span_id), "tied to its span"
    attributes = dict(record.attributes)
    assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.request.model"] == "test-model"
    assert attributes["gen_ai.response.id"] == chat.attributes["gen_ai.response.id"]
    assert attributes["gen_ai.usage.output_tokens"] == len(ANSWER)
    assert ("gen_ai.input.messages" in attributes) is in_event
    if in_event:
        (message,) = attributes["gen_ai.input.messages"]
        assert message["role"] == "user" and message["parts"][0]["content"] == PROMPT
        (output,) = attributes["gen_ai.output.messages"]
        assert output["parts"][0]["content"] == "".join(ANSWER)


def test_emit_event_true_sends_the_event_without_content(
    make_llm: MakeLLM,
    server: FakeOpenAIServer,
    bus: EventBus,
    providers: tuple[TracerProvider, MeterProvider, LoggerProvider],
    log_exporter: InMemoryLogRecordExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_EMIT_EVENT, "true")
    one_call(make_llm, server, bus, providers)
    (record,) = [r.log_record for r in log_exporter.get_finished_logs()]
    assert record.event_name == DETAILS and "gen_ai.input.messages" not in dict(record.attributes)


def test_emit_event_false_keeps_it_off_whatever_the_mode(
    make_llm: MakeLLM,
    server: FakeOpenAIServer,
    bus: EventBus,
    providers: tuple[TracerProvider, MeterProvider, LoggerProvider],
    log_exporter: InMemoryLogRecordExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_EMIT_EVENT, "false")
    one_call(make_llm, server, bus, providers, ContentCapturingMode.SPAN_AND_EVENT)
    assert log_exporter.get_finished_logs() == ()


def test_a_failed_call_has_its_error_type_in_the_event(
    make_llm: MakeLLM,
    bus: EventBus,
    providers: tuple[TracerProvider, MeterProvider, LoggerProvider],
    log_exporter: InMemoryLogRecordExporter,
) -> None:
    tracer_provider, meter_provider, logger_provider = providers
    mode = ContentCapturingMode.EVENT_ONLY
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=mode, bus=bus, logger_provider=logger_provider)
    try:
        with pytest.raises(Exception, match="test-model"):
            LLM("openai/test-model", base_url=REFUSED, api_key=API_KEY, bus=bus, timeout=10).call(PROMPT)
    finally:
        bridge.close()
    (record,) = [r.log_record for r in log_exporter.get_finished_logs()]
    assert record.attributes["error.type"] == "APIConnectionError"
    assert "gen_ai.output.messages" not in record.attributes


def test_capture_content_takes_a_mode_and_refuses_anything_else(bus: EventBus) -> None:
    bridge = OTelBridge(capture_content=ContentCapturingMode.EVENT_ONLY, bus=bus)
    bridge.close()
    assert (bridge.capture_mode, bridge.capture_content) == (ContentCapturingMode.EVENT_ONLY, False)
    with pytest.raises(ConfigurationError, match="ContentCapturingMode"):
        OTelBridge(capture_content="SPAN_ONLY", bus=bus)  # type: ignore[arg-type]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_setup_telemetry_exports_the_details_events_over_otlp(
    protocol: str,
    telemetries: Callable[..., Telemetry],
    make_llm: MakeLLM,
    bus: EventBus,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_CAPTURE, "SPAN_AND_EVENT")
    receiver_class = OTLPGrpcReceiver if protocol == "grpc" else OTLPHttpReceiver
    with receiver_class() as receiver:
        telemetry = telemetries("events", otlp_endpoint=receiver.endpoint, otlp_protocol=protocol, bus=bus)
        make_llm().call(PROMPT)
        assert telemetry.shutdown(timeout=5.0)
        (record,) = receiver.log_records()
    (chat,) = receiver.spans()
    assert record.event_name == DETAILS and record.resource["service.name"] == "events"
    assert (record.trace_id, record.span_id) == (chat.trace_id, chat.span_id)
    assert record.attributes["gen_ai.input.messages"][0]["parts"][0]["content"] == PROMPT


def test_without_events_nothing_is_exported_as_logs(
    telemetries: Callable[..., Telemetry], make_llm: MakeLLM, bus: EventBus
) -> None:
    """The default: no details events, so a collector without a logs pipeline never hears from crewtrace."""
    with OTLPHttpReceiver() as receiver:
        telemetry = telemetries(otlp_endpoint=receiver.endpoint, otlp_protocol="http/protobuf", bus=bus)
        make_llm().call(PROMPT)
        assert telemetry.shutdown(timeout=5.0)
        assert receiver.spans() and receiver.log_requests == []


# -- the three duration metrics --------------------------------------------------------------------

WORKFLOW_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
AGENT_BUCKETS = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 409.6)
TOOL_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


def test_workflow_agent_and_tool_durations_with_their_buckets(
    make_llm: MakeLLM,
    server: FakeOpenAIServer,
    bus: EventBus,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
    span_exporter: InMemorySpanExporter,
) -> None:
    server.responder = scripted
    bridge = OTelBridge(tracer_provider, meter_provider, bus=bus)
    try:
        three_task_crew(make_llm, bus, name="durations").kickoff(inputs={"topic": "buckets"})
    finally:
        bridge.close()
    spans = {s.name: s for s in span_exporter.get_finished_spans()}

    (workflow,) = metric_points(metric_reader, "gen_ai.workflow.duration")
    assert tuple(workflow.explicit_bounds) == WORKFLOW_BUCKETS and workflow.count == 1
    assert dict(workflow.attributes) == {
        "gen_ai.operation.name": "invoke_workflow",
        "gen_ai.workflow.name": "durations",
    }
    run = spans["invoke_workflow durations"]
    assert workflow.sum == pytest.approx((run.end_time - run.start_time) / 1e9, abs=0.005), "the span's duration"

    agents = metric_points(metric_reader, "gen_ai.invoke_agent.duration")
    assert sum(p.count for p in agents) == 3, "one per agent invocation (three tasks)"
    for point in agents:
        assert tuple(point.explicit_bounds) == AGENT_BUCKETS
        assert point.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert point.attributes["gen_ai.request.model"] == "test-model"
        assert point.attributes["gen_ai.provider.name"] == "openai"
        assert point.attributes["gen_ai.workflow.name"] == "durations"
    by_agent = {(p.attributes["gen_ai.agent.name"], p.attributes["crewtrace.task.name"]) for p in agents}
    assert by_agent == {("Researcher", "research"), ("Writer", "draft"), ("Researcher", "review")}

    (tool,) = metric_points(metric_reader, "gen_ai.execute_tool.duration")
    assert tuple(tool.explicit_bounds) == TOOL_BUCKETS and tool.count == 1
    assert tool.attributes["gen_ai.tool.name"] == "lookup" and tool.attributes["gen_ai.agent.name"] == "Researcher"
    assert metric_points(metric_reader, "crewtrace.tool.duration") == [], "replaced by gen_ai.execute_tool.duration"

    every = [
        p
        for name in ("gen_ai.client.operation.duration", "crewtrace.tool.calls")
        for p in metric_points(metric_reader, name)
    ]
    assert all(p.attributes["gen_ai.workflow.name"] == "durations" for p in every), "the crew on every point"


def test_a_failed_run_records_its_durations_with_the_error_type(
    bus: EventBus,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
) -> None:
    bridge = OTelBridge(tracer_provider, meter_provider, bus=bus)
    unreachable = lambda **kw: LLM("openai/test-model", base_url=REFUSED, api_key=API_KEY, bus=bus, **kw)  # noqa: E731
    crew = three_task_crew(unreachable, bus, name="broken")
    try:
        with pytest.raises(Exception, match="test-model"):
            crew.kickoff(inputs={"topic": "x"})
    finally:
        bridge.close()
    (workflow,) = metric_points(metric_reader, "gen_ai.workflow.duration")
    (agent,) = metric_points(metric_reader, "gen_ai.invoke_agent.duration")
    for point in (workflow, agent):
        assert point.attributes["error.type"] == "APIConnectionError"
