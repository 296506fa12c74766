"""``Crew``: agents working through tasks in order, and what a run returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, Field, field_validator

from crewtrace.crew import _run
from crewtrace.crew._flow import adrive, drive
from crewtrace.crew._model import StrictModel
from crewtrace.crew.agent import Agent
from crewtrace.crew.streaming import CrewStreamingOutput
from crewtrace.crew.task import Task, TaskOutput
from crewtrace.errors import ConfigurationError
from crewtrace.events.base import TokenUsage
from crewtrace.events.bus import EventBus, crewtrace_event_bus
from crewtrace.events.labels import label

__all__ = ["Crew", "CrewOutput"]

_SEQUENTIAL = "sequential"


class CrewOutput(BaseModel):
    """A run's result: the last task's answer, every task's output, and summed token usage."""

    raw: str
    tasks_output: list[TaskOutput]
    token_usage: TokenUsage
    run_id: str

    def __str__(self) -> str:
        return self.raw


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
        "step_callback": "listen to events with a BaseEventListener",
        "task_callback": "listen to TaskCompletedEvent with a BaseEventListener",
        "output_log_file": "use setup_telemetry(usage_log=...) or a logging handler",
    }

    agents: list[Agent]
    tasks: list[Task]
    name: str | None = None
    process: str = _SEQUENTIAL
    verbose: bool = False
    stream: bool = Field(default=False, description="kickoff() returns a CrewStreamingOutput of the run's chunks.")
    bus: EventBus = Field(default=crewtrace_event_bus, exclude=True, repr=False)

    @field_validator("process", mode="before")
    @classmethod
    def _sequential_only(cls, value: Any) -> str:
        name = str(getattr(value, "value", value))  # CrewAI's Process enum or a string
        if name != _SEQUENTIAL:
            raise ConfigurationError(
                f"Crew(process={name!r}) is not supported by crewtrace: tasks run in order (process='sequential')"
            )
        return name

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
        inputs = dict(inputs or {})
        steps = _run.plan(self.tasks, inputs, verbose=self.verbose)
        if self.stream:
            return self._streaming(steps, inputs, asynchronous=False)
        return self._output(drive(_run.run(self.bus, self, self.label, steps, inputs)))

    async def kickoff_async(self, inputs: Mapping[str, Any] | None = None) -> CrewOutput | CrewStreamingOutput:
        inputs = dict(inputs or {})
        steps = _run.plan(self.tasks, inputs, verbose=self.verbose)
        if self.stream:
            return self._streaming(steps, inputs, asynchronous=True)
        return self._output(await adrive(_run.run(self.bus, self, self.label, steps, inputs)))

    def _streaming(self, steps: list[_run._Step], inputs: dict[str, Any], *, asynchronous: bool) -> CrewStreamingOutput:
        def factory(run_id: str) -> _run.RunFlow:
            return _run.run(self.bus, self, self.label, steps, inputs, run_id=run_id)

        return CrewStreamingOutput(factory, self._output, self.bus, self.tasks, asynchronous=asynchronous)

    def _output(self, result: _run.RunResult) -> CrewOutput:
        return CrewOutput(
            raw=result.tasks_output[-1].raw,
            tasks_output=result.tasks_output,
            token_usage=result.token_usage,
            run_id=result.run_id,
        )
