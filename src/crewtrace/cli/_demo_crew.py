"""The demo's crew: two agents (the researcher with a tool) and two tasks, on the offline model or a real one.

Importing this module imports litellm (seconds on a cold start): ``crewtrace demo`` checks its
options first.
"""

from __future__ import annotations

from crewtrace.cli._offline_model import Script, ScriptedToolCall
from crewtrace.cli._offline_model import install as install_offline_model
from crewtrace.crew import Agent, Crew, Task, tool
from crewtrace.events import EventBus
from crewtrace.llm import LLM

__all__ = ["DEFAULT_TOPIC", "build_crew"]

DEFAULT_TOPIC = "observability for LLM agent crews"

_NOTES = {
    "streaming": "Every streamed chunk carries its agent and task, so slow agents stand out.",
    "latency": "Time to first chunk matters more to users than total duration.",
    "cost": "Token usage per task type shows where the money goes.",
}


def offline_scripts(topic: str) -> dict[str, Script]:
    """What the offline model says, per agent role (tool calls first where the agent has tools)."""
    return {
        "Researcher": Script(
            answer=(
                f"Key findings on {topic}: 1) every streamed chunk carries its agent and task, so slow agents "
                "stand out; 2) time to first chunk matters more to users than total duration; "
                "3) token usage per task type shows where the money goes."
            ),
            tool_calls=(
                ScriptedToolCall("search_notes", {"query": "streaming"}),
                ScriptedToolCall("search_notes", {"query": "latency"}),
            ),
        ),
        "Writer": Script(
            answer=(
                f"Summary of {topic}: crews stream their answers chunk by chunk. Tracing each chunk with its "
                "agent and task turns a black box into a timeline you can debug, meter and alert on."
            )
        ),
    }


@tool
def search_notes(query: str) -> str:
    """Search the team's research notes.

    Args:
        query: a keyword such as streaming, latency or cost
    """
    hits = [note for key, note in _NOTES.items() if key in query.lower()]
    return "\n".join(hits) or f"no notes about {query!r}"


def build_crew(model: str | None, base_url: str | None, bus: EventBus, topic: str = DEFAULT_TOPIC) -> Crew:
    """Two agents (the researcher with a tool), two tasks. ``model=None`` runs the offline model."""
    if model is None:
        model = install_offline_model(offline_scripts(topic))
    researcher = Agent(
        role="Researcher",
        goal="Find the three facts about {topic} that matter most.",
        backstory="A methodical analyst who checks her notes before she answers.",
        llm=LLM(model, stream=True, base_url=base_url, bus=bus),
        tools=[search_notes],
    )
    writer = Agent(
        role="Writer",
        goal="Explain {topic} to a busy engineer in two sentences.",
        backstory="A technical writer who hates filler.",
        llm=LLM(model, stream=True, base_url=base_url, bus=bus),
    )
    research = Task(
        name="research_topic",
        description="Research {topic} and list the key findings.",
        expected_output="Three numbered findings.",
        agent=researcher,
    )
    summary = Task(
        name="write_summary",
        description="Write a two-sentence summary of the findings on {topic}.",
        expected_output="Two sentences.",
        agent=writer,
    )
    return Crew(name="demo-crew", agents=[researcher, writer], tasks=[research, summary], bus=bus, stream=True)
