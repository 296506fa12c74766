"""crewtrace's own crews among OpenTelemetry's, OpenLLMetry's and OpenInference's OpenAI instrumentations.

One process, one set of providers, real HTTP to the suite's server (which records request
headers): each call has one chat span, crewtrace's, counted against the requests the server
received; each metric counts each call once; each request carries crewtrace's trace context;
``suppress_instrumentation()`` silences crewtrace too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from tests.support.crews import two_agent_crew
from tests.support.openai_server import FakeOpenAIServer
from tests.support.peers import (
    PEERS,
    assert_one_chat_span_per_request,
    assert_trace_context_sent,
    crewtrace_chats,
    duration_counts,
    peer_instrumented,
)
from tests.support.recording import Recorder

from crewtrace import LLM
from crewtrace.events import EventBus, LLMCallCompletedEvent
from crewtrace.telemetry import OTelBridge

MakeLLM = Callable[..., LLM]


@pytest.mark.usefixtures("bridge")
@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("run", ["kickoff", "kickoff_async"])
def test_one_chat_span_and_one_set_of_numbers_per_call_among_peers(
    peer: str,
    run: str,
    make_llm: MakeLLM,
    bus: EventBus,
    server: FakeOpenAIServer,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    crew = two_agent_crew(make_llm, bus, name="team")
    with peer_instrumented(peer, tracer_provider, meter_provider):
        if run == "kickoff":
            crew.kickoff(inputs={"topic": "interop"})
        else:
            asyncio.run(crew.kickoff_async(inputs={"topic": "interop"}))
    spans = span_exporter.get_finished_spans()
    calls = len(server.requests)
    chats = assert_one_chat_span_per_request(spans, server.requests, peer)
    assert duration_counts(metric_reader) == {"crewtrace": calls}
    assert duration_counts(metric_reader, "gen_ai.client.token.usage") == {"crewtrace": 2 * calls}
    assert duration_counts(metric_reader, "gen_ai.client.operation.time_to_first_chunk") == {"crewtrace": calls}
    assert_trace_context_sent(server.requests, chats)
    for chat in chats:
        assert chat.attributes["gen_ai.response.model"] == "test-model"
        assert chat.attributes["gen_ai.response.id"].startswith("chatcmpl-")


@pytest.mark.usefixtures("bridge")
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_every_request_carries_its_chat_span_as_parent_and_never_baggage(
    stream: bool,
    asynchronous: bool,
    make_llm: MakeLLM,
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
) -> None:
    llm = make_llm(stream=stream, extra_headers={"x-team": "research"})
    token = context.attach(baggage.set_baggage("crew_context", "user inputs, never for a model provider"))
    try:
        for _ in range(2):
            asyncio.run(llm.acall("hi")) if asynchronous else llm.call("hi")
    finally:
        context.detach(token)
    assert_trace_context_sent(server.requests, crewtrace_chats(span_exporter.get_finished_spans()))
    assert all(request.headers["x-team"] == "research" for request in server.requests), "the user's headers stay"


def test_without_a_bridge_requests_go_as_they_were(make_llm: MakeLLM, server: FakeOpenAIServer) -> None:
    make_llm().call("hi")
    (request,) = server.requests
    assert "traceparent" not in request.headers


@pytest.mark.usefixtures("bridge")
def test_nothing_is_recorded_inside_suppress_instrumentation(
    make_llm: MakeLLM,
    bus: EventBus,
    server: FakeOpenAIServer,
    recorder: Recorder,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    crew = two_agent_crew(make_llm, bus, name="team")
    with suppress_instrumentation():
        crew.kickoff(inputs={"topic": "quiet"})
    assert span_exporter.get_finished_spans() == ()
    data = metric_reader.get_metrics_data()
    assert data is None or not [p for rm in data.resource_metrics for sm in rm.scope_metrics for p in sm.metrics]
    assert all("traceparent" not in request.headers for request in server.requests)
    assert len(recorder.of(LLMCallCompletedEvent)) == 2, "listeners still get every event"
    crew.kickoff(inputs={"topic": "heard"})
    assert len(crewtrace_chats(span_exporter.get_finished_spans())) == 2, "outside it, recorded again"


class RecordingSampler(Sampler):
    """Samples everything, keeping the attributes each span had when it started."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, object]] = {}

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None):  # type: ignore[no-untyped-def]
        self.seen[name] = dict(attributes or {})
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "RecordingSampler"


def test_samplers_see_operation_provider_model_and_server_at_the_start(
    make_llm: MakeLLM, bus: EventBus, server: FakeOpenAIServer, meter_provider: MeterProvider
) -> None:
    sampler = RecordingSampler()
    bridge = OTelBridge(TracerProvider(sampler=sampler), meter_provider, bus=bus)
    try:
        two_agent_crew(make_llm, bus, name="team").kickoff(inputs={"topic": "sampled"})
    finally:
        bridge.close()
    chat = sampler.seen["chat test-model"]
    assert chat["gen_ai.operation.name"] == "chat" and chat["gen_ai.provider.name"] == "openai"
    assert chat["gen_ai.request.model"] == "test-model"
    assert (chat["server.address"], chat["server.port"]) == ("127.0.0.1", server.port)
    agent = sampler.seen["invoke_agent Researcher"]
    assert agent["gen_ai.operation.name"] == "invoke_agent" and agent["gen_ai.request.model"] == "test-model"
    assert agent["gen_ai.provider.name"] == "openai"
    assert sampler.seen["invoke_workflow team"]["gen_ai.workflow.name"] == "team"


def test_an_application_span_stays_current_around_the_request(
    make_llm: MakeLLM, bus: EventBus, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    """The chat span is current for the request only: the caller's own span is current again after it."""
    bridge = OTelBridge(tracer_provider, bus=bus)
    tracer = trace.get_tracer("app", tracer_provider=tracer_provider)
    try:
        with tracer.start_as_current_span("app") as app:
            make_llm().call("hi")
            assert trace.get_current_span() is app
    finally:
        bridge.close()
    (chat,) = crewtrace_chats(span_exporter.get_finished_spans())
    assert chat.parent is not None and chat.parent.span_id == app.get_span_context().span_id
