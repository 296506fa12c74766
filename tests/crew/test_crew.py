"""Agents, tasks and crews: templating, context, attribution, events, failures, concurrency."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from tests.support.llms import MakeLLM
from tests.support.openai_server import FakeOpenAIServer, Fault, Reply, ToolCallReply, chop
from tests.support.recording import Recorder

from crewtrace import (
    LLM,
    Agent,
    ConfigurationError,
    Crew,
    CrewOutput,
    CrewStreamingOutput,
    LLMCallError,
    MissingInputError,
    Task,
    tool,
)
from crewtrace.events import (
    AgentExecutionErrorEvent,
    CrewKickoffCompletedEvent,
    CrewKickoffFailedEvent,
    CrewKickoffStartedEvent,
    EventBus,
    LLMCallCompletedEvent,
    LLMEvent,
    LLMStreamChunkEvent,
    TaskFailedEvent,
    crewtrace_event_bus,
)


def two_task_crew(make_llm: MakeLLM, bus: EventBus, name: str = "research-crew") -> Crew:
    researcher = Agent(
        role="{field} Researcher", goal="Know {field}.", backstory="Curious about {field}.", llm=make_llm()
    )
    writer = Agent(role="Writer", goal="Write clearly.", backstory="Ex-journalist.", llm=make_llm())
    research = Task(
        description="Research {topic} in {field}.", expected_output="Bullet points.", agent=researcher, name="research"
    )
    write = Task(description="Summarise the research on {topic}.", expected_output="One paragraph.", agent=writer)
    return Crew(agents=[researcher, writer], tasks=[research, write], name=name, bus=bus)


INPUTS = {"topic": "streaming", "field": "AI"}


def test_kickoff_runs_tasks_in_order_with_filled_templates_and_context(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus
) -> None:
    crew = two_task_crew(make_llm, bus)
    result = crew.kickoff(inputs=INPUTS)
    assert isinstance(result, CrewOutput)
    first, second = (r.body["messages"] for r in server.requests)
    assert "You are AI Researcher" in first[0]["content"]
    assert "Research streaming in AI." in first[1]["content"]
    assert "Summarise the research on streaming." in second[1]["content"]
    first_answer = result.tasks_output[0].raw
    assert first_answer.startswith("Answer for: Research streaming in AI.")
    assert first_answer in second[1]["content"], "earlier outputs reach later tasks as context"
    assert result.raw == result.tasks_output[1].raw == str(result)
    assert [t.name for t in result.tasks_output] == ["research", "Summarise the research on {topic}"]
    assert crew.tasks[0].description == "Research {topic} in {field}.", "templates are never mutated"


def test_token_usage_is_summed_from_the_streams_under_crewais_names(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus
) -> None:
    server.queue(Reply(chunks=["a1", "b2"], usage=(10, 2)), Reply(chunks=["c3"], usage=(30, 1)))
    usage = two_task_crew(make_llm, bus).kickoff(inputs=INPUTS).token_usage
    assert usage.model_dump() == {
        "total_tokens": 43,
        "prompt_tokens": 40,
        "cached_prompt_tokens": 0,
        "completion_tokens": 3,
        "successful_requests": 2,
    }


def test_explicit_context_limits_what_a_task_sees(server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus) -> None:
    agent = Agent(role="R", goal="G", backstory="B", llm=make_llm())
    server.queue(Reply(chunks=["FIRST-OUT"]), Reply(chunks=["SECOND-OUT"]), Reply(chunks=["third"]))
    one = Task(description="one", expected_output="x", agent=agent)
    two = Task(description="two", expected_output="x", agent=agent)
    three = Task(description="three", expected_output="x", agent=agent, context=[one])
    Crew(agents=[agent], tasks=[one, two, three], bus=bus).kickoff()
    third_prompt = server.requests[2].body["messages"][1]["content"]
    assert "FIRST-OUT" in third_prompt and "SECOND-OUT" not in third_prompt


def test_every_event_of_a_task_carries_run_task_and_agent(make_llm: MakeLLM, bus: EventBus, recorder: Recorder) -> None:
    crew = two_task_crew(make_llm, bus)
    result = crew.kickoff(inputs=INPUTS)
    (started,) = recorder.of(CrewKickoffStartedEvent)
    assert started.run_id == result.run_id and started.crew_name == "research-crew"
    assert started.inputs == INPUTS
    llm_events = recorder.of(LLMEvent)
    assert llm_events and all(e.run_id == result.run_id and e.crew_name == "research-crew" for e in llm_events)
    for task, agent in ((crew.tasks[0], crew.agents[0]), (crew.tasks[1], crew.agents[1])):
        of_task = [e for e in llm_events if e.task_id == task.id]
        assert {e.type for e in of_task} == {"llm_call_started", "llm_stream_chunk", "llm_call_completed"}
        assert all(e.agent_id == agent.id and e.task_name == task.label for e in of_task)
    # The role as written, not as filled in: inputs are content, never attribution.
    assert {e.agent_role for e in llm_events} == {"{field} Researcher", "Writer"}
    sequence = [e.type for e in recorder.events if not isinstance(e, LLMEvent)]
    assert sequence == [
        "crew_kickoff_started",
        "task_started",
        "agent_execution_started",
        "agent_execution_completed",
        "task_completed",
        "task_started",
        "agent_execution_started",
        "agent_execution_completed",
        "task_completed",
        "crew_kickoff_completed",
    ]
    (completed,) = recorder.of(CrewKickoffCompletedEvent)
    assert completed.output == result.raw
    assert (completed.token_usage.input_tokens, completed.token_usage.output_tokens) == (
        result.token_usage.prompt_tokens,
        result.token_usage.completion_tokens,
    )


def test_agent_id_equals_event_agent_id(make_llm: MakeLLM, bus: EventBus, recorder: Recorder) -> None:
    """The seed's `researcher.id == event.agent_id` comparison holds (in CrewAI it never does)."""
    crew = two_task_crew(make_llm, bus)
    researcher = crew.agents[0]
    crew.kickoff(inputs=INPUTS)
    matching = [e for e in recorder.of(LLMStreamChunkEvent) if researcher.id == e.agent_id]
    assert matching and all(e.task_name == "research" for e in matching)


def test_missing_input_fails_before_any_llm_call(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, recorder: Recorder
) -> None:
    with pytest.raises(MissingInputError, match="'field'") as caught:
        two_task_crew(make_llm, bus).kickoff(inputs={"topic": "x"})
    assert "kickoff(inputs=" in str(caught.value)
    assert server.requests == [] and recorder.events == []


def test_task_without_agent_is_rejected_at_construction(make_llm: MakeLLM) -> None:
    agent = Agent(role="R", goal="G", backstory="B", llm=make_llm())
    with pytest.raises(ConfigurationError, match="has no agent"):
        Crew(agents=[agent], tasks=[Task(description="orphan", expected_output="x")])
    with pytest.raises(ConfigurationError, match="at least one task"):
        Crew(agents=[agent], tasks=[])


def test_context_from_a_later_task_is_rejected(make_llm: MakeLLM) -> None:
    agent = Agent(role="R", goal="G", backstory="B", llm=make_llm())
    later = Task(description="later", expected_output="x", agent=agent)
    early = Task(description="early", expected_output="x", agent=agent, context=[later])
    with pytest.raises(ConfigurationError, match="does not run before it"):
        Crew(agents=[agent], tasks=[early, later])


def test_llm_failure_emits_agent_task_and_crew_failures_then_raises(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, recorder: Recorder
) -> None:
    server.queue(Reply(chunks=["ok"]), *[Reply(chunks=["x"], fault=Fault.STATUS_500)] * 4)
    with pytest.raises(LLMCallError):
        two_task_crew(make_llm, bus, name="failing").kickoff(inputs=INPUTS)
    tail = [e.type for e in recorder.events][-4:]
    assert tail == ["llm_call_failed", "agent_execution_error", "task_failed", "crew_kickoff_failed"]
    for event_type in (AgentExecutionErrorEvent, TaskFailedEvent, CrewKickoffFailedEvent):
        (failure,) = recorder.of(event_type)
        assert failure.error_type == "InternalServerError"
    assert recorder.of(TaskFailedEvent)[0].task_name == "Summarise the research on {topic}"


async def test_kickoff_async_matches_kickoff(make_llm: MakeLLM, bus: EventBus, recorder: Recorder) -> None:
    result = await two_task_crew(make_llm, bus).kickoff_async(inputs=INPUTS)
    assert result.raw.startswith("Answer for: Summarise the research on streaming.")
    assert recorder.types()[0] == "crew_kickoff_started" and recorder.types()[-1] == "crew_kickoff_completed"
    assert all(e.run_id == result.run_id for e in recorder.of(LLMEvent))


def _assert_runs_never_mix(recorder: Recorder, results: dict[str, CrewOutput]) -> None:
    """Each run's chunks spell exactly that run's answers, task by task."""
    assert len({r.run_id for r in results.values()}) == len(results)
    for topic, result in results.items():
        for task_output in result.tasks_output:
            chunks = [
                e
                for e in recorder.of(LLMStreamChunkEvent)
                if e.run_id == result.run_id and e.task_name == task_output.name
            ]
            assert "".join(c.chunk for c in chunks) == task_output.raw
            assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
        assert topic in result.tasks_output[0].raw


def test_concurrent_crews_in_threads_never_mix_attribution(make_llm: MakeLLM, bus: EventBus) -> None:
    recorder = Recorder(bus)
    crew = two_task_crew(make_llm, bus)  # the same Crew object, run from four threads at once
    results: dict[str, CrewOutput] = {}
    barrier = threading.Barrier(4)

    def run(topic: str) -> None:
        barrier.wait()
        results[topic] = crew.kickoff(inputs={"topic": topic, "field": "AI"})

    threads = [threading.Thread(target=run, args=(f"topic-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _assert_runs_never_mix(recorder, results)


async def test_concurrent_crews_in_asyncio_tasks_never_mix_attribution(make_llm: MakeLLM, bus: EventBus) -> None:
    recorder = Recorder(bus)
    crew = two_task_crew(make_llm, bus)
    topics = [f"topic-{n}" for n in range(4)]
    outputs = await asyncio.gather(*(crew.kickoff_async(inputs={"topic": t, "field": "AI"}) for t in topics))
    _assert_runs_never_mix(recorder, dict(zip(topics, outputs, strict=False)))


def test_task_label_comes_from_the_description_template() -> None:
    task = Task(description="Answer the following questions about the user: {question}", expected_output="x")
    assert task.label == "Answer the following questions about the"
    assert Task(description="d", expected_output="x", name="named").label == "named"


def test_agent_accepts_a_model_name(bus: EventBus) -> None:
    agent = Agent(role="R", goal="G", backstory="B", llm="openai/gpt-4o-mini")
    assert isinstance(agent.llm, LLM) and agent.llm.model == "openai/gpt-4o-mini"
    with pytest.raises(ConfigurationError, match=r"crewtrace\.LLM or a model name"):
        Agent(role="R", goal="G", backstory="B", llm=42)


# -- an LLM called while a crew runs belongs to the run -------------------------------------


def _run_with_tool_llm(crew: Crew, mode: str) -> tuple[CrewOutput, list[Any]]:
    """The run's output and, for a streaming run, its chunks."""
    if mode == "kickoff_async":
        output = asyncio.run(crew.kickoff_async())
    else:
        crew.stream = mode == "stream"
        output = crew.kickoff()
    if isinstance(output, CrewStreamingOutput):
        chunks = list(output)
        return output.result, chunks
    assert isinstance(output, CrewOutput)
    return output, []


@pytest.mark.parametrize("mode", ["kickoff", "kickoff_async", "stream"])
def test_an_llm_without_a_bus_called_in_a_tool_reports_to_the_crews_bus_and_run(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, recorder: Recorder, mode: str
) -> None:
    """Its chat span, tokens and cost belong to the crew's telemetry, attributed to the agent using the tool."""
    inner = LLM("openai/test-model", base_url=server.base_url, api_key="sk-test-inner", stream=True, timeout=10)

    @tool
    def summarise(topic: str) -> str:
        """Summarise a topic with a second model."""
        return inner.call(f"Summarise {topic}")

    def respond(body: dict[str, Any]) -> Reply:
        messages = body["messages"]
        if messages[0]["content"].startswith("Summarise"):
            return Reply(chunks=chop("an inner summary"))
        if messages[-1]["role"] != "tool":
            return Reply(tool_calls=[ToolCallReply("call_1", "summarise", '{"topic": "otel"}')])
        return Reply(chunks=chop("Done: " + messages[-1]["content"]))

    server.responder = respond
    agent = Agent(role="Researcher", goal="G", backstory="B", llm=make_llm(), tools=[summarise])
    task = Task(name="research", description="Research otel.", expected_output="x", agent=agent)
    crew = Crew(agents=[agent], tasks=[task], bus=bus)
    with crewtrace_event_bus.scoped_handlers():
        on_default = Recorder(crewtrace_event_bus)
        result, chunks = _run_with_tool_llm(crew, mode)
    assert result.raw == "Done: an inner summary"
    assert on_default.events == [], "nothing of the run went to the default bus"
    (inner_call,) = [e for e in recorder.of(LLMCallCompletedEvent) if e.response == "an inner summary"]
    assert (inner_call.run_id, inner_call.task_name, inner_call.agent_role) == (result.run_id, "research", "Researcher")
    if mode == "stream":
        mine = [c for c in chunks if c.call_id == inner_call.call_id]
        assert "".join(c.content for c in mine) == "an inner summary", "its chunks are chunks of the run"
