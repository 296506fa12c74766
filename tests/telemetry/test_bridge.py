"""OTelBridge against the real SDK with in-memory exporters: spans, chunk events, metrics."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode
from tests.support.crews import two_agent_crew
from tests.support.llms import API_KEY, MakeLLM
from tests.support.metrics import metric_points, points_by_name
from tests.support.openai_server import FakeOpenAIServer, Fault, Reply
from tests.support.synthetic import emit_call
from tests.support.trace_assertions import assert_separate_runs

from crewtrace import Crew, LLMCallError
from crewtrace.events import (
    BaseEventListener,
    EventBus,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
)
from crewtrace.telemetry import OTelBridge

DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


def crew_of_two(make_llm: MakeLLM, bus: EventBus) -> Crew:
    return two_agent_crew(make_llm, bus, name="team")


def spans_by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        out.setdefault(span.name, []).append(span)
    return out


def test_one_trace_per_run_with_the_workflow_task_agent_chat_tree(
    make_llm: MakeLLM, bus: EventBus, bridge: OTelBridge, span_exporter: InMemorySpanExporter
) -> None:
    crew_of_two(make_llm, bus).kickoff(inputs={"topic": "otel"})
    spans = spans_by_name(span_exporter)
    (workflow,) = spans["invoke_workflow team"]
    assert workflow.parent is None
    assert len({s.context.trace_id for s in span_exporter.get_finished_spans()}) == 1
    for task, role in (("research", "Researcher"), ("write", "Writer")):
        (task_span,) = spans[f"execute_task {task}"]
        (agent_span,) = list(spans[f"invoke_agent {role}"])
        chat = next(s for s in spans["chat test-model"] if s.attributes["crewtrace.task.name"] == task)
        assert task_span.parent.span_id == workflow.context.span_id
        assert agent_span.parent.span_id == task_span.context.span_id
        assert chat.parent.span_id == agent_span.context.span_id
        assert chat.kind is SpanKind.CLIENT and agent_span.kind is SpanKind.INTERNAL
        for span in (task_span, agent_span, chat):
            assert span.attributes["crewtrace.task.name"] == task
            assert span.attributes["crewtrace.task.id"]
            assert span.attributes["gen_ai.agent.name"] == role
            assert span.attributes["gen_ai.workflow.name"] == "team"
        assert agent_span.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert chat.attributes["gen_ai.agent.id"] == agent_span.attributes["gen_ai.agent.id"]
    assert workflow.attributes["gen_ai.operation.name"] == "invoke_workflow"


def test_chat_span_attributes_follow_the_genai_conventions(
    server: FakeOpenAIServer, make_llm: MakeLLM, bridge: OTelBridge, span_exporter: InMemorySpanExporter
) -> None:
    server.queue(Reply(chunks=["a1", "b2", "c3"], usage=(12, 3)))
    make_llm(temperature=0.5, max_tokens=64).call("hello")
    (chat,) = span_exporter.get_finished_spans()
    attributes = dict(chat.attributes)
    assert chat.name == "chat test-model"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "test-model"
    assert attributes["gen_ai.response.model"] == "test-model", "as the server answered"
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.request.temperature"] == 0.5 and attributes["gen_ai.request.max_tokens"] == 64
    assert attributes["gen_ai.usage.input_tokens"] == 12 and attributes["gen_ai.usage.output_tokens"] == 3
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.response.id"].startswith("chatcmpl-")
    assert 0 < attributes["gen_ai.response.time_to_first_chunk"] < 5
    assert attributes["crewtrace.stream.chunk_count"] == 3
    assert attributes["server.address"] == "127.0.0.1" and attributes["server.port"] == server.port
    assert chat.status.status_code is StatusCode.UNSET
    assert "gen_ai.input.messages" not in attributes and "gen_ai.output.messages" not in attributes


def test_chunk_span_events_carry_index_size_and_elapsed_without_text(
    server: FakeOpenAIServer, make_llm: MakeLLM, bridge: OTelBridge, span_exporter: InMemorySpanExporter
) -> None:
    server.queue(Reply(chunks=["abc", "de", "fghi"], delay=0.01))
    make_llm().call("x")
    (chat,) = span_exporter.get_finished_spans()
    events = [e for e in chat.events if e.name == "crewtrace.stream.chunk"]
    assert [e.attributes["crewtrace.chunk.index"] for e in events] == [0, 1, 2]
    assert [e.attributes["crewtrace.chunk.size"] for e in events] == [3, 2, 4]
    assert all(e.attributes["crewtrace.chunk.count"] == 1 for e in events)
    elapsed = [e.attributes["crewtrace.chunk.elapsed"] for e in events]
    assert elapsed == sorted(elapsed) and elapsed[0] == pytest.approx(
        chat.attributes["gen_ai.response.time_to_first_chunk"], abs=0.05
    )
    assert all("crewtrace.chunk.text" not in e.attributes for e in events)
    assert chat.start_time <= events[0].timestamp <= events[-1].timestamp <= chat.end_time


def feed_stream(bus: EventBus, chunks: int) -> None:
    """One call's events, emitted directly with their own timestamps: the bridge sees only events."""
    emit_call(bus, "long-call", chunks=chunks, start_ns=1_700_000_000_000_000_000, agent_role="A", task_name="T")


def test_a_100000_chunk_stream_stays_within_the_event_limit_and_keeps_first_and_last(
    bus: EventBus, bridge: OTelBridge, span_exporter: InMemorySpanExporter
) -> None:
    feed_stream(bus, 100_000)
    (chat,) = span_exporter.get_finished_spans()
    events = list(chat.events)
    assert chat.dropped_events == 0
    assert 3 <= len(events) <= 64
    first, last = events[0].attributes, events[-1].attributes
    assert (first["crewtrace.chunk.index"], first["crewtrace.chunk.count"]) == (0, 1)
    assert (last["crewtrace.chunk.index"], last["crewtrace.chunk.count"]) == (99_999, 1)
    assert sum(e.attributes["crewtrace.chunk.count"] for e in events) == 100_000, "every chunk is accounted for"
    indexes = [e.attributes["crewtrace.chunk.index"] for e in events]
    counts = [e.attributes["crewtrace.chunk.count"] for e in events]
    assert all(indexes[i] + counts[i] == indexes[i + 1] for i in range(len(events) - 1)), "groups are contiguous"
    assert chat.attributes["crewtrace.stream.chunk_count"] == 100_000


def test_max_chunk_events_is_respected_and_validated(
    tracer_provider: TracerProvider, meter_provider: MeterProvider, bus: EventBus, span_exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(ValueError, match="max_chunk_events"):
        OTelBridge(tracer_provider, meter_provider, max_chunk_events=2, bus=bus)
    bridge = OTelBridge(tracer_provider, meter_provider, max_chunk_events=10, bus=bus)
    feed_stream(bus, 1000)
    bridge.close()
    (chat,) = span_exporter.get_finished_spans()
    assert len(chat.events) <= 10
    assert sum(e.attributes["crewtrace.chunk.count"] for e in chat.events) == 1000


def test_content_is_captured_only_when_turned_on(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    bus: EventBus,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    bridge = OTelBridge(tracer_provider, meter_provider, bus=bus)  # None: the variable decides
    assert bridge.capture_content
    server.queue(Reply(chunks=["secret ", "answer"]))
    make_llm().call("private prompt")
    bridge.close()
    (chat,) = span_exporter.get_finished_spans()
    assert "private prompt" in chat.attributes["gen_ai.input.messages"]
    assert "secret answer" in chat.attributes["gen_ai.output.messages"]
    assert "".join(e.attributes["crewtrace.chunk.text"] for e in chat.events) == "secret answer"
    assert all(API_KEY not in str(value) for value in chat.attributes.values())
    assert OTelBridge(tracer_provider, meter_provider, capture_content=False, bus=bus).capture_content is False


def test_failed_call_ends_its_span_with_error_status_and_type(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    bridge: OTelBridge,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    server.queue(*[Reply(chunks=["x"], fault=Fault.STATUS_429)] * 3)
    with pytest.raises(LLMCallError):
        make_llm().call("x")
    (chat,) = span_exporter.get_finished_spans()
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.attributes["error.type"] == "RateLimitError"
    (duration,) = metric_points(metric_reader, "gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "RateLimitError"
    (active,) = metric_points(metric_reader, "crewtrace.stream.active")
    assert active.value == 0


def test_failed_crew_ends_every_span_with_error(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, bridge: OTelBridge, span_exporter: InMemorySpanExporter
) -> None:
    server.queue(*[Reply(chunks=["x"], fault=Fault.STATUS_500)] * 3)
    with pytest.raises(LLMCallError):
        crew_of_two(make_llm, bus).kickoff(inputs={"topic": "t"})
    spans = span_exporter.get_finished_spans()
    assert sorted(s.name for s in spans) == [
        "chat test-model",
        "execute_task research",
        "invoke_agent Researcher",
        "invoke_workflow team",
    ]
    assert all(
        s.status.status_code is StatusCode.ERROR and s.attributes["error.type"] == "InternalServerError" for s in spans
    )


def test_abandoned_stream_ends_its_span_as_cancelled_and_active_returns_to_zero(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    bridge: OTelBridge,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    server.queue(Reply(chunks=[f"c{i} " for i in range(40)], delay=0.005))
    stream = make_llm().iter_text("x")
    assert next(stream) == "c0 "
    next(stream)
    (active,) = metric_points(metric_reader, "crewtrace.stream.active")
    assert active.value == 1
    del stream  # dropped, not closed: garbage collection ends it
    (chat,) = span_exporter.get_finished_spans()
    assert chat.attributes["error.type"] == "cancelled"
    assert chat.attributes["crewtrace.stream.chunk_count"] == 2
    (active,) = metric_points(metric_reader, "crewtrace.stream.active")
    assert active.value == 0


def test_a_call_the_sampler_dropped_still_counts_every_chunk_and_gap(
    bus: EventBus,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
    span_exporter: InMemorySpanExporter,
) -> None:
    tracer_provider = TracerProvider(sampler=ALWAYS_OFF)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=True, bus=bus)
    feed_stream(bus, 1000)
    bridge.close()
    assert span_exporter.get_finished_spans() == ()
    points = points_by_name(metric_reader)
    (chunks,) = points["crewtrace.stream.chunks"]
    (gaps,) = points["gen_ai.client.operation.time_per_output_chunk"]
    (ttfc,) = points["gen_ai.client.operation.time_to_first_chunk"]
    (duration,) = points["gen_ai.client.operation.duration"]
    assert (chunks.value, gaps.count, ttfc.count, duration.count) == (1000, 999, 1, 1)
    assert gaps.attributes["gen_ai.agent.name"] == "A" and gaps.attributes["crewtrace.task.name"] == "T"
    assert list(duration.exemplars) == [], "no exemplar points at a trace that was not kept"
    assert sum(p.value for p in points["crewtrace.stream.active"]) == 0


def test_metrics_have_semconv_names_buckets_and_agent_task_attributes(
    make_llm: MakeLLM,
    bus: EventBus,
    bridge: OTelBridge,
    metric_reader: InMemoryMetricReader,
    span_exporter: InMemorySpanExporter,
) -> None:
    crew_of_two(make_llm, bus).kickoff(inputs={"topic": "m"})
    durations: list[HistogramDataPoint] = metric_points(metric_reader, "gen_ai.client.operation.duration")
    assert {(p.attributes["gen_ai.agent.name"], p.attributes["crewtrace.task.name"]) for p in durations} == {
        ("Researcher", "research"),
        ("Writer", "write"),
    }
    for point in durations:
        assert tuple(point.explicit_bounds) == DURATION_BUCKETS
        assert point.count == 1
        assert point.attributes["gen_ai.operation.name"] == "chat"
        assert point.attributes["gen_ai.provider.name"] == "openai"
        assert point.attributes["gen_ai.request.model"] == "test-model"
        assert set(point.attributes) == {
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "gen_ai.workflow.name",
            "gen_ai.agent.name",
            "crewtrace.task.name",
        }, "no ids or other high-cardinality labels"
        (exemplar,) = list(point.exemplars)
        chat = next(
            s
            for s in span_exporter.get_finished_spans()
            if s.name.startswith("chat") and s.attributes["gen_ai.agent.name"] == point.attributes["gen_ai.agent.name"]
        )
        assert exemplar.trace_id == chat.context.trace_id and exemplar.span_id == chat.context.span_id
    tokens = metric_points(metric_reader, "gen_ai.client.token.usage")
    assert {p.attributes["gen_ai.token.type"] for p in tokens} == {"input", "output"}
    chunks: list[NumberDataPoint] = metric_points(metric_reader, "crewtrace.stream.chunks")
    chat_spans = [s for s in span_exporter.get_finished_spans() if s.name.startswith("chat")]
    assert sum(p.value for p in chunks) == sum(s.attributes["crewtrace.stream.chunk_count"] for s in chat_spans)
    per_chunk = metric_points(metric_reader, "gen_ai.client.operation.time_per_output_chunk")
    assert sum(p.count for p in per_chunk) == sum(p.value for p in chunks) - 2, "one point per chunk after the first"
    ttfc = metric_points(metric_reader, "gen_ai.client.operation.time_to_first_chunk")
    assert sum(p.count for p in ttfc) == 2 and tuple(ttfc[0].explicit_bounds) == DURATION_BUCKETS


def test_label_values_are_capped_with_an_other_overflow(
    tracer_provider: TracerProvider, meter_provider: MeterProvider, bus: EventBus, metric_reader: InMemoryMetricReader
) -> None:
    bridge = OTelBridge(tracer_provider, meter_provider, max_label_values=3, bus=bus)
    for n in range(10):
        emit_call(bus, f"c{n}", stream=False, agent_role="A", task_name=f"task {n}")
    bridge.close()
    names = {
        p.attributes["crewtrace.task.name"] for p in metric_points(metric_reader, "gen_ai.client.operation.duration")
    }
    assert names == {"task 0", "task 1", "task 2", "_OTHER"}


def test_an_application_span_around_kickoff_parents_the_workflow(
    make_llm: MakeLLM,
    bus: EventBus,
    bridge: OTelBridge,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    tracer = tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request") as app_span:
        crew_of_two(make_llm, bus).kickoff(inputs={"topic": "p"})
    (workflow,) = spans_by_name(span_exporter)["invoke_workflow team"]
    assert workflow.parent.span_id == app_span.get_span_context().span_id
    assert workflow.context.trace_id == app_span.get_span_context().trace_id


def test_parenting_holds_for_crews_running_in_threads(
    make_llm: MakeLLM, bus: EventBus, bridge: OTelBridge, span_exporter: InMemorySpanExporter
) -> None:
    crew = crew_of_two(make_llm, bus)
    threads = [threading.Thread(target=crew.kickoff, kwargs={"inputs": {"topic": f"t{n}"}}) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert_separate_runs(span_exporter.get_finished_spans(), 4)


async def test_parenting_holds_for_crews_running_in_asyncio_tasks(
    make_llm: MakeLLM, bus: EventBus, bridge: OTelBridge, span_exporter: InMemorySpanExporter
) -> None:
    crew = crew_of_two(make_llm, bus)
    await asyncio.gather(*(crew.kickoff_async(inputs={"topic": f"t{n}"}) for n in range(4)))
    assert_separate_runs(span_exporter.get_finished_spans(), 4)


def test_user_listener_and_bridge_see_the_same_events_and_never_break_each_other(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    bus: EventBus,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    seen_before: list[int] = []
    seen_after: list[int] = []

    class Before(BaseEventListener):
        def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
            @crewtrace_event_bus.on(LLMStreamChunkEvent)
            def explode_then_record(source: Any, event: LLMStreamChunkEvent) -> None:
                seen_before.append(event.chunk_index)
                raise RuntimeError("user bug")

    class After(BaseEventListener):
        def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
            crewtrace_event_bus.on(LLMStreamChunkEvent)(lambda s, e: seen_after.append(e.chunk_index))

    Before(bus)
    bridge = OTelBridge(tracer_provider, meter_provider, bus=bus)
    After(bus)
    server.queue(Reply(chunks=["p1", "q2", "r3"]))
    assert make_llm().call("x") == "p1q2r3"
    bridge.close()
    assert seen_before == seen_after == [0, 1, 2]
    (chat,) = span_exporter.get_finished_spans()
    assert chat.attributes["crewtrace.stream.chunk_count"] == 3 and len(chat.events) == 3


def test_close_unregisters_and_ends_open_spans(
    tracer_provider: TracerProvider, meter_provider: MeterProvider, bus: EventBus, span_exporter: InMemorySpanExporter
) -> None:
    bridge = OTelBridge(tracer_provider, meter_provider, bus=bus)
    bus.emit(None, LLMCallStartedEvent(call_id="open", model="m", messages=[], stream=True))
    bridge.close()
    (chat,) = span_exporter.get_finished_spans()
    assert chat.attributes["error.type"] == "bridge_closed"
    assert not bus.has_handlers(LLMStreamChunkEvent)


GLOBAL_FALLBACK = """
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from crewtrace.events import EventBus, LLMCallCompletedEvent, LLMCallStartedEvent
from crewtrace.telemetry import OTelBridge

exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
bus = EventBus()
OTelBridge(bus=bus)
bus.emit(None, LLMCallStartedEvent(call_id="c", model="m", messages=[], stream=False))
bus.emit(None, LLMCallCompletedEvent(call_id="c", model="m", response="r", chunk_count=0, duration_s=0.5))
names = [m.name for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
print([s.name for s in exporter.get_finished_spans()], names)
"""


def test_global_providers_are_the_fallback() -> None:
    out = subprocess.run([sys.executable, "-c", GLOBAL_FALLBACK], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['chat m'] ['gen_ai.client.operation.duration']"
