"""Real CrewAI 1.15 crews, instrumented with one call, through the real bridge: the same telemetry as crewtrace's crews.

Every test runs CrewAI over real HTTP against the local server (CrewAI's native
OpenAI client unless it says litellm), with the real OTel SDK and in-memory exporters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
from typing import Any

import pytest

if os.environ.get("CI") != "true":  # under CI the test extra has installed CrewAI: a missing one fails there
    pytest.importorskip("crewai", reason="needs CrewAI: pip install -e '.[test,crewai]' (make test uses .venv-crewai)")
from crewai import Agent
from crewai.events import crewai_event_bus
from crewai.events.base_events import BaseEvent as CrewAIEvent
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.integrations.crewai_crews import TASKS, await_runs, crewai_llm, two_agent_crewai_crew, wait_for_runs
from tests.support.metrics import metric_points, points_by_name
from tests.support.openai_server import FakeOpenAIServer, Fault, Reply, ToolCallReply, last_user_text
from tests.support.polling import wait_until
from tests.support.recording import Recorder
from tests.support.trace_assertions import (
    assert_attributed,
    assert_chunk_events,
    assert_run_tree,
    assert_separate_runs,
    chat_spans,
)

from crewtrace.events import (
    AgentExecutionCompletedEvent,
    BaseEventListener,
    CrewKickoffCompletedEvent,
    EventBus,
    LLMStreamChunkEvent,
)
from crewtrace.integrations.crewai import CrewAIInstrumentation, instrument_crewai
from crewtrace.telemetry import OTelBridge

pytestmark = pytest.mark.usefixtures("bridge")


def answer(chunks: int = 5, tag: str = "") -> Reply:
    return Reply(chunks=["Final Answer: ", *[f"{tag}w{i} " for i in range(chunks)]])


def final_answers(body: dict[str, Any]) -> Reply:
    """Default reply: a final answer naming the request (concurrent runs can be told apart)."""
    return Reply(chunks=["Final Answer: ", *[f"{last_user_text(body)[:12]}-{i} " for i in range(4)]])


@pytest.fixture(autouse=True)
def _final_answers(server: FakeOpenAIServer) -> None:
    server.responder = final_answers


def test_sync_kickoff_is_one_trace_with_tools_and_genai_attributes(
    server: FakeOpenAIServer, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    server.queue(
        Reply(chunks=[], tool_calls=[ToolCallReply("call_1", "search_notes", '{"query": "otel spans"}')]),
        answer(3),
        answer(4),
    )
    result = two_agent_crewai_crew(server, tools=True).kickoff(inputs={"topic": "otel"})
    assert result.raw
    spans = wait_for_runs(span_exporter)
    assert_run_tree(spans, "team", TASKS, tools=["search_notes"])
    assert_attributed(spans, metric_reader)
    first, second, third = sorted(chat_spans(spans), key=lambda s: s.start_time)
    attributes = dict(second.attributes)
    assert second.name == "chat test-model"
    assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "test-model" and attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.output_tokens"] == 4 and attributes["gen_ai.usage.input_tokens"] > 0
    assert 0 < attributes["gen_ai.response.time_to_first_chunk"] < attributes.get("crewtrace.stream.chunk_count", 99)
    assert attributes["server.address"] == "127.0.0.1" and attributes["server.port"] == server.port
    assert first.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert first.attributes["crewtrace.stream.chunk_count"] == 4, "tool-call fragments are chunks: head + 3 pieces"
    (tool,) = [s for s in spans if s.name == "execute_tool search_notes"]
    assert first.end_time <= tool.start_time <= tool.end_time <= second.start_time
    assert "gen_ai.tool.call.arguments" not in tool.attributes, "content stays off by default"
    assert third.attributes["gen_ai.agent.name"] == "Writer"


def test_streamed_tool_call_chunks_carry_the_call_so_far(server: FakeOpenAIServer, bus: EventBus) -> None:
    recorder = Recorder(bus)
    server.queue(Reply(chunks=[], tool_calls=[ToolCallReply("call_9", "search_notes", '{"query": "abcdefghijkl"}')]))
    two_agent_crewai_crew(server, tools=True).kickoff(inputs={"topic": "t"})
    wait_until(lambda: recorder.of(CrewKickoffCompletedEvent))
    chunks = [c for c in recorder.of(LLMStreamChunkEvent) if c.chunk_type == "tool_call"]
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    assert "".join(c.chunk for c in chunks) == '{"query": "abcdefghijkl"}'
    assert chunks[-1].tool_call.function.arguments == '{"query": "abcdefghijkl"}', "the arguments so far, as CrewAI"
    assert {(c.tool_call.id, c.tool_call.function.name) for c in chunks} == {("call_9", "search_notes")}


async def test_akickoff_is_one_trace(
    server: FakeOpenAIServer, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    await two_agent_crewai_crew(server).akickoff(inputs={"topic": "async"})
    spans = await await_runs(span_exporter)
    assert_run_tree(spans, "team", TASKS)
    assert_attributed(spans, metric_reader)


def test_litellm_path_gives_the_same_tree(
    server: FakeOpenAIServer, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    two_agent_crewai_crew(server, is_litellm=True).kickoff(inputs={"topic": "lite"})
    spans = wait_for_runs(span_exporter)
    assert_run_tree(spans, "team", TASKS)
    assert_attributed(spans, metric_reader)
    for chat in chat_spans(spans):
        assert chat.name == "chat test-model" and chat.attributes["gen_ai.provider.name"] == "openai"
        assert chat.attributes["gen_ai.usage.output_tokens"] > 0


def test_long_stream_keeps_first_and_last_chunk_with_exact_counts(
    server: FakeOpenAIServer, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    server.queue(answer(199), answer(199))
    two_agent_crewai_crew(server).kickoff(inputs={"topic": "long"})
    spans = wait_for_runs(span_exporter)
    chats = chat_spans(spans)
    for chat in chats:
        assert_chunk_events(chat, 200)
        assert len(chat.events) <= 64
    points = points_by_name(metric_reader)  # one collection: the SDK hands each exemplar to one
    assert sum(p.value for p in points["crewtrace.stream.chunks"]) == 400
    gaps = points["gen_ai.client.operation.time_per_output_chunk"]
    assert sum(p.count for p in gaps) == 398, "one point per chunk after each call's first"


def test_chunk_gaps_recorded_mid_stream_carry_no_exemplar(
    server: FakeOpenAIServer, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    """Past a batch of gaps (1,024), they are recorded mid-stream, in CrewAI's thread, where the chat span is
    current: still no exemplar per gap, which would cost each chunk more than it tells."""
    server.queue(answer(1099), answer(1))
    two_agent_crewai_crew(server).kickoff(inputs={"topic": "long"})
    wait_for_runs(span_exporter)
    points = points_by_name(metric_reader)  # one collection: the SDK hands each exemplar to one
    gaps = points["gen_ai.client.operation.time_per_output_chunk"]
    assert sum(p.count for p in gaps) == 1099 + 1
    assert [e for p in gaps for e in p.exemplars] == []
    durations = points["gen_ai.client.operation.duration"]
    assert len(durations) == 2 and all(p.exemplars for p in durations), "a call's duration links to its span"


def test_kickoff_async_and_kickoff_for_each_give_one_trace_per_input(
    server: FakeOpenAIServer, span_exporter: InMemorySpanExporter
) -> None:
    crew = two_agent_crewai_crew(server)
    crew.kickoff_for_each(inputs=[{"topic": "a"}, {"topic": "b"}])
    assert_separate_runs(wait_for_runs(span_exporter, 2), 2)
    span_exporter.clear()
    asyncio.run(two_agent_crewai_crew(server).kickoff_async(inputs={"topic": "c"}))
    assert_run_tree(wait_for_runs(span_exporter), "team", TASKS)


def test_concurrent_crews_in_threads_never_mix(server: FakeOpenAIServer, span_exporter: InMemorySpanExporter) -> None:
    crews = [two_agent_crewai_crew(server, name=f"crew{n}") for n in range(3)]
    threads = [threading.Thread(target=c.kickoff, kwargs={"inputs": {"topic": f"t{n}"}}) for n, c in enumerate(crews)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spans = wait_for_runs(span_exporter, 3)
    assert_separate_runs(spans, 3)
    for n in range(3):
        (root,) = [s for s in spans if s.name == f"invoke_workflow crew{n}"]
        assert_run_tree([s for s in spans if s.context.trace_id == root.context.trace_id], f"crew{n}", TASKS)


async def test_concurrent_crews_in_asyncio_tasks_never_mix(
    server: FakeOpenAIServer, span_exporter: InMemorySpanExporter, bus: EventBus
) -> None:
    recorder = Recorder(bus)
    crews = [two_agent_crewai_crew(server, name=f"crew{n}") for n in range(3)]
    await asyncio.gather(*(c.akickoff(inputs={"topic": f"t{n}"}) for n, c in enumerate(crews)))
    spans = await await_runs(span_exporter, 3)
    assert_separate_runs(spans, 3)
    runs = {e.run_id: e.crew_name for e in recorder.events if e.type == "crew_kickoff_started"}
    for chunk in recorder.of(LLMStreamChunkEvent):
        assert chunk.crew_name == runs[chunk.run_id], "a chunk is attributed to its own run"


def test_failure_before_the_stream_ends_every_span_with_error_type(
    server: FakeOpenAIServer, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    server.responder = lambda body: Reply(fault=Fault.STATUS_500)
    with pytest.raises(Exception, match="500"):
        two_agent_crewai_crew(server).kickoff(inputs={"topic": "x"})
    spans = wait_for_runs(span_exporter)
    assert {s.name for s in spans} == {
        "invoke_workflow team",
        "execute_task research",
        "invoke_agent Researcher of {topic}",
        "chat test-model",
    }, "every span started was ended"
    for span in spans:
        assert span.status.status_code is StatusCode.ERROR, span.name
    chats = chat_spans(spans)  # CrewAI's agent retries the call itself
    assert chats and all(chat.attributes["error.type"] == "InternalServerError" for chat in chats)
    durations = metric_points(metric_reader, "gen_ai.client.operation.duration")
    assert {p.attributes["error.type"] for p in durations} == {"InternalServerError"}
    assert sum(p.count for p in durations) == len(chats)
    assert all(p.value == 0 for p in metric_points(metric_reader, "crewtrace.stream.active"))


def test_failure_during_the_stream_keeps_the_chunks_that_came(
    server: FakeOpenAIServer, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    server.responder = lambda body: Reply(chunks=[f"p{i} " for i in range(10)], fault=Fault.RESET, fault_after=3)
    with pytest.raises(Exception):  # noqa: B017 - CrewAI re-raises the SDK's own error
        two_agent_crewai_crew(server).kickoff(inputs={"topic": "x"})
    spans = wait_for_runs(span_exporter)
    chats = chat_spans(spans)
    assert chats and all(c.status.status_code is StatusCode.ERROR and c.attributes["error.type"] for c in chats)
    assert all(c.attributes["crewtrace.stream.chunk_count"] == 3 for c in chats)
    assert all(s.status.status_code is StatusCode.ERROR for s in spans if s.name.startswith("invoke_workflow"))
    assert all(p.value == 0 for p in metric_points(metric_reader, "crewtrace.stream.active"))


async def test_cancelled_akickoff_leaves_no_span_open_once_closed(
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    instrumentation: CrewAIInstrumentation,
    bus: EventBus,
) -> None:
    recorder = Recorder(bus)
    server.responder = lambda body: Reply(chunks=[f"s{i} " for i in range(400)], delay=0.01)
    run = asyncio.ensure_future(two_agent_crewai_crew(server).akickoff(inputs={"topic": "c"}))
    from tests.support.polling import await_until

    await await_until(lambda: recorder.of(LLMStreamChunkEvent), what="the stream started")
    run.cancel()
    with pytest.raises(BaseException):  # noqa: B017 - CancelledError, or what CrewAI turns it into
        await run
    instrumentation.close()
    spans = await await_runs(span_exporter)
    assert {"invoke_workflow team", "execute_task research", "chat test-model"} <= {s.name for s in spans}
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)
    assert all(p.value == 0 for p in metric_points(metric_reader, "crewtrace.stream.active"))


def test_crew_stream_true_output_and_spans(server: FakeOpenAIServer, span_exporter: InMemorySpanExporter) -> None:
    streaming = two_agent_crewai_crew(server, stream=True).kickoff(inputs={"topic": "s"})
    text = "".join(str(chunk) for chunk in streaming)
    assert text and streaming.result.raw
    spans = wait_for_runs(span_exporter)
    assert_run_tree(spans, "team", TASKS)
    total = sum(c.attributes["crewtrace.stream.chunk_count"] for c in chat_spans(spans))
    assert total >= 10


def test_a_failing_listener_never_affects_crewai_and_nothing_is_printed(
    server: FakeOpenAIServer, bus: EventBus, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    class Exploding(BaseEventListener):
        def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
            @crewtrace_event_bus.on(LLMStreamChunkEvent)
            def explode(source: Any, event: LLMStreamChunkEvent) -> None:
                raise RuntimeError("listener bug")

    Exploding(bus)
    with caplog.at_level(logging.ERROR, logger="crewtrace"):
        result = two_agent_crewai_crew(server).kickoff(inputs={"topic": "x"})
    assert result.raw
    assert "listener bug" not in capsys.readouterr().out
    assert any(r.name.startswith("crewtrace") for r in caplog.records)


def test_unknown_crewai_events_are_ignored(bus: EventBus) -> None:
    class SomethingNew(CrewAIEvent):
        type: str = "something_new"

    recorder = Recorder(bus)
    crewai_event_bus.emit(None, SomethingNew())
    crewai_event_bus.flush()
    assert recorder.events == []


def test_instrumenting_twice_is_harmless_and_close_unregisters(bus: EventBus, server: FakeOpenAIServer) -> None:
    first = instrument_crewai(bus)
    assert instrument_crewai(bus) is first
    recorder = Recorder(bus)
    two_agent_crewai_crew(server).kickoff(inputs={"topic": "x"})
    wait_until(lambda: recorder.of(CrewKickoffCompletedEvent))
    assert len([e for e in recorder.events if e.type == "crew_kickoff_started"]) == 1, "translated once"
    first.close()
    first.close()
    assert first.closed and instrument_crewai(bus) is not first


def test_importing_crewtrace_and_telemetry_never_imports_crewai() -> None:
    code = "import sys, crewtrace, crewtrace.telemetry, crewtrace.integrations; print('crewai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_bridge_fixture_is_the_one_listening(bridge: OTelBridge) -> None:
    assert bridge.bus.has_handlers(LLMStreamChunkEvent)


def test_an_adapter_failure_is_logged_on_crewtrace_and_never_reaches_crewai(
    server: FakeOpenAIServer, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenBus(EventBus):
        def emit(self, source: Any, event: Any) -> None:
            raise RuntimeError("adapter bug")

    instrumentation = instrument_crewai(BrokenBus())
    try:
        with caplog.at_level(logging.ERROR, logger="crewtrace"):
            result = two_agent_crewai_crew(server).kickoff(inputs={"topic": "x"})
            crewai_event_bus.flush()
    finally:
        instrumentation.close()
    assert result.raw
    failures = [r for r in caplog.records if r.name == "crewtrace.integrations.crewai"]
    assert failures and "adapter bug" in str(failures[0].exc_info[1])
    out = capsys.readouterr()
    assert "adapter bug" not in out.out + out.err and "handler error" not in out.out


def test_an_agent_kicked_off_after_earlier_work_in_the_thread_is_translated_as_it_streams(
    server: FakeOpenAIServer,
) -> None:
    """CrewAI chains an ``Agent.kickoff()``'s first event to the thread's last one, here from before this
    ``instrument_crewai()``: a new tree, so nothing of the run waits for that id (it never comes)."""
    agent = Agent(role="Solo", goal="Answer.", backstory="Alone.", llm=crewai_llm(server), max_iter=2)
    agent.kickoff("first")
    late = EventBus()
    recorder = Recorder(late)
    threads: list[threading.Thread] = []
    late.on(LLMStreamChunkEvent)(lambda source, event: threads.append(threading.current_thread()))
    instrumentation = instrument_crewai(late)
    try:
        agent.kickoff("second")
        wait_until(lambda: recorder.of(AgentExecutionCompletedEvent))
    finally:
        instrumentation.close()
    assert threads and not any(isinstance(t, threading.Timer) for t in threads), "none held until the expiry"
