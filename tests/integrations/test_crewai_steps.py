"""Real CrewAI agents' steps and tools: memory, knowledge, guardrails, reasoning, tool errors, MCP, thinking.

Each runs CrewAI 1.15 over real HTTP against the suite's server (embeddings included), through
``instrument_crewai`` and the real bridge, and checks where each step sits in the one trace, that
the LLM calls CrewAI makes for a step sit inside it with the agent and task they serve, token
usage on every chat span, and that no span is left open.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("CI") != "true":  # under CI the test extra has installed CrewAI: a missing one fails there
    pytest.importorskip("crewai", reason="needs CrewAI: pip install -e '.[test,crewai]' (make test uses .venv-crewai)")
from crewai import Agent, Crew, Task
from crewai.knowledge.source.string_knowledge_source import StringKnowledgeSource
from crewai.mcp import MCPServerStdio
from crewai.memory.unified_memory import Memory
from crewai.tools import tool
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.integrations.crewai_apps import FINAL, ReasoningModel, embedder, named, structured, wait_for_spans
from tests.integrations.crewai_crews import crewai_llm, search_notes
from tests.support.openai_server import FakeOpenAIServer, Reply, ToolCallReply
from tests.support.polling import wait_until
from tests.support.recording import Recorder
from tests.support.trace_assertions import (
    AGENT,
    TASK,
    assert_attributed,
    assert_one_trace,
    assert_run_tree,
    assert_usage,
    chat_spans,
    children,
    metric_points,
)

from crewtrace.events import EventBus, LLMStreamChunkEvent, MemorySaveStartedEvent
from crewtrace.integrations.crewai import CrewAIInstrumentation
from crewtrace.telemetry import OTelBridge

pytestmark = pytest.mark.usefixtures("bridge")


@pytest.fixture(autouse=True)
def _storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))  # memory and knowledge stores stay in the test's dir


def agent(server: FakeOpenAIServer, role: str, **options: Any) -> Agent:
    return Agent(role=role, goal="Help.", backstory="Kind.", llm=crewai_llm(server), max_iter=3, **options)


def crew_of(member: Agent, *tasks: str, **options: Any) -> Crew:
    jobs = [Task(name=name, description=f"Do {name}.", expected_output="Text.", agent=member) for name in tasks]
    return Crew(name="team", agents=[member], tasks=jobs, **options)


def tool_then_answer(call: ToolCallReply) -> Any:
    """A responder: the model calls ``call`` once, then answers (structured where CrewAI asks for a schema)."""

    def respond(body: dict[str, Any]) -> Reply:
        if (reply := structured(body)) is not None:
            return reply
        if body.get("tools") and not any(m.get("role") == "tool" for m in body.get("messages") or []):
            return Reply(chunks=[], tool_calls=[call])
        return FINAL

    return respond


# -- memory and knowledge ----------------------------------------------------------------------------


def test_memory_look_ups_and_saves_are_steps_with_their_analysis_calls_inside(
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    bridge: OTelBridge,
) -> None:
    server.responder = lambda body: structured(body) or FINAL
    member = agent(server, "Rememberer")
    crew_of(member, "first", "second", memory=True, embedder=embedder(server)).kickoff()
    spans = wait_for_spans(span_exporter, "invoke_workflow team")
    assert_run_tree(spans, "team", {"first": "Rememberer", "second": "Rememberer"})
    retrievals = named(spans, "retrieval ")
    saves = named(spans, "save_memory ")
    assert len(retrievals) == 2 and len(saves) == 2, [s.name for s in spans]
    by_id = {s.context.span_id: s for s in spans}
    for look_up in retrievals:
        assert look_up.attributes["gen_ai.operation.name"] == "retrieval"
        assert look_up.attributes["crewtrace.retrieval.source"] == "memory"
        assert by_id[look_up.parent.span_id].name.startswith("execute_task "), "CrewAI looks up before the agent runs"
        assert "gen_ai.retrieval.query.text" not in look_up.attributes, "the query is content"
    for save in saves:
        analysis = [s for s in children(spans, save) if s.name.startswith("chat ")]
        assert analysis, "the save's analysis calls (on CrewAI's background threads) run inside it"
        for span in (save, *analysis):
            assert span.attributes[AGENT] == "Rememberer" and span.attributes[TASK] in ("first", "second")
    assert_attributed(spans, metric_reader)
    assert_usage(spans, metric_reader)
    assert server.embedding_requests, "the embedder talked to the suite's server"
    assert bridge.open_spans() == ()


def test_a_background_memory_save_still_running_at_close_is_ended(
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
    bridge: OTelBridge,
    bus: EventBus,
    instrumentation: CrewAIInstrumentation,
) -> None:
    recorder = Recorder(bus)
    saving, finish = threading.Event(), threading.Event()

    def slow_analysis(body: dict[str, Any]) -> Reply:
        reply = structured(body)
        if reply is None:
            return FINAL
        if "memories" not in json.dumps(body["response_format"]):  # the save's own analysis, not the extraction
            saving.set()
            finish.wait(10)
        return reply

    server.responder = slow_analysis
    memory = Memory(llm=crewai_llm(server), embedder=embedder(server))
    member = agent(server, "Keeper", memory=memory)
    try:
        assert member.kickoff("Remember that spans have events.").raw, "Agent.kickoff returns while the save runs"
        wait_until(lambda: saving.is_set() and recorder.of(MemorySaveStartedEvent), what="the save under way")
        instrumentation.close()
    finally:
        finish.set()
        memory.drain_writes()
    spans = span_exporter.get_finished_spans()
    (save,) = named(spans, "save_memory ")
    assert save.status.status_code is StatusCode.ERROR and save.attributes["error.type"] == "cancelled"
    assert bridge.open_spans() == ()


def test_a_knowledge_query_is_a_retrieval_with_its_query_rewrite_inside(
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    bridge: OTelBridge,
) -> None:
    source = StringKnowledgeSource(content="Spans have events. Events have attributes.")
    member = agent(server, "Knower", knowledge_sources=[source], embedder=embedder(server))
    server.responder = lambda body: FINAL
    crew_of(member, "explain").kickoff()
    spans = wait_for_spans(span_exporter, "invoke_workflow team")
    assert_run_tree(spans, "team", {"explain": "Knower"})
    (look_up,) = named(spans, "retrieval ")
    assert look_up.attributes["crewtrace.retrieval.source"] == "knowledge"
    (rewrite,) = children(spans, look_up)
    assert rewrite.name == "chat test-model", "CrewAI's query rewrite runs inside the look-up"
    for span in (look_up, rewrite):
        assert span.attributes[AGENT] == "Knower" and span.attributes[TASK] == "explain"
    assert_attributed(spans, metric_reader)
    assert_usage(spans, metric_reader)
    assert bridge.open_spans() == ()


# -- guardrails and reasoning ------------------------------------------------------------------------


def test_a_guardrail_that_rejects_once_shows_both_checks_and_counts_the_rejection(
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    bridge: OTelBridge,
) -> None:
    checks: list[str] = []

    def long_enough(output: Any) -> tuple[bool, Any]:
        checks.append(output.raw)
        return (True, output.raw) if len(checks) > 1 else (False, "Too short, say more.")

    long_enough.__annotations__["return"] = tuple[bool, Any]  # CrewAI checks the annotation object, not its text
    member = agent(server, "Writer")
    task = Task(name="write", description="Write.", expected_output="Text.", agent=member, guardrail=long_enough)
    server.responder = lambda body: FINAL
    Crew(name="team", agents=[member], tasks=[task]).kickoff()
    spans = wait_for_spans(span_exporter, "invoke_workflow team")
    assert_one_trace(spans)
    (task_span,) = named(spans, "execute_task write")
    below = children(spans, task_span)
    assert [s.name for s in below] == [
        "invoke_agent Writer",
        "apply_guardrail long_enough",
        "invoke_agent Writer",
        "apply_guardrail long_enough",
    ], "the retry, and why"
    first, second = (s for s in below if s.name.startswith("apply_guardrail"))
    assert (first.attributes["crewtrace.guardrail.passed"], first.attributes["crewtrace.guardrail.attempt"]) == (
        False,
        0,
    )
    assert (second.attributes["crewtrace.guardrail.passed"], second.attributes["crewtrace.guardrail.attempt"]) == (
        True,
        1,
    )
    assert "crewtrace.guardrail.feedback" not in first.attributes, "the feedback is content"
    (rejections,) = metric_points(metric_reader, "crewtrace.guardrail.rejections")
    assert rejections.value == 1
    assert dict(rejections.attributes) == {"gen_ai.workflow.name": "team", AGENT: "Writer", TASK: "write"}
    assert_attributed(spans, metric_reader)
    assert bridge.open_spans() == ()


def test_reasoning_is_a_plan_step_whose_calls_keep_their_usage(
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    bridge: OTelBridge,
) -> None:
    plan = json.dumps({"plan": "Read, then write.", "steps": [], "ready": True})
    server.responder = tool_then_answer(ToolCallReply("call_p", "create_reasoning_plan", plan))
    crew_of(agent(server, "Thinker", reasoning=True), "think").kickoff()
    spans = wait_for_spans(span_exporter, "invoke_workflow team")
    assert_run_tree(spans, "team", {"think": "Thinker"})
    (step,) = named(spans, "plan ")
    assert step.name == "plan Thinker" and step.attributes["gen_ai.operation.name"] == "plan"
    assert step.attributes["crewtrace.plan.ready"] is True
    assert [s.name for s in children(spans, step)] == ["chat test-model", "execute_tool create_reasoning_plan"]
    assert_attributed(spans, metric_reader)
    assert_usage(spans, metric_reader)  # CrewAI sends the plan call's end without usage: taken from its own count
    assert bridge.open_spans() == ()


# -- tools ----------------------------------------------------------------------------------------------


@tool("explode")
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"exploded because {reason}")


@pytest.mark.parametrize(
    ("call", "error_type"),
    [
        (ToolCallReply("call_u", "made_up_tool", json.dumps({"query": "x"})), "unknown_tool"),
        (ToolCallReply("call_v", "search_notes", json.dumps({"wrong": 1})), "ValueError"),
        (ToolCallReply("call_e", "explode", json.dumps({"reason": "test"})), "RuntimeError"),
    ],
    ids=["unknown tool", "invalid arguments", "tool raises"],
)
def test_tool_errors_are_failed_tool_spans_with_a_short_error_type(
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    bridge: OTelBridge,
    call: ToolCallReply,
    error_type: str,
) -> None:
    server.responder = tool_then_answer(call)
    crew_of(agent(server, "Tooler", tools=[search_notes, explode]), "use").kickoff()
    spans = wait_for_spans(span_exporter, "invoke_workflow team")
    assert_run_tree(spans, "team", {"use": "Tooler"})
    (failed,) = named(spans, "execute_tool ")
    assert failed.status.status_code is StatusCode.ERROR and failed.attributes["error.type"] == error_type
    (errors,) = metric_points(metric_reader, "crewtrace.tool.errors")
    assert errors.value == 1 and errors.attributes["error.type"] == error_type
    assert bridge.open_spans() == ()


def test_an_mcp_tool_is_an_extension_tool_span(
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    bridge: OTelBridge,
) -> None:
    notes = MCPServerStdio(command=sys.executable, args=[str(Path(__file__).with_name("mcp_notes_server.py"))])

    def respond(body: dict[str, Any]) -> Reply:
        names = [t["function"]["name"] for t in body.get("tools") or []]
        if names and not any(m.get("role") == "tool" for m in body["messages"]):
            return Reply(chunks=[], tool_calls=[ToolCallReply("call_m", names[0], json.dumps({"query": "spans"}))])
        return FINAL

    server.responder = respond
    crew_of(agent(server, "Reader", mcps=[notes]), "read").kickoff()
    spans = wait_for_spans(span_exporter, "invoke_workflow team")
    assert_run_tree(spans, "team", {"read": "Reader"}, tools=["lookup"])
    (lookup,) = named(spans, "execute_tool lookup")
    assert lookup.attributes["gen_ai.tool.type"] == "extension" and lookup.attributes["gen_ai.tool.name"] == "lookup"
    assert lookup.status.status_code is StatusCode.UNSET
    assert_attributed(spans, metric_reader)
    assert bridge.open_spans() == ()


# -- thinking --------------------------------------------------------------------------------------------


def test_thinking_chunks_are_chunks_of_their_own_type(
    server: FakeOpenAIServer, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader, bus: EventBus
) -> None:
    recorder = Recorder(bus)
    thinking = [f"hmm{i} " for i in range(5)]
    server.responder = lambda body: Reply(reasoning=thinking, chunks=["Final Answer: ", "ok ", "done"])
    member = Agent(role="Thinker", goal="Think.", backstory="Deep.", llm=ReasoningModel(server), max_iter=2)
    crew_of(member, "ponder").kickoff()
    spans = wait_for_spans(span_exporter, "invoke_workflow team")
    assert_run_tree(spans, "team", {"ponder": "Thinker"})
    (chat,) = chat_spans(spans)
    assert chat.attributes["crewtrace.stream.chunk_count"] == 8
    types = [e.attributes["crewtrace.chunk.type"] for e in chat.events if e.name == "crewtrace.stream.chunk"]
    assert types[0] == "reasoning" and types[-1] == "text"
    chunks = recorder.of(LLMStreamChunkEvent)
    assert [c.chunk_index for c in chunks] == list(range(8)), "one index over thinking and text"
    assert [c.chunk for c in chunks if c.chunk_type == "reasoning"] == thinking
    (counted,) = metric_points(metric_reader, "crewtrace.stream.chunks")
    assert counted.value == 8
    assert_usage(spans, metric_reader)
