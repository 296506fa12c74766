"""``Crew``: agents working through tasks in order."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, ClassVar

from pydantic import Field, field_validator

from crewtrace.crew import _run
from crewtrace.crew._flow import adrive, drive
from crewtrace.crew._model import StrictModel
from crewtrace.crew.agent import Agent
from crewtrace.crew.outputs import CrewOutput
from crewtrace.crew.streaming import CrewStreamingOutput
from crewtrace.crew.task import Task
from crewtrace.errors import ConfigurationError
from crewtrace.events.bus import EventBus, crewtrace_event_bus
from crewtrace.events.labels import label

__all__ = ["Crew", "Process"]


class Process(str, Enum):
    """How a crew works through its tasks, as CrewAI spells it; crewtrace runs ``sequential`` only."""

    sequential = "sequential"
    hierarchical = "hierarchical"


class Crew(StrictModel):
    """Runs its tasks sequentially, each by its agent, passing earlier outputs on as context.

    ``verbose=True`` (here, or on an agent for its tasks) logs each task's progress
    (names, durations, token counts; never prompts or answers) on the ``crewtrace.crew``
    logger, to stderr when logging is not configured.
    """

    unsupported: ClassVar[Mapping[str, str]] = {
        "manager_llm": "there is no manager: tasks run in order (process='sequential')",
        "manager_agent": "there is no manager: tasks run in order (process='sequential')",
        "planning": "there is no planning step; describe the steps in the tasks",
        "planning_llm": "there is no planning step; describe the steps in the tasks",
        "memory": "crews keep no memory between runs; pass what matters as kickoff(inputs=...)",
        "embedder": "crews keep no memory, so they need no embedder",
        "knowledge_sources": "put the knowledge in the task descriptions or a tool",
        "max_rpm": "rate limits are the provider's: set them in litellm",
        "cache": "tool results are not cached: every tool call runs",
        "function_calling_llm": "tools are called by each agent's own llm",
        "share_crew": "crewtrace shares nothing with anyone",
        "step_callback": "listen to events with a BaseEventListener",
        "task_callback": "listen to TaskCompletedEvent with a BaseEventListener",
        "output_log_file": "use setup_telemetry(usage_log=...) or a logging handler",
    }

    agents: list[Agent]
    tasks: list[Task]
    name: str | None = None
    process: Process = Process.sequential
    verbose: bool = False
    stream: bool = Field(default=False, description="kickoff() returns a CrewStreamingOutput of the run's chunks.")
    bus: EventBus = Field(default=crewtrace_event_bus, exclude=True, repr=False)

    @field_validator("process", mode="before")
    @classmethod
    def _sequential_only(cls, value: Any) -> Process:
        name = str(getattr(value, "value", value))  # a Process (crewtrace's or CrewAI's) or a string
        if name != Process.sequential.value:
            raise ConfigurationError(
                f"Crew(process={name!r}) is not supported by crewtrace: tasks run in order (process='sequential')"
            )
        return Process.sequential

    def model_post_init(self, context: Any, /) -> None:
        """Reject crews that cannot run (raised as ConfigurationError, not wrapped by pydantic)."""
        if not self.tasks:
            raise ConfigurationError("a Crew needs at least one task")
        seen: set[str] = set()
        for position, task in enumerate(self.tasks):
            if task.id in seen:
                raise ConfigurationError(
                    f"task {position} ({task.label!r}) is listed twice: a task runs once per kickoff; "
                    "create a second Task to do the work again"
                )
            if task.agent is None:
                raise ConfigurationError(
                    f"task {position} ({task.label!r}) has no agent: pass Task(..., agent=one_of_your_agents)"
                )
            for earlier in task.context or ():
                if earlier.id not in seen:
                    raise ConfigurationError(
                        f"task {task.label!r} takes context from {earlier.label!r}, which does not run before it"
                    )
            seen.add(task.id)

    @property
    def label(self) -> str:
        """The crew's name in events and telemetry; ``crew`` when it has none."""
        return label(self.name, fallback="crew")

    def kickoff(self, inputs: Mapping[str, Any] | None = None) -> CrewOutput | CrewStreamingOutput:
        """Run the crew; ``inputs`` fill the ``{placeholders}`` of agents and tasks.

        With ``stream=True`` it returns at once: the run starts when the chunks are iterated.
        """
        run = self._prepare(inputs)
        if self.stream:
            return CrewStreamingOutput(run, asynchronous=False)
        return drive(run.flow())

    async def kickoff_async(self, inputs: Mapping[str, Any] | None = None) -> CrewOutput | CrewStreamingOutput:
        """``kickoff()`` for asyncio: async tools run in the caller's loop; a stream is read with ``async for``."""
        run = self._prepare(inputs)
        if self.stream:
            return CrewStreamingOutput(run, asynchronous=True)
        return await adrive(run.flow())

    async def akickoff(self, inputs: Mapping[str, Any] | None = None) -> CrewOutput | CrewStreamingOutput:
        """CrewAI's name for its native asyncio kickoff: :meth:`kickoff_async`."""
        return await self.kickoff_async(inputs)

    def _prepare(self, inputs: Mapping[str, Any] | None) -> _run.Run:
        return _run.prepare(self, self.label, self.bus, self.tasks, inputs or {}, verbose=self.verbose)
