"""The crews several test modules run against the fake server, and the replies they script."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.llms import MakeLLM
from tests.support.openai_server import Reply, ToolCallReply, chop

from crewtrace import Agent, Crew, Task, Tool, tool
from crewtrace.events import EventBus

TOOL_ARGUMENTS = '{"topic": "tracing streams"}'


def two_agent_crew(make_llm: MakeLLM, bus: Any, *, name: str, **llm_kwargs: Any) -> Crew:
    """Researcher then Writer, tasks ``research`` and ``write``: one trace with 2 chat spans per run."""
    researcher, writer = _agents(make_llm, [], llm_kwargs)
    return Crew(
        name=name,
        agents=[researcher, writer],
        tasks=[
            Task(name="research", description="Research {topic}.", expected_output="Facts.", agent=researcher),
            Task(name="write", description="Write about {topic}.", expected_output="Text.", agent=writer),
        ],
        bus=bus,
    )


@tool
def lookup(topic: str) -> str:
    """Look a topic up."""
    return f"facts about {topic}"


def scripted(body: dict[str, Any]) -> Reply:
    """For :func:`three_task_crew`: research calls ``lookup``, then answers from its result; draft and review
    answer with fixed texts."""
    messages = body["messages"]
    task = messages[1]["content"]
    if task.startswith("Research"):
        if messages[-1]["role"] != "tool":
            return Reply(tool_calls=[ToolCallReply("call_lookup", "lookup", TOOL_ARGUMENTS)])
        return Reply(chunks=chop("Found: " + messages[-1]["content"]))
    if task.startswith("Draft"):
        return Reply(chunks=chop("A draft about tracing, in several chunks."))
    return Reply(chunks=chop("Reviewed: the draft holds up."))


def answer_after_tools(calls: list[ToolCallReply]) -> Callable[[dict[str, Any]], Reply]:
    """The model asks for `calls` first, then answers with the tool results it got."""

    def respond(body: dict[str, Any]) -> Reply:
        messages = body["messages"]
        if messages[-1]["role"] != "tool":
            return Reply(tool_calls=calls)
        results = [m["content"] for m in messages if m["role"] == "tool"]
        return Reply(chunks=chop("Final: " + " | ".join(results)))

    return respond


def three_task_crew(
    make_llm: MakeLLM, bus: Any, *, name: str = "three-tasks", streaming: bool = False, **llm_kwargs: Any
) -> Crew:
    """Researcher (with ``lookup``) does tasks 0 and 2, Writer task 1; ``streaming`` is the crew's ``stream=``."""
    researcher, writer = _agents(make_llm, [lookup], llm_kwargs)
    return Crew(
        name=name,
        agents=[researcher, writer],
        tasks=[
            Task(name="research", description="Research {topic}.", expected_output="Facts.", agent=researcher),
            Task(name="draft", description="Draft a text on {topic}.", expected_output="Text.", agent=writer),
            Task(name="review", description="Review the draft on {topic}.", expected_output="OK.", agent=researcher),
        ],
        bus=bus,
        stream=streaming,
    )


def _agents(make_llm: MakeLLM, tools: list[Tool], llm_kwargs: dict[str, Any]) -> tuple[Agent, Agent]:
    researcher = Agent(
        role="Researcher", goal="Find facts.", backstory="Careful.", llm=make_llm(**llm_kwargs), tools=tools
    )
    return researcher, Agent(role="Writer", goal="Write.", backstory="Clear.", llm=make_llm(**llm_kwargs))


@tool
def add(a: int, b: int = 1) -> int:
    """Add two integers.

    Args:
        a: the first number
        b: the second number
    """
    return a + b


def tool_crew(make_llm: MakeLLM, bus: EventBus, tools: list[Any], **agent_kwargs: Any) -> Crew:
    agent = Agent(role="Calculator", goal="Compute.", backstory="Precise.", llm=make_llm(), tools=tools, **agent_kwargs)
    task = Task(name="compute", description="Compute things.", expected_output="A number.", agent=agent)
    return Crew(name="tools-crew", agents=[agent], tasks=[task], bus=bus)
