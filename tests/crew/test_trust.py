"""What a careless user or an attacker does to a crew must not break a guarantee."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.support.crews import answer_after_tools, scripted, three_task_crew
from tests.support.llms import API_KEY, MakeLLM
from tests.support.metrics import metric_sum
from tests.support.openai_server import FakeOpenAIServer, Reply, ToolCallReply
from tests.support.recording import Recorder
from tests.support.spans import SpanCounter

from crewtrace import LLM, Agent, ConfigurationError, Crew, MissingInputError, Task, tool
from crewtrace.events import BaseEvent, EventBus, LLMEvent, ToolUsageErrorEvent
from crewtrace.telemetry import OTelBridge, UsageLog


@pytest.fixture
def open_spans(tracer_provider: TracerProvider) -> SpanCounter:
    processor = SpanCounter()
    tracer_provider.add_span_processor(processor)
    return processor


# -- 1. filled-in inputs are content -------------------------------------------------


def test_inputs_filled_into_a_role_never_reach_labels_span_names_or_the_usage_log(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    bus: EventBus,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_name = "Alice Q. Customer"
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=False, bus=bus)
    usage_log = UsageLog(bus)
    advisor = Agent(role="Advisor for {customer}", goal="Help {customer}.", backstory="Kind.", llm=make_llm())
    task = Task(description="Advise {customer}.", expected_output="Advice.", agent=advisor)
    with caplog.at_level(logging.INFO, logger="crewtrace.usage"):
        Crew(agents=[advisor], tasks=[task], bus=bus).kickoff(inputs={"customer": secret_name})
    bridge.close()
    usage_log.close()
    assert "You are Advisor for Alice Q. Customer" in server.requests[0].body["messages"][0]["content"]
    spans = span_exporter.get_finished_spans()
    assert "invoke_agent Advisor for {customer}" in [s.name for s in spans]
    for span in spans:
        assert secret_name not in span.name
        assert not any(secret_name in str(value) for value in (span.attributes or {}).values()), span.name
    assert secret_name not in metric_reader.get_metrics_data().to_json()
    assert caplog.records and not any(secret_name in json.dumps(vars(r), default=str) for r in caplog.records)


# -- 3, 4. one redaction path for tool errors ---------------------------------------------


def test_a_tool_error_holding_a_key_is_redacted_in_events_and_spans(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    bus: EventBus,
    recorder: Recorder,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    @tool
    def leaky(query: str) -> str:
        """Fails with the key in its message, as a careless HTTP client would."""
        raise RuntimeError(f"401 from upstream for key={API_KEY} while asking {query!r}")

    bridge = OTelBridge(tracer_provider, capture_content=False, bus=bus)
    server.responder = answer_after_tools([ToolCallReply("c1", "leaky", '{"query": "private question"}')])
    agent = Agent(role="R", goal="G", backstory="B", llm=make_llm(), tools=[leaky])
    Crew(agents=[agent], tasks=[Task(description="d", expected_output="e", agent=agent)], bus=bus).kickoff()
    bridge.close()
    (error,) = recorder.of(ToolUsageErrorEvent)
    assert API_KEY not in error.error and "***" in error.error
    assert API_KEY not in json.dumps(server.requests[1].body), "nor does the model get the key back"
    (tool_span,) = [s for s in span_exporter.get_finished_spans() if s.name == "execute_tool leaky"]
    description = tool_span.status.description or ""
    assert API_KEY not in description
    assert "private question" not in description, "with capture off, no argument value in the span"
    assert tool_span.attributes is not None and tool_span.attributes["error.type"] == "RuntimeError"


# -- 9. interrupted at every emission point, everything ends exactly once ------------------


class InterruptAt:
    """The first handler on the bus: raises KeyboardInterrupt on the n-th event, as Ctrl-C would."""

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.seen: list[BaseEvent] = []

    def __call__(self, source: Any, event: BaseEvent) -> None:
        self.seen.append(event)
        if len(self.seen) - 1 == self.n:
            raise KeyboardInterrupt


def ended_exactly_once(events: list[BaseEvent]) -> Iterator[str]:
    """Problems: a started crew/task/agent/call/tool without exactly one end."""
    opened: dict[tuple[str, Any], int] = {}
    for event in events:
        kind, _, phase = event.type.rpartition("_")
        family = kind.replace("_kickoff", "").replace("_usage", "").replace("_execution", "").replace("_call", "")
        key = (family, getattr(event, "call_id", None) or getattr(event, "tool_call_id", None) or event.task_id)
        if phase == "started":
            opened[key] = opened.get(key, 0) + 1
        elif phase in ("completed", "failed", "error", "finished"):
            opened[key] = opened.get(key, 0) - 1
    yield from (f"{key}: {count:+d}" for key, count in opened.items() if count != 0)


def test_an_interrupt_at_any_emission_point_ends_every_span_and_stream(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
    open_spans: SpanCounter,
) -> None:
    server.responder = scripted

    def run(n: int | None) -> InterruptAt:
        bus = EventBus()
        interrupt = InterruptAt(n)
        bus.register_handler(BaseEvent, interrupt)  # before the bridge: the bridge must still see every end
        bridge = OTelBridge(tracer_provider, meter_provider, bus=bus)
        try:
            if n is None:
                three_task_crew(make_llm, bus).kickoff(inputs={"topic": "t"})
            else:
                with pytest.raises(KeyboardInterrupt):
                    three_task_crew(make_llm, bus).kickoff(inputs={"topic": "t"})
            assert open_spans.open == 0, f"interrupt at event {n}: spans left open: {open_spans.open_names()}"
            assert metric_sum(metric_reader, "crewtrace.stream.active") == 0, f"interrupt at event {n}: active stuck"
        finally:
            bridge.close()
        problems = list(ended_exactly_once(interrupt.seen))
        assert not problems, f"interrupt at event {n} ({interrupt.seen[n].type if n is not None else ''}): {problems}"
        return interrupt

    emitted = run(None).seen
    assert {"task_started", "tool_usage_started", "llm_stream_chunk", "crew_kickoff_completed"} <= {
        e.type for e in emitted
    }
    for n in range(len(emitted)):
        run(n)


# -- 14, 15. tools that used to end the run -------------------------------------------------


@tool
async def async_upper(text: str) -> str:
    """Upper-case a text, asynchronously."""
    await asyncio.sleep(0)
    return text.upper()


def test_async_tools_run_when_sync_kickoff_is_called_inside_a_running_loop(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus
) -> None:
    server.responder = answer_after_tools([ToolCallReply("u1", "async_upper", '{"text": "jupyter"}')])
    agent = Agent(role="R", goal="G", backstory="B", llm=make_llm(), tools=[async_upper])
    crew = Crew(agents=[agent], tasks=[Task(description="d", expected_output="e", agent=agent)], bus=bus)

    async def notebook_cell() -> str:
        return crew.kickoff().raw  # what a Jupyter cell does: sync kickoff, loop running

    assert asyncio.run(notebook_cell()) == "Final: JUPYTER"


def test_a_tool_result_json_cannot_encode_goes_back_to_the_model_as_an_error(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, recorder: Recorder
) -> None:
    @tool
    def odd(key: str) -> dict[Any, Any]:
        """Returns a mapping with tuple keys."""
        return {(key, 1): "x"}

    server.responder = answer_after_tools([ToolCallReply("o1", "odd", '{"key": "k"}')])
    agent = Agent(role="R", goal="G", backstory="B", llm=make_llm(), tools=[odd])
    result = Crew(agents=[agent], tasks=[Task(description="d", expected_output="e", agent=agent)], bus=bus).kickoff()
    assert result.raw.startswith("Final: Error: the tool returned a dict that cannot be sent as text")
    (error,) = recorder.of(ToolUsageErrorEvent)
    assert error.error_type == "invalid_result"


# -- 16. the crew's bus gets its LLM events ------------------------------------------------


def test_llm_events_of_a_run_reach_the_bus_of_the_crew(server: FakeOpenAIServer, bus: EventBus) -> None:
    server.queue(Reply(chunks=["hello", " there"]))
    llm = LLM("openai/test-model", stream=True, base_url=server.base_url, api_key=API_KEY)  # the global bus
    agent = Agent(role="R", goal="G", backstory="B", llm=llm)
    recorder = Recorder(bus)
    Crew(agents=[agent], tasks=[Task(description="d", expected_output="e", agent=agent)], bus=bus).kickoff()
    types = [e.type for e in recorder.of(LLMEvent)]
    assert types[0] == "llm_call_started" and types[-1] == "llm_call_completed" and "llm_stream_chunk" in types


# -- 17, 18, 22. clear errors at construction -------------------------------------------------


def agent() -> Agent:
    return Agent(role="R", goal="G", backstory="B", llm="openai/x")


def test_a_task_listed_twice_is_refused() -> None:
    task = Task(description="d", expected_output="e", agent=agent())
    with pytest.raises(ConfigurationError, match="listed twice"):
        Crew(agents=[task.agent], tasks=[task, task])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Crew(agents=[], tasks=[], process="hierarchical"), r"process='hierarchical'\) is not supported"),
        (lambda: Crew(agents=[], tasks=[], manager_llm="gpt-4o"), r"manager_llm=\.\.\.\) is not supported"),
        (lambda: Crew(agents=[], tasks=[], planning=True), r"planning=\.\.\.\) is not supported"),
        (lambda: Agent(role="R", goal="G", backstory="B", allow_delegation=True), "allow_delegation"),
        (lambda: Agent(role="R", goal="G", backstory="B", memory=True), "keep no memory"),
        (lambda: Task(description="d", expected_output="e", async_execution=True), "async_execution"),
        (lambda: Task(descriptoin="d", expected_output="e"), "did you mean 'description'"),
    ],
)
def test_crewai_arguments_crewtrace_does_not_implement_are_refused_by_name(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build()


def test_sequential_process_is_accepted_as_crewai_writes_it() -> None:
    task = Task(description="d", expected_output="e", agent=agent())
    assert Crew(agents=[task.agent], tasks=[task], process="sequential").process == "sequential"


@pytest.mark.parametrize("template", ["Do {}", "Step {0}", "Broken {", "Stray }"])
def test_malformed_templates_are_refused_at_construction(template: str) -> None:
    with pytest.raises(ConfigurationError, match="malformed template"):
        Task(description=template, expected_output="e")
    with pytest.raises(ConfigurationError, match="malformed template"):
        Agent(role=template, goal="G", backstory="B", llm="openai/x")


def test_a_missing_nested_field_is_a_missing_input() -> None:
    task = Task(description="Show {x:>{width}}", expected_output="e", agent=agent())
    with pytest.raises(MissingInputError, match="width"):
        Crew(agents=[task.agent], tasks=[task]).kickoff(inputs={"x": 3})


def test_an_input_that_does_not_fit_its_format_fails_early_without_echoing_it() -> None:
    task = Task(description="Count {n:d}", expected_output="e", agent=agent())
    with pytest.raises(ConfigurationError, match="cannot be filled") as caught:
        Crew(agents=[task.agent], tasks=[task]).kickoff(inputs={"n": "private text"})
    assert "private text" not in str(caught.value) and caught.value.__cause__ is None


# -- 15.10. verbose does what CrewAI users expect -----------------------------------------


def test_verbose_logs_progress_without_content(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    server.queue(Reply(chunks=["SECRET-ANSWER"], usage=(3, 1)))
    writer = Agent(role="Writer", goal="G", backstory="B", llm=make_llm())
    task = Task(name="write", description="Write about {topic}.", expected_output="e", agent=writer)
    with caplog.at_level(logging.INFO, logger="crewtrace.crew"):
        Crew(name="c", agents=[writer], tasks=[task], verbose=True, bus=bus).kickoff(inputs={"topic": "PRIVATE"})
    lines = [r.getMessage() for r in caplog.records if r.name == "crewtrace.crew"]
    assert (
        lines
        == [
            "c: task 'write' started by 'Writer'",
            lines[1],
        ]
        and lines[1].startswith("c: task 'write' done by 'Writer' in ")
        and lines[1].endswith("(3 tokens in, 1 out)")
    )
    assert not any("SECRET-ANSWER" in line or "PRIVATE" in line for line in lines)
