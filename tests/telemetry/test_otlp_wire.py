"""What a collector receives: the real OTLP exporters (gRPC and HTTP/protobuf) over the wire.

A two-agent, two-task crew streams from the fake OpenAI server through litellm; the
telemetry ``setup_telemetry`` built exports to a real OTLP receiver, configured by the
``otlp_endpoint=`` argument or by the ``OTEL_EXPORTER_OTLP_*`` variables; ``shutdown()``
flushes; the tests assert on the decoded export requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from tests.support.llms import API_KEY
from tests.support.openai_server import FakeOpenAIServer, Reply, chop
from tests.support.otlp_decode import attributes as decode_attributes
from tests.support.otlp_receiver import OTLPGrpcReceiver, OTLPHttpReceiver, ReceivedSpan
from tests.support.recording import Recorder

from crewtrace import LLM, Agent, Crew, CrewOutput, Task
from crewtrace.events import EventBus, LLMCallCompletedEvent
from crewtrace.telemetry import setup_telemetry

DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
TOKEN_BUCKETS = [4.0**i for i in range(14)]  # 1, 4, 16 ... 67108864
METRICS = (
    "gen_ai.client.operation.duration",
    "gen_ai.client.token.usage",
    "gen_ai.client.operation.time_to_first_chunk",
    "gen_ai.client.operation.time_per_output_chunk",
    "crewtrace.stream.chunks",
    "crewtrace.stream.active",
)
CREW = "wire-crew"
MODEL = "openai/test-model"
REQUEST_MODEL = "test-model"  # as the provider names it


@dataclass(frozen=True)
class Expected:
    """One call of the crew: who makes it, what the fake server answers."""

    agent: str
    task: str
    chunks: list[str]
    usage: tuple[int, int]
    response_model: str
    finish_reason: str


CALLS = (
    Expected(
        "Researcher",
        "research_topic",
        chop("Finding one: streams carry attribution. Finding two: first chunks matter.", 5),
        (31, 15),
        "test-model-2024-research",
        "stop",
    ),
    Expected(
        "Writer",
        "write_summary",
        chop("Crews stream answers; tracing each chunk makes them debuggable.", 6),
        (57, 11),
        "test-model-2024-writer",
        "length",
    ),
)
BY_AGENT = {call.agent: call for call in CALLS}
_OTEL_ENV = (
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_INSECURE",
)


def build_crew(server: FakeOpenAIServer, bus: EventBus) -> Crew:
    def llm() -> LLM:
        return LLM(MODEL, stream=True, base_url=server.base_url, api_key=API_KEY, timeout=10, bus=bus)

    researcher = Agent(role="Researcher", goal="Find facts.", backstory="Methodical.", llm=llm())
    writer = Agent(role="Writer", goal="Explain.", backstory="Concise.", llm=llm())
    research = Task(name="research_topic", description="Research tracing.", expected_output="Facts.", agent=researcher)
    summary = Task(name="write_summary", description="Summarise.", expected_output="Two sentences.", agent=writer)
    return Crew(name=CREW, agents=[researcher, writer], tasks=[research, summary], bus=bus)


def queue_replies(server: FakeOpenAIServer) -> None:
    server.queue(
        *(
            Reply(chunks=c.chunks, usage=c.usage, model=c.response_model, finish_reason=c.finish_reason, delay=0.002)
            for c in CALLS
        )
    )


@dataclass
class Run:
    protocol: str
    service: str
    receiver: OTLPGrpcReceiver | OTLPHttpReceiver
    output: CrewOutput
    completed: dict[str, LLMCallCompletedEvent]  # by agent: the measurements the bridge was given

    def spans(self) -> list[ReceivedSpan]:
        return self.receiver.spans()

    def span(self, name: str) -> ReceivedSpan:
        (found,) = [s for s in self.spans() if s.name == name]
        return found

    def chat(self, agent: str) -> ReceivedSpan:
        chats = [s for s in self.spans() if s.name.startswith("chat ")]
        (found,) = [s for s in chats if s.attributes["gen_ai.agent.name"] == agent]
        return found

    def latest(self, metric: str) -> dict[tuple[Any, ...], dict[str, Any]]:
        """The newest point of each series of ``metric`` (cumulative: the totals), by attributes."""
        points: dict[tuple[Any, ...], dict[str, Any]] = {}
        for point in self.receiver.metric_points(metric):
            points[tuple(sorted(point["attributes"].items()))] = point
        return points


@pytest.fixture(
    scope="module",
    params=[(protocol, route) for protocol in ("grpc", "http/protobuf") for route in ("argument", "environment")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """One crew run per protocol and configuration route, exported and flushed by ``shutdown()``."""
    protocol, route = request.param
    receiver_type = OTLPGrpcReceiver if protocol == "grpc" else OTLPHttpReceiver
    service = f"wire-{protocol.replace('/', '-')}-{route}"
    bus = EventBus()
    with pytest.MonkeyPatch.context() as env, FakeOpenAIServer() as server, receiver_type() as receiver:
        for name in _OTEL_ENV:
            env.delenv(name, raising=False)
        if route == "environment":
            env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
            env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            telemetry = setup_telemetry(service, set_global=False, bus=bus)
        else:
            telemetry = setup_telemetry(
                service, otlp_endpoint=receiver.endpoint, otlp_protocol=protocol, set_global=False, bus=bus
            )
        recorder = Recorder(bus)
        try:
            queue_replies(server)
            output = build_crew(server, bus).kickoff()
        finally:
            flushed = telemetry.shutdown(timeout=10.0)
        assert flushed is True
        completed = {e.agent_role: e for e in recorder.of(LLMCallCompletedEvent)}
        yield Run(protocol, service, receiver, output, completed)


# -- traces ------------------------------------------------------------------------------


def test_one_trace_with_the_convention_span_names(run: Run) -> None:
    spans = run.spans()
    assert sorted(s.name for s in spans) == sorted(
        [
            f"invoke_workflow {CREW}",
            "execute_task research_topic",
            "execute_task write_summary",
            "invoke_agent Researcher",
            "invoke_agent Writer",
            f"chat {REQUEST_MODEL}",
            f"chat {REQUEST_MODEL}",
        ]
    )
    assert len({s.trace_id for s in spans}) == 1, "the whole run is one trace"
    assert all(s.scope == "crewtrace" for s in spans)
    kinds = {s.name.split()[0]: s.kind for s in spans}
    assert kinds == {
        "invoke_workflow": "INTERNAL",
        "execute_task": "INTERNAL",
        "invoke_agent": "INTERNAL",
        "chat": "CLIENT",
    }
    assert all(s.status_code == "UNSET" for s in spans)


def test_spans_nest_workflow_task_agent_chat(run: Run) -> None:
    workflow = run.span(f"invoke_workflow {CREW}")
    assert workflow.parent_span_id is None, "nothing was current around kickoff(): the workflow is the root"
    for call in CALLS:
        task = run.span(f"execute_task {call.task}")
        agent = run.span(f"invoke_agent {call.agent}")
        chat = run.chat(call.agent)
        assert task.parent_span_id == workflow.span_id
        assert agent.parent_span_id == task.span_id
        assert chat.parent_span_id == agent.span_id
        for parent, child in ((workflow, task), (task, agent), (agent, chat)):
            assert parent.start_time_unix_nano <= child.start_time_unix_nano
            assert child.end_time_unix_nano <= parent.end_time_unix_nano
    assert workflow.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert workflow.attributes["gen_ai.workflow.name"] == CREW
    assert workflow.attributes["crewtrace.run.id"] == run.output.run_id


def test_chat_spans_carry_the_genai_attributes(run: Run) -> None:
    task_ids = {t.name: t.attributes["crewtrace.task.id"] for t in run.spans() if t.name.startswith("execute_task")}
    agent_ids = {a.name: a.attributes["gen_ai.agent.id"] for a in run.spans() if a.name.startswith("invoke_agent")}
    response_ids = set()
    for call in CALLS:
        chat = run.chat(call.agent)
        a = chat.attributes
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == "openai"
        assert a["gen_ai.request.model"] == REQUEST_MODEL
        assert isinstance(a["gen_ai.response.model"], str) and a["gen_ai.response.model"]
        assert a["gen_ai.request.stream"] is True
        assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == call.usage
        assert a["gen_ai.response.finish_reasons"] == [call.finish_reason]
        assert a["gen_ai.response.id"].startswith("chatcmpl-")
        response_ids.add(a["gen_ai.response.id"])
        assert a["gen_ai.agent.name"] == call.agent
        assert a["gen_ai.agent.id"] == agent_ids[f"invoke_agent {call.agent}"]
        assert a["crewtrace.task.name"] == call.task
        assert a["crewtrace.task.id"] == task_ids[f"execute_task {call.task}"]
        assert a["gen_ai.workflow.name"] == CREW
        assert a["crewtrace.run.id"] == run.output.run_id
        assert a["crewtrace.stream.chunk_count"] == len(call.chunks)
        ttfc = a["gen_ai.response.time_to_first_chunk"]
        assert isinstance(ttfc, float)
        assert 0 < ttfc < (chat.end_time_unix_nano - chat.start_time_unix_nano) / 1e9
        assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a, "content is opt-in"
    assert len(response_ids) == 2


def test_response_model_is_the_model_the_server_named(run: Run) -> None:
    for call in CALLS:
        assert run.chat(call.agent).attributes["gen_ai.response.model"] == call.response_model


def test_chunk_span_events(run: Run) -> None:
    for call in CALLS:
        chat = run.chat(call.agent)
        events = chat.events
        assert events and all(e.name == "crewtrace.stream.chunk" for e in events)
        assert len(events) == len(call.chunks), "below the event budget every chunk has its own event"
        assert [e.attributes["crewtrace.chunk.index"] for e in events] == list(range(len(call.chunks)))
        assert [e.attributes["crewtrace.chunk.size"] for e in events] == [len(c) for c in call.chunks]
        assert all(e.attributes["crewtrace.chunk.count"] == 1 for e in events)
        elapsed = [e.attributes["crewtrace.chunk.elapsed"] for e in events]
        assert elapsed == sorted(elapsed) and elapsed[0] > 0
        # elapsed counts from the started event, time to first chunk from just after it was handled:
        # the first chunk's elapsed is the time to first chunk plus that (sub-millisecond, usually) gap.
        ttfc = chat.attributes["gen_ai.response.time_to_first_chunk"]
        assert ttfc - 0.002 <= elapsed[0] <= ttfc + 0.25
        times = [e.time_unix_nano for e in events]
        assert times == sorted(times)
        assert chat.start_time_unix_nano <= times[0] and times[-1] <= chat.end_time_unix_nano
        assert all("crewtrace.chunk.text" not in e.attributes for e in events), "chunk text is opt-in"


def test_resource_carries_the_service_name(run: Run) -> None:
    assert {s.resource["service.name"] for s in run.spans()} == {run.service}
    metric_resources = [
        decode_attributes(rm.resource.attributes) for r in run.receiver.metric_requests for rm in r.resource_metrics
    ]
    assert metric_resources and {r["service.name"] for r in metric_resources} == {run.service}


# -- metrics -----------------------------------------------------------------------------


def test_metrics_arrive_with_the_convention_names(run: Run) -> None:
    names = run.receiver.metric_names()
    assert set(METRICS) <= names, f"missing {sorted(set(METRICS) - names)}"
    units = {m: {p["unit"] for p in run.receiver.metric_points(m)} for m in METRICS}
    assert units == {
        "gen_ai.client.operation.duration": {"s"},
        "gen_ai.client.token.usage": {"{token}"},
        "gen_ai.client.operation.time_to_first_chunk": {"s"},
        "gen_ai.client.operation.time_per_output_chunk": {"s"},
        "crewtrace.stream.chunks": {"{chunk}"},
        "crewtrace.stream.active": {"{stream}"},
    }


def _series_by_agent(run: Run, metric: str, **extra: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for point in run.latest(metric).values():
        a = point["attributes"]
        if any(a.get(k) != v for k, v in extra.items()):
            continue
        assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
        assert a["gen_ai.request.model"] == REQUEST_MODEL
        agent = a["gen_ai.agent.name"]
        assert a["crewtrace.task.name"] == BY_AGENT[agent].task, "each point names the agent and its task"
        assert agent not in found, f"two {metric} series for {agent}"
        found[agent] = point
    assert set(found) == set(BY_AGENT), f"{metric}: series for {sorted(found)}"
    return found


def test_metric_points_are_per_agent_and_task_with_the_right_values(run: Run) -> None:
    duration = _series_by_agent(run, "gen_ai.client.operation.duration")
    ttfc = _series_by_agent(run, "gen_ai.client.operation.time_to_first_chunk")
    per_chunk = _series_by_agent(run, "gen_ai.client.operation.time_per_output_chunk")
    chunks = _series_by_agent(run, "crewtrace.stream.chunks")
    active = _series_by_agent(run, "crewtrace.stream.active")
    tokens_in = _series_by_agent(run, "gen_ai.client.token.usage", **{"gen_ai.token.type": "input"})
    tokens_out = _series_by_agent(run, "gen_ai.client.token.usage", **{"gen_ai.token.type": "output"})
    for agent, call in BY_AGENT.items():
        chat = run.chat(agent)
        measured = run.completed[agent]
        span_seconds = (chat.end_time_unix_nano - chat.start_time_unix_nano) / 1e9
        assert duration[agent]["count"] == 1
        assert duration[agent]["sum"] == pytest.approx(measured.duration_s), "seconds, as the LLM layer measured"
        assert 0 < duration[agent]["sum"] <= span_seconds + 0.001
        assert ttfc[agent]["count"] == 1
        assert ttfc[agent]["sum"] == pytest.approx(measured.time_to_first_chunk_s)
        assert ttfc[agent]["sum"] == pytest.approx(chat.attributes["gen_ai.response.time_to_first_chunk"])
        assert per_chunk[agent]["count"] == len(call.chunks) - 1, "one point per chunk after the first"
        assert chunks[agent]["value"] == len(call.chunks) and chunks[agent]["is_monotonic"] is True
        assert active[agent]["value"] == 0 and active[agent]["is_monotonic"] is False
        assert (tokens_in[agent]["sum"], tokens_out[agent]["sum"]) == call.usage
        assert tokens_in[agent]["count"] == tokens_out[agent]["count"] == 1


def test_histograms_use_the_convention_buckets(run: Run) -> None:
    for metric in ("gen_ai.client.operation.duration", "gen_ai.client.operation.time_to_first_chunk"):
        for point in run.receiver.metric_points(metric):
            assert point["type"] == "histogram"
            assert point["explicit_bounds"] == DURATION_BUCKETS, metric
    for point in run.receiver.metric_points("gen_ai.client.token.usage"):
        assert point["explicit_bounds"] == TOKEN_BUCKETS
    for point in run.receiver.metric_points("gen_ai.client.operation.time_per_output_chunk"):
        bounds = point["explicit_bounds"]
        assert bounds[-len(DURATION_BUCKETS) :] == DURATION_BUCKETS and bounds[0] < 0.01, "sub-10 ms decades first"


def test_duration_exemplars_point_at_the_chat_spans(run: Run) -> None:
    trace_id = run.spans()[0].trace_id
    for agent in BY_AGENT:
        chat = run.chat(agent)
        exemplars = [
            e
            for p in run.receiver.metric_points("gen_ai.client.operation.duration")
            if p["attributes"]["gen_ai.agent.name"] == agent
            for e in p["exemplars"]
        ]
        assert exemplars, f"no exemplar on {agent}'s duration"
        assert {(e["trace_id"], e["span_id"]) for e in exemplars} == {(trace_id, chat.span_id)}
        assert all(e["value"] == pytest.approx(run.completed[agent].duration_s) for e in exemplars)


def test_chunk_gaps_carry_no_exemplars(run: Run) -> None:
    """One exemplar per gap would cost each chunk more than it tells: the call's duration links to its trace."""
    points = run.receiver.metric_points("gen_ai.client.operation.time_per_output_chunk")
    assert points and sum(p["count"] for p in points) > len(points)
    assert [e for p in points for e in p["exemplars"]] == []


# -- an application span around kickoff() -------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_application_span_around_kickoff_is_the_workflow_parent(
    server: FakeOpenAIServer, bus: EventBus, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    for name in _OTEL_ENV:
        monkeypatch.delenv(name, raising=False)
    receiver_type = OTLPGrpcReceiver if protocol == "grpc" else OTLPHttpReceiver
    with receiver_type() as receiver:
        telemetry = setup_telemetry(
            "wire-app", otlp_endpoint=receiver.endpoint, otlp_protocol=protocol, set_global=False, bus=bus
        )
        try:
            tracer = telemetry.tracer_provider.get_tracer("my-app")
            queue_replies(server)
            with tracer.start_as_current_span("handle_request", kind=trace.SpanKind.SERVER) as app_span:
                build_crew(server, bus).kickoff()
            app_context = app_span.get_span_context()
        finally:
            assert telemetry.shutdown(timeout=10.0) is True
        spans = receiver.spans()
    app = next(s for s in spans if s.name == "handle_request")
    workflow = next(s for s in spans if s.name == f"invoke_workflow {CREW}")
    assert app.span_id == format(app_context.span_id, "016x") and app.scope == "my-app"
    assert app.parent_span_id is None
    assert workflow.parent_span_id == app.span_id
    assert {s.trace_id for s in spans} == {app.trace_id}, "the crew joins the application's trace"
    assert len(spans) == 8
    assert app.start_time_unix_nano <= workflow.start_time_unix_nano
    assert workflow.end_time_unix_nano <= app.end_time_unix_nano
    # Only the workflow takes its parent from the context: tasks still hang under the workflow.
    tasks = [s for s in spans if s.name.startswith("execute_task")]
    assert tasks and all(t.parent_span_id == workflow.span_id for t in tasks)
