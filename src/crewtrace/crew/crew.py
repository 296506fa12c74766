"""``Crew``: agents working through tasks in order, and what a run returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crewtrace.crew import _run
from crewtrace.crew._flow import adrive, drive
from crewtrace.crew.agent import Agent
from crewtrace.crew.streaming import CrewStreamingOutput
from crewtrace.crew.task import Task, TaskOutput
from crewtrace.errors import ConfigurationError
from crewtrace.events.base import TokenUsage
from crewtrace.events.bus import EventBus, crewtrace_event_bus

__all__ = ["Crew", "CrewOutput"]


class CrewOutput(BaseModel):
    """A run's result: the last task's answer, every task's output, and summed token usage."""

    raw: str
    tasks_output: list[TaskOutput]
    token_usage: TokenUsage
    run_id: str

    def __str__(self) -> str:
        return self.raw


class Crew(BaseModel):
    """Runs its tasks sequentially, each by its agent, passing earlier outputs on as context."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    agents: list[Agent]
    tasks: list[Task]
    name: str | None = None
    verbose: bool = False
    stream: bool = Field(default=False, description="kickoff() returns a CrewStreamingOutput of the run's chunks.")
    bus: EventBus = Field(default=crewtrace_event_bus, exclude=True, repr=False)

    def model_post_init(self, context: Any, /) -> None:
        """Reject crews that cannot run (raised as ConfigurationError, not wrapped by pydantic)."""
        if not self.tasks:
            raise ConfigurationError("a Crew needs at least one task")
        seen: set[str] = set()
        for position, task in enumerate(self.tasks):
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
        return self.name or "crew"

    def kickoff(self, inputs: Mapping[str, Any] | None = None) -> CrewOutput | CrewStreamingOutput:
        """Run the crew; ``inputs`` fill the ``{placeholders}`` of agents and tasks.

        With ``stream=True`` it returns at once: the run starts when the chunks are iterated.
        """
        inputs = dict(inputs or {})
        steps = _run.plan(self.tasks, inputs)
        if self.stream:
            return self._streaming(steps, inputs, asynchronous=False)
        return self._output(drive(_run.run(self.bus, self, self.label, steps, inputs)))

    async def kickoff_async(self, inputs: Mapping[str, Any] | None = None) -> CrewOutput | CrewStreamingOutput:
        inputs = dict(inputs or {})
        steps = _run.plan(self.tasks, inputs)
        if self.stream:
            return self._streaming(steps, inputs, asynchronous=True)
        return self._output(await adrive(_run.run(self.bus, self, self.label, steps, inputs)))

    def _streaming(self, steps: list[_run._Step], inputs: dict[str, Any], *, asynchronous: bool) -> CrewStreamingOutput:
        def factory(run_id: str) -> _run.RunFlow:
            return _run.run(self.bus, self, self.label, steps, inputs, run_id=run_id)

        return CrewStreamingOutput(factory, self._output, self.bus, self.tasks, asynchronous=asynchronous)

    def _output(self, result: _run.RunResult) -> CrewOutput:
        output = CrewOutput(
            raw=result.tasks_output[-1].raw,
            tasks_output=result.tasks_output,
            token_usage=result.token_usage,
            run_id=result.run_id,
        )
        if self.verbose:
            for task_output in output.tasks_output:
                print(f"[{self.label}] {task_output.agent_role} / {task_output.name}:\n{task_output.raw}\n")
        return output
