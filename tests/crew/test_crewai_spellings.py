"""CrewAI code moves over unchanged: its module paths, names and arguments for what crewtrace does.

What crewtrace does not do is still refused by name (tests/crew/test_trust.py); here, what it does
is accepted however CrewAI spells it, and what asks for nothing (``allow_delegation=False``) too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from tests.support.openai_server import FakeOpenAIServer, Reply, chop

from crewtrace import LLM, Agent, ConfigurationError, Crew, CrewOutput, Process, Task
from crewtrace.events import EventBus

MakeLLM = Callable[..., LLM]

CREWAI_STYLE = """
from crewtrace import Agent, Crew, Process, Task
from crewtrace.types.streaming import StreamChunk, StreamChunkType, ToolCallChunk, CrewStreamingOutput
from crewtrace.types.usage_metrics import UsageMetrics

researcher = Agent(
    role="Researcher",
    goal="Find facts about {topic}.",
    backstory="Careful.",
    llm=llm,
    allow_delegation=False,
    max_iter=3,
    memory=False,
    verbose=False,
)
research = Task(description="Research {topic}.", expected_output="Facts.", agent=researcher, async_execution=False)
crew = Crew(
    agents=[researcher], tasks=[research], process=Process.sequential, stream=True, memory=False, planning=False
)
streaming = crew.kickoff(inputs={"topic": "tracing"})
assert isinstance(streaming, CrewStreamingOutput)
text = ""
for chunk in streaming:
    assert isinstance(chunk, StreamChunk)
    if chunk.chunk_type == StreamChunkType.TEXT:
        text += chunk.content
    elif isinstance(chunk.tool_call, ToolCallChunk):
        pass
result = streaming.result
usage = result.token_usage
assert isinstance(usage, UsageMetrics)
summary = (text, usage.total_tokens, usage.prompt_tokens, usage.cached_prompt_tokens, usage.completion_tokens,
           usage.successful_requests, result.tasks_output[0].agent, result.tasks_output[0].expected_output)
"""


def test_ordinary_crewai_code_runs_with_only_the_imports_changed(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus
) -> None:
    server.queue(Reply(chunks=chop("Facts about tracing."), usage=(12, 5)))
    namespace: dict[str, Any] = {"llm": make_llm()}
    exec(CREWAI_STYLE, namespace)
    assert namespace["summary"] == ("Facts about tracing.", 17, 12, 0, 5, 1, "Researcher", "Facts.")


def test_max_iter_is_crewais_spelling_of_max_iterations() -> None:
    agent = Agent(role="R", goal="G", backstory="B", llm="openai/x", max_iter=3)
    assert agent.max_iterations == 3
    with pytest.raises(ConfigurationError, match="both 'max_iter' and 'max_iterations'"):
        Agent(role="R", goal="G", backstory="B", llm="openai/x", max_iter=3, max_iterations=4)


@pytest.mark.parametrize(
    ("build", "field", "value"),
    [
        (lambda: Agent(role="R", goal="G", backstory="B", llm="openai/x", allow_delegation=False), "role", "R"),
        (lambda: Agent(role="R", goal="G", backstory="B", llm="openai/x", function_calling_llm=None), "role", "R"),
        (lambda: Task(description="d", expected_output="e", human_input=False, tools=[]), "description", "d"),
        (lambda: Task(description="d", expected_output="e", output_pydantic=None), "description", "d"),
    ],
)
def test_a_crewai_argument_that_asks_for_nothing_is_accepted(build: Callable[[], Any], field: str, value: str) -> None:
    assert getattr(build(), field) == value


def test_what_crewtrace_does_not_do_is_still_refused_when_asked_for() -> None:
    with pytest.raises(ConfigurationError, match=r"allow_delegation=\.\.\.\) is not supported by crewtrace"):
        Agent(role="R", goal="G", backstory="B", llm="openai/x", allow_delegation=True)
    with pytest.raises(ConfigurationError, match=r"cache=\.\.\.\) is not supported by crewtrace"):
        Agent(role="R", goal="G", backstory="B", llm="openai/x", cache=True)
    with pytest.raises(ConfigurationError, match="process='hierarchical'"):
        Crew(agents=[], tasks=[], process=Process.hierarchical)


def test_akickoff_is_crewais_name_for_the_asyncio_kickoff(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus
) -> None:
    agent = Agent(role="R", goal="G", backstory="B", llm=make_llm())
    crew = Crew(agents=[agent], tasks=[Task(description="d", expected_output="e", agent=agent)], bus=bus)
    output = asyncio.run(crew.akickoff())
    assert isinstance(output, CrewOutput) and output.raw and crew.process is Process.sequential
