"""crewtrace's own crews held to the bar the CrewAI adapter is held to (tests/support/trace_assertions.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.support.crews import two_agent_crew
from tests.support.llms import MakeLLM
from tests.support.openai_server import FakeOpenAIServer, Reply, numbered_chunks
from tests.support.trace_assertions import (
    assert_attributed,
    assert_chunk_events,
    assert_run_tree,
    assert_separate_runs,
    chat_spans,
)

from crewtrace.events import EventBus
from crewtrace.telemetry import OTelBridge


@pytest.fixture
def own_bridge(tracer_provider: TracerProvider, meter_provider: MeterProvider, bus: EventBus) -> Iterator[OTelBridge]:
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=False, bus=bus)
    yield bridge
    bridge.close()


@pytest.mark.usefixtures("own_bridge")
def test_own_crew_meets_the_same_bar(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    bus: EventBus,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    server.queue(Reply(chunks=numbered_chunks(200)), Reply(chunks=numbered_chunks(200)))
    two_agent_crew(make_llm, bus, name="team").kickoff(inputs={"topic": "otel"})
    spans = span_exporter.get_finished_spans()
    assert_run_tree(spans, "team", {"research": "Researcher", "write": "Writer"})
    assert_attributed(spans, metric_reader)
    for chat in chat_spans(spans):
        assert_chunk_events(chat, 200)


@pytest.mark.usefixtures("own_bridge")
async def test_own_crews_in_asyncio_tasks_meet_the_same_bar(
    make_llm: MakeLLM, bus: EventBus, span_exporter: InMemorySpanExporter
) -> None:
    crew = two_agent_crew(make_llm, bus, name="team")
    await asyncio.gather(*(crew.kickoff_async(inputs={"topic": f"t{n}"}) for n in range(3)))
    assert_separate_runs(span_exporter.get_finished_spans(), 3)
