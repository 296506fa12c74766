"""Real CrewAI applications beyond one crew: flows, agents without a crew, delegation, labels.

Each runs CrewAI 1.15 as a user would, over real HTTP against the suite's server, through
``instrument_crewai`` and the real bridge, and checks the trace's shape (one trace, who is under
whom), attribution on every chat span and metric point, token usage, and that no span is left open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("CI") != "true":  # under CI the test extra has installed CrewAI: a missing one fails there
    pytest.importorskip("crewai", reason="needs CrewAI: pip install -e '.[test,crewai]' (make test uses .venv-crewai)")
from crewai import Agent, Crew, Process, Task
from crewai.events import crewai_event_bus
from crewai.flow.async_feedback import HumanFeedbackPending, PendingFeedbackContext
from crewai.flow.flow import Flow, listen, router, start
from crewai.flow.human_feedback import human_feedback
from crewai.flow.persistence.sqlite import SQLiteFlowPersistence
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.integrations.crewai_apps import FINAL, await_spans, named, structured_or, wait_for_spans
from tests.integrations.crewai_crews import crewai_llm, search_notes
from tests.support.openai_server import FakeOpenAIServer, Reply, ToolCallReply
from tests.support.polling import await_until, wait_until
from tests.support.trace_assertions import (
    AGENT,
    AGENT_KEYS,
    FLOW,
    FLOW_KEYS,
    METHOD,
    TASK,
    assert_agent_tree,
    assert_attributed,
    assert_flow_tree,
    assert_run_tree,
    assert_usage,
    chat_spans,
    children,
    metric_points,
)

from crewtrace.events import EventBus
from crewtrace.events.labels import OTHER
from crewtrace.integrations.crewai import CrewAIInstrumentation, instrument_crewai
from crewtrace.telemetry import OTelBridge

pytestmark = pytest.mark.usefixtures("bridge")


@pytest.fixture(autouse=True)
def _final_answers(server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server.responder = structured_or(lambda body: FINAL)
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path))  # CrewAI's own files (flow state, memory) stay here


def one_agent_crew(server: FakeOpenAIServer, name: str, role: str, task: str) -> Crew:
    agent = Agent(role=role, goal="Help.", backstory="Kind.", llm=crewai_llm(server), max_iter=2)
    job = Task(name=task, description=f"Do {task} about {{topic}}.", expected_output="Text.", agent=agent)
    return Crew(name=name, agents=[agent], tasks=[job])


def no_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """CrewAI event classes crewtrace does not translate stay harmless: nothing above debug on crewtrace's loggers."""
    noisy = [r for r in caplog.records if r.name.startswith("crewtrace") and r.levelno > logging.DEBUG]
    assert noisy == [], [r.getMessage() for r in noisy]


# -- flows ---------------------------------------------------------------------------------------


def test_flow_is_one_trace_with_its_methods_crews_and_direct_call(
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    bridge: OTelBridge,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class ResearchFlow(Flow):  # type: ignore[type-arg]
        @start()
        def gather(self) -> str:
            one_agent_crew(server, "research", "Researcher", "collect").kickoff(inputs={"topic": "otel"})
            return "gathered"

        @router(gather)
        def choose(self) -> str:
            return "publish"

        @listen("publish")
        def write(self) -> str:
            one_agent_crew(server, "writing", "Writer", "draft").kickoff(inputs={"topic": "otel"})
            return str(crewai_llm(server).call("Summarise the draft."))

    with caplog.at_level(logging.DEBUG, logger="crewtrace"):
        assert ResearchFlow().kickoff()
        spans = wait_for_spans(span_exporter, "invoke_workflow ResearchFlow")
    root = assert_flow_tree(
        spans,
        "ResearchFlow",
        {
            "gather": ["invoke_workflow research"],
            "choose": [],
            "write": ["invoke_workflow writing", "chat test-model"],
        },
    )
    methods = {s.attributes[METHOD]: s for s in named(spans, "execute_flow_method ")}
    assert {name: span.attributes["crewtrace.flow.method.kind"] for name, span in methods.items()} == {
        "gather": "start",
        "choose": "router",
        "write": "listen",
    }
    assert methods["choose"].attributes["crewtrace.flow.route"] == "publish"
    assert_run_tree(spans, "research", {"collect": "Researcher"})
    assert_run_tree(spans, "writing", {"draft": "Writer"})
    (direct,) = children(spans, methods["write"])[-1:]
    assert direct.name == "chat test-model" and AGENT not in direct.attributes, "a direct LLM.call has no agent"
    assert_attributed(spans, metric_reader, keys=FLOW_KEYS, labels=(FLOW, METHOD))
    assert_attributed([s for s in spans if s.attributes.get(TASK)], metric_reader, labels=(FLOW,))
    assert_usage(spans, metric_reader)
    runs = {p.attributes["gen_ai.workflow.name"]: p for p in metric_points(metric_reader, "gen_ai.workflow.duration")}
    assert set(runs) == {"ResearchFlow", "research", "writing"}, "a flow run is a workflow run, as are its crews'"
    assert all(p.attributes[FLOW] == "ResearchFlow" and p.count == 1 for p in runs.values())
    assert root.status.status_code is StatusCode.UNSET
    assert bridge.open_spans() == ()
    no_warnings(caplog)


def test_a_failing_flow_says_so_up_to_the_flow_span(
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    bridge: OTelBridge,
) -> None:
    class BrokenFlow(Flow):  # type: ignore[type-arg]
        @start()
        def fetch(self) -> str:
            crewai_llm(server).call("Fetch.")
            raise LookupError("nothing to fetch")

    with pytest.raises(LookupError):
        BrokenFlow().kickoff()
    spans = wait_for_spans(span_exporter, "invoke_workflow BrokenFlow")
    root = assert_flow_tree(spans, "BrokenFlow", {"fetch": ["chat test-model"]})
    (method,) = named(spans, "execute_flow_method fetch")
    for span in (root, method):
        assert span.status.status_code is StatusCode.ERROR and span.attributes["error.type"] == "LookupError"
    (duration,) = metric_points(metric_reader, "gen_ai.workflow.duration")
    assert duration.attributes[FLOW] == duration.attributes["gen_ai.workflow.name"] == "BrokenFlow"
    assert duration.attributes["error.type"] == "LookupError"
    assert bridge.open_spans() == ()


class _Pending:
    """A feedback provider that hands the review to someone else: the flow pauses."""

    def request_feedback(self, context: PendingFeedbackContext, flow: Any) -> str:
        raise HumanFeedbackPending(context=context)


def test_a_paused_flow_ends_its_spans_and_says_it_paused(
    server: FakeOpenAIServer, span_exporter: InMemorySpanExporter, bridge: OTelBridge, tmp_path: Path
) -> None:
    class ReviewFlow(Flow):  # type: ignore[type-arg]
        @start()
        @human_feedback(message="Approve the draft?", provider=_Pending())
        def draft(self) -> str:
            return str(crewai_llm(server).call("Draft."))

    result = ReviewFlow(persistence=SQLiteFlowPersistence(str(tmp_path / "flows.db"))).kickoff()
    assert isinstance(result, HumanFeedbackPending)
    spans = wait_for_spans(span_exporter, "invoke_workflow ReviewFlow")
    root = assert_flow_tree(spans, "ReviewFlow", {"draft": ["chat test-model"]})
    (method,) = named(spans, "execute_flow_method draft")
    for span in (root, method):
        assert span.attributes["crewtrace.flow.outcome"] == "paused"
        assert span.status.status_code is StatusCode.UNSET, "waiting for a human is not an error"
    assert bridge.open_spans() == ()


async def test_a_cancelled_flow_leaves_no_span_open_once_closed(
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
    bridge: OTelBridge,
    instrumentation: CrewAIInstrumentation,
) -> None:
    server.responder = lambda body: Reply(chunks=[f"s{i} " for i in range(400)], delay=0.01)

    class SlowFlow(Flow):  # type: ignore[type-arg]
        @start()
        def think(self) -> str:
            return str(crewai_llm(server).call("Think slowly."))

    run = asyncio.ensure_future(SlowFlow().kickoff_async())
    await await_until(lambda: bridge.open_spans() and "chat test-model" in bridge.open_spans(), what="streaming")
    run.cancel()
    with pytest.raises(BaseException):  # noqa: B017 - CancelledError, or what CrewAI turns it into
        await run
    instrumentation.close()
    bridge.close()
    spans = span_exporter.get_finished_spans()
    assert {"invoke_workflow SlowFlow", "execute_flow_method think", "chat test-model"} <= {s.name for s in spans}
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)
    assert bridge.open_spans() == ()


# -- agents without a crew ---------------------------------------------------------------------------


def search_then_answer(body: dict[str, Any]) -> Reply:
    if body.get("tools") and not any(m.get("role") == "tool" for m in body.get("messages") or []):
        return Reply(chunks=[], tool_calls=[ToolCallReply("call_1", "search_notes", json.dumps({"query": "spans"}))])
    return FINAL


def solo_agent(server: FakeOpenAIServer) -> Agent:
    return Agent(role="Solo", goal="Answer.", backstory="Alone.", llm=crewai_llm(server), tools=[search_notes])


def assert_solo_run(spans: list[Any], metric_reader: InMemoryMetricReader, bridge: OTelBridge) -> None:
    """``Agent.kickoff()``: one trace under the agent, its two calls and its tool below, all attributed to it."""
    assert_agent_tree(spans, "Solo", tools=["search_notes"])
    assert len(chat_spans(spans)) == 2
    assert_attributed(spans, metric_reader, keys=AGENT_KEYS, labels=(AGENT,))
    assert_usage(spans, metric_reader)
    assert bridge.open_spans() == ()


def test_agent_kickoff_is_one_trace_under_its_agent(
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    bridge: OTelBridge,
) -> None:
    server.responder = search_then_answer
    assert solo_agent(server).kickoff("What do spans hold?").raw
    assert_solo_run(wait_for_spans(span_exporter, "invoke_agent Solo"), metric_reader, bridge)


async def test_agent_kickoff_async_is_one_trace_under_its_agent(
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    bridge: OTelBridge,
) -> None:
    server.responder = search_then_answer
    assert (await solo_agent(server).kickoff_async("What do spans hold?")).raw
    assert_solo_run(await await_spans(span_exporter, "invoke_agent Solo"), metric_reader, bridge)


def test_an_agent_kicked_off_in_a_flow_method_sits_under_the_method(
    server: FakeOpenAIServer, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    server.responder = search_then_answer

    class AskFlow(Flow):  # type: ignore[type-arg]
        @start()
        def ask(self) -> str:
            return str(solo_agent(server).kickoff("What do spans hold?").raw)

    AskFlow().kickoff()
    spans = wait_for_spans(span_exporter, "invoke_workflow AskFlow")
    assert_flow_tree(spans, "AskFlow", {"ask": ["invoke_agent Solo"]})
    (agent,) = named(spans, "invoke_agent Solo")
    assert {s.name for s in children(spans, agent)} == {"chat test-model", "execute_tool search_notes"}
    assert_attributed(spans, metric_reader, keys=(*FLOW_KEYS, *AGENT_KEYS), labels=(FLOW, METHOD, AGENT))


# -- delegation --------------------------------------------------------------------------------------


def test_a_coworker_sits_under_the_delegation_tool_and_keeps_the_task(
    server: FakeOpenAIServer,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    bridge: OTelBridge,
) -> None:
    def manager_delegates(body: dict[str, Any]) -> Reply:
        tools = [t["function"]["name"] for t in body.get("tools") or []]
        if "delegate_work_to_coworker" in tools and not any(m.get("role") == "tool" for m in body["messages"]):
            arguments = json.dumps({"task": "Write a line", "context": "about spans", "coworker": "Writer"})
            return Reply(chunks=[], tool_calls=[ToolCallReply("call_d", "delegate_work_to_coworker", arguments)])
        return FINAL

    server.responder = manager_delegates
    writer = Agent(role="Writer", goal="Write.", backstory="Clear.", llm=crewai_llm(server), max_iter=2)
    crew = Crew(
        name="office",
        agents=[writer],
        tasks=[Task(name="report", description="Report on {topic}.", expected_output="Text.")],
        process=Process.hierarchical,
        manager_llm=crewai_llm(server),
    )
    crew.kickoff(inputs={"topic": "spans"})
    spans = wait_for_spans(span_exporter, "invoke_workflow office")
    assert_run_tree(spans, "office", {"report": "Crew Manager"}, tools=["delegate_work_to_coworker"])
    (tool,) = named(spans, "execute_tool delegate_work_to_coworker")
    (coworker,) = named(spans, "invoke_agent Writer")
    assert coworker.parent == tool.context, "the coworker works inside the manager's tool call"
    assert [s.name for s in children(spans, coworker)] == ["chat test-model"]
    assert coworker.attributes[TASK] == "report", "it works for the manager's task"
    assert_attributed(spans, metric_reader)
    assert_usage(spans, metric_reader)
    assert bridge.open_spans() == ()


# -- labels --------------------------------------------------------------------------------------------

SECRET = "ZEBRA-INPUT-5521"


def telemetry_text(spans: Any, reader: InMemoryMetricReader) -> str:
    """Everything a backend would see as names and values: span names, attributes, metric labels."""
    parts = [json.dumps([s.name, dict(s.attributes)], default=str) for s in spans]
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                parts += [json.dumps(dict(p.attributes)) for p in metric.data.data_points]
    return "\n".join(parts)


def test_planning_and_an_unnamed_task_get_short_stable_labels_without_inputs(
    server: FakeOpenAIServer, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    writer = Agent(role="Writer for {topic}", goal="Write.", backstory="Clear.", llm=crewai_llm(server), max_iter=2)
    description = (
        "Write a short report about {topic} for the readers of the weekly engineering newsletter, covering what "
        "changed, why it matters, and what the team should do next, in plain words and at most three paragraphs."
    )
    crew = Crew(
        name="newsletter",
        agents=[writer],
        tasks=[Task(description=description, expected_output="Three paragraphs.", agent=writer)],
        planning=True,
        planning_llm=crewai_llm(server),
    )
    crew.kickoff(inputs={"topic": SECRET})
    spans = wait_for_spans(span_exporter, "invoke_workflow newsletter")
    task = "Write a short report about {topic}"
    assert_run_tree(spans, "newsletter", {"crew planning": "Task Execution Planner", task: "Writer for {topic}"})
    assert_attributed(spans, metric_reader)
    shown = telemetry_text(spans, metric_reader)
    assert SECRET not in shown, "a filled-in input never becomes a name or a label"
    assert " at 0x" not in shown and "0x7f" not in shown, "no memory address either"
    for span in spans:
        assert len(span.attributes.get(TASK, "")) <= 48


def test_instrumenting_a_run_under_way_never_labels_with_the_filled_in_role(
    server: FakeOpenAIServer, tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> None:
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    late_bus = EventBus()
    late_bridge = OTelBridge(tracer_provider, MeterProvider(metric_readers=[reader]), bus=late_bus)
    go = threading.Event()

    def slow_answer(body: dict[str, Any]) -> Reply:
        go.wait(10)
        return Reply(chunks=["Final Answer: ", *[f"w{i} " for i in range(20)]], delay=0.005)

    server.responder = slow_answer
    advisor = Agent(role="Advisor for {topic}", goal="Advise.", backstory="Wise.", llm=crewai_llm(server), max_iter=2)
    crew = Crew(
        name="late",
        agents=[advisor],
        tasks=[Task(name="advise", description="Advise.", expected_output="Text.", agent=advisor)],
    )
    run = threading.Thread(target=crew.kickoff, kwargs={"inputs": {"topic": SECRET}})
    run.start()
    wait_until(lambda: server.requests, what="the call under way")
    late = instrument_crewai(late_bus)
    try:
        go.set()
        run.join(30)
        crewai_event_bus.flush()
        chats = wait_until(lambda: chat_spans(exporter.get_finished_spans()), what="the late call's span")
    finally:
        late.close()
        late_bridge.close()
    assert chats[0].attributes[AGENT] == OTHER, "the template is not known: not the filled-in text"
    assert SECRET not in telemetry_text(exporter.get_finished_spans(), reader)
