"""The two-agent CrewAI crew the integration tests (and the benchmark) run, and a way to wait for its spans."""

from __future__ import annotations

from typing import Any

from crewai import LLM, Agent, Crew, Task
from crewai.tools import tool
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.support.llms import API_KEY
from tests.support.openai_server import FakeOpenAIServer
from tests.support.polling import await_until, wait_until


@tool("search_notes")
def search_notes(query: str) -> str:
    """Search the team's notes for a query."""
    return f"three notes about {query}"


def crewai_llm(server: FakeOpenAIServer, *, is_litellm: bool = False, **kwargs: Any) -> LLM:
    kwargs.setdefault("stream", True)
    return LLM(
        model="openai/test-model",
        base_url=server.base_url,
        api_key=API_KEY,
        is_litellm=is_litellm,
        timeout=10,
        max_retries=0,
        **kwargs,
    )


def two_agent_crewai_crew(
    server: FakeOpenAIServer, *, name: str = "team", tools: bool = False, stream: bool = False, **llm: Any
) -> Crew:
    """Researcher (role template ``Researcher of {topic}``) then Writer; tasks ``research`` and ``write``."""
    researcher = Agent(
        role="Researcher of {topic}",
        goal="Find facts.",
        backstory="Careful.",
        llm=crewai_llm(server, **llm),
        tools=[search_notes] if tools else [],
        max_iter=3,
        verbose=False,
    )
    writer = Agent(role="Writer", goal="Write.", backstory="Clear.", llm=crewai_llm(server, **llm), max_iter=3)
    return Crew(
        name=name,
        agents=[researcher, writer],
        tasks=[
            Task(name="research", description="Research {topic}.", expected_output="Facts.", agent=researcher),
            Task(name="write", description="Write about {topic}.", expected_output="Text.", agent=writer),
        ],
        stream=stream,
        verbose=False,
    )


TASKS = {"research": "Researcher of {topic}", "write": "Writer"}


def _finished(exporter: InMemorySpanExporter, runs: int) -> list[ReadableSpan] | None:
    spans = exporter.get_finished_spans()
    done = [s for s in spans if s.name.startswith("invoke_workflow ")]
    return list(spans) if len(done) >= runs else None


def wait_for_runs(exporter: InMemorySpanExporter, runs: int = 1) -> list[ReadableSpan]:
    """CrewAI hands most events to a thread pool: wait (with a deadline) until the runs' spans are exported."""
    return wait_until(lambda: _finished(exporter, runs), what=f"{runs} invoke_workflow span(s)")


async def await_runs(exporter: InMemorySpanExporter, runs: int = 1) -> list[ReadableSpan]:
    return await await_until(lambda: _finished(exporter, runs), what=f"{runs} invoke_workflow span(s)")
