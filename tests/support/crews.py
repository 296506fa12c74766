"""The two-agent crew that several test modules run against the fake server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crewtrace import LLM, Agent, Crew, Task


def two_agent_crew(make_llm: Callable[..., LLM], bus: Any, *, name: str, **llm_kwargs: Any) -> Crew:
    """Researcher then Writer, tasks ``research`` and ``write``: one trace with 2 chat spans per run."""
    researcher = Agent(role="Researcher", goal="Find facts.", backstory="Careful.", llm=make_llm(**llm_kwargs))
    writer = Agent(role="Writer", goal="Write.", backstory="Clear.", llm=make_llm(**llm_kwargs))
    return Crew(
        name=name,
        agents=[researcher, writer],
        tasks=[
            Task(name="research", description="Research {topic}.", expected_output="Facts.", agent=researcher),
            Task(name="write", description="Write about {topic}.", expected_output="Text.", agent=writer),
        ],
        bus=bus,
    )
