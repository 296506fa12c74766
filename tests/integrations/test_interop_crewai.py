"""Real CrewAI 1.15 crews among OpenTelemetry's, OpenLLMetry's and OpenInference's OpenAI instrumentations.

CrewAI's native OpenAI path and its litellm path, sync and async, against the suite's
server (which records request headers): one chat span per call, crewtrace's, counted
against the requests the server received; each metric counts each call once; what the
official instrumentation learned is merged into crewtrace's span; every request carries
crewtrace's trace context and never CrewAI's baggage. And the same numbers as crewtrace's
own calls: model, cost, error type.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

if os.environ.get("CI") != "true":  # under CI the test extra has installed CrewAI: a missing one fails there
    pytest.importorskip("crewai", reason="needs CrewAI: pip install -e '.[test,crewai]' (make test uses .venv-crewai)")
from crewai import LLM as CrewAILLM
from crewai.events import crewai_event_bus
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.integrations.crewai_crews import API_KEY, TASKS, await_runs, two_agent_crewai_crew, wait_for_runs
from tests.support.openai_server import FakeOpenAIServer, Reply, last_user_text
from tests.support.peers import (
    PEERS,
    assert_one_chat_span_per_request,
    assert_trace_context_sent,
    crewtrace_chats,
    duration_counts,
    peer_instrumented,
)
from tests.support.polling import wait_until
from tests.support.recording import Recorder
from tests.support.trace_assertions import assert_run_tree

from crewtrace import LLM
from crewtrace.errors import LLMError
from crewtrace.events import EventBus, LLMCallCompletedEvent, LLMCallFailedEvent

PATHS = ("native", "litellm")
SERVER_MODEL = "test-model-2026-01"  # what the server says it ran: only the official instrumentation reads it


def final_answers(body: dict[str, Any]) -> Reply:
    return Reply(
        chunks=["Final Answer: ", *[f"{last_user_text(body)[:10]}-{i} " for i in range(4)]], model=SERVER_MODEL
    )


@pytest.fixture(autouse=True)
def _final_answers(server: FakeOpenAIServer) -> None:
    server.responder = final_answers


@pytest.mark.usefixtures("bridge")
@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("path", PATHS)
def test_one_chat_span_and_one_set_of_numbers_per_call_among_peers(
    peer: str,
    path: str,
    server: FakeOpenAIServer,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    with peer_instrumented(peer, tracer_provider, meter_provider):
        two_agent_crewai_crew(server, is_litellm=path == "litellm").kickoff(inputs={"topic": "interop"})
        spans = wait_for_runs(span_exporter)
    assert_run_tree([s for s in spans if s.instrumentation_scope.name == "crewtrace"], "team", TASKS)
    calls = len(server.requests)
    chats = assert_one_chat_span_per_request(spans, server.requests, peer)
    assert duration_counts(metric_reader) == {"crewtrace": calls}
    assert duration_counts(metric_reader, "gen_ai.client.token.usage") == {"crewtrace": 2 * calls}
    assert_trace_context_sent(server.requests, chats)
    if peer == "opentelemetry" and path == "native":
        # CrewAI's events name no response model: the official instrumentation's, merged into crewtrace's span.
        assert {chat.attributes["gen_ai.response.model"] for chat in chats} == {SERVER_MODEL}
    for chat in chats:
        assert chat.name == "chat test-model" and chat.attributes["gen_ai.provider.name"] == "openai"


@pytest.mark.usefixtures("bridge")
@pytest.mark.parametrize("path", PATHS)
async def test_akickoff_requests_carry_their_chat_spans_too(
    path: str,
    server: FakeOpenAIServer,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    with peer_instrumented("opentelemetry", tracer_provider, meter_provider):
        await two_agent_crewai_crew(server, is_litellm=path == "litellm").akickoff(inputs={"topic": "async"})
        spans = await await_runs(span_exporter)
    chats = assert_one_chat_span_per_request(spans, server.requests, "opentelemetry")
    assert duration_counts(metric_reader) == {"crewtrace": len(chats)}
    assert_trace_context_sent(server.requests, chats)


def test_without_a_bridge_the_others_record_as_before(
    server: FakeOpenAIServer,
    instrumentation: Any,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    """Instrumented but with no bridge listening: crewtrace records nothing, so nobody else may stand down."""
    with peer_instrumented("opentelemetry", tracer_provider, meter_provider):
        two_agent_crewai_crew(server).kickoff(inputs={"topic": "alone"})
    spans = span_exporter.get_finished_spans()
    assert [s.instrumentation_scope.name for s in spans] == ["opentelemetry.instrumentation.genai.openai"] * 2
    assert all("traceparent" not in request.headers for request in server.requests)


@pytest.mark.usefixtures("bridge")
def test_nothing_is_recorded_inside_suppress_instrumentation(
    server: FakeOpenAIServer, bus: EventBus, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    recorder = Recorder(bus)
    with suppress_instrumentation():
        two_agent_crewai_crew(server).kickoff(inputs={"topic": "quiet"})
    wait_until(lambda: len(recorder.of(LLMCallCompletedEvent)) == 2, what="both calls translated")
    assert span_exporter.get_finished_spans() == ()
    assert duration_counts(metric_reader) == {}
    assert all("traceparent" not in request.headers for request in server.requests)


# -- the same numbers on both paths ------------------------------------------------------------------

PRICED = "openai/gpt-4o-mini"  # in litellm's bundled price list


@pytest.mark.parametrize("path", PATHS)
def test_crewai_calls_cost_what_crewtraces_own_cost(
    path: str, server: FakeOpenAIServer, bus: EventBus, recorder_bus: Recorder
) -> None:
    server.queue(
        Reply(chunks=["same ", "usage"], usage=(1200, 300)), Reply(chunks=["same ", "usage"], usage=(1200, 300))
    )
    LLM(PRICED, stream=True, base_url=server.base_url, api_key=API_KEY, bus=bus, timeout=10).call("hi")
    crewai_llm = CrewAILLM(
        model=PRICED, base_url=server.base_url, api_key=API_KEY, stream=True, is_litellm=path == "litellm"
    )
    crewai_llm.call("hi")
    own, crewai = wait_until(
        lambda: (c := recorder_bus.of(LLMCallCompletedEvent)) and len(c) == 2 and c, what="2 calls"
    )
    assert own.cost_usd is not None and crewai.cost_usd == own.cost_usd
    assert (crewai.model, crewai.provider) == (own.model, own.provider) == ("gpt-4o-mini", "openai")


@pytest.fixture
def recorder_bus(bus: EventBus, instrumentation: Any) -> Recorder:
    return Recorder(bus)


@pytest.fixture
def refused_url() -> str:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.mark.usefixtures("bridge", "no_key")
@pytest.mark.parametrize("cause", ["refused", "no key"])
def test_a_failed_call_has_the_same_error_type_on_every_path(
    cause: str, refused_url: str, bus: EventBus, span_exporter: InMemorySpanExporter
) -> None:
    recorder = Recorder(bus)
    where = {"base_url": refused_url, "api_key": API_KEY} if cause == "refused" else {}
    with pytest.raises(LLMError):
        LLM(PRICED, stream=True, bus=bus, timeout=10, **where).call("hi")
    for path in PATHS:
        crewai_llm = CrewAILLM(
            model=PRICED, stream=True, timeout=10, max_retries=0, is_litellm=path == "litellm", **where
        )
        with pytest.raises(Exception):  # noqa: B017 - CrewAI raises what its client raised
            crewai_llm.call("hi")
    wait_until(lambda: len(recorder.of(LLMCallFailedEvent)) >= 3, what="three failed calls")
    crewai_event_bus.flush()
    failed = recorder.of(LLMCallFailedEvent)
    expected = "APIConnectionError" if cause == "refused" else "AuthenticationError"
    assert [event.error_type for event in failed] == [expected] * 3
    chats = crewtrace_chats(span_exporter.get_finished_spans())
    assert [chat.attributes["error.type"] for chat in chats] == [expected] * 3
