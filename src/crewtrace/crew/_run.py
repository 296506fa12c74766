"""One crew run as a flow (see ``_flow``): tasks in order, each by its agent, with events and scopes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from crewtrace.crew._agent_loop import agent_loop
from crewtrace.crew._flow import Flow
from crewtrace.crew._prompt import task_messages
from crewtrace.crew._template import fill
from crewtrace.crew.agent import Agent
from crewtrace.crew.task import Task, TaskOutput
from crewtrace.errors import error_type_of
from crewtrace.events.base import BaseEvent, TokenUsage
from crewtrace.events.bus import EventBus
from crewtrace.events.scope import ExecutionScope, use_scope
from crewtrace.events.types.agent import (
    AgentExecutionCompletedEvent,
    AgentExecutionErrorEvent,
    AgentExecutionStartedEvent,
)
from crewtrace.events.types.crew import (
    CrewKickoffCompletedEvent,
    CrewKickoffFailedEvent,
    CrewKickoffStartedEvent,
)
from crewtrace.events.types.task import TaskCompletedEvent, TaskFailedEvent, TaskStartedEvent
from crewtrace.redaction import error_message


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    tasks_output: list[TaskOutput]
    token_usage: TokenUsage


@dataclass(frozen=True, slots=True)
class _Step:
    """A task with every template filled for this run; the Task itself is never mutated."""

    task: Task
    agent: Agent
    role: str
    goal: str
    backstory: str
    description: str
    expected_output: str


RunFlow = Flow[RunResult]


def plan(tasks: Sequence[Task], inputs: Mapping[str, Any]) -> list[_Step]:
    """Fill every template up front, so a missing input fails before any LLM call."""
    steps = []
    for task in tasks:
        agent = task.agent
        assert agent is not None  # Crew checks this at construction
        where = f"task {task.label!r}"
        steps.append(
            _Step(
                task=task,
                agent=agent,
                role=fill(agent.role, inputs, f"the role of agent {agent.role!r}"),
                goal=fill(agent.goal, inputs, f"the goal of agent {agent.role!r}"),
                backstory=fill(agent.backstory, inputs, f"the backstory of agent {agent.role!r}"),
                description=fill(task.description, inputs, f"the description of {where}"),
                expected_output=fill(task.expected_output, inputs, f"the expected output of {where}"),
            )
        )
    return steps


def run(
    bus: EventBus, crew: Any, crew_name: str, steps: list[_Step], inputs: Mapping[str, Any], run_id: str | None = None
) -> RunFlow:
    scope = ExecutionScope(run_id=run_id or uuid.uuid4().hex, crew_name=crew_name)
    with use_scope(scope):
        bus.emit(crew, CrewKickoffStartedEvent(**scope.fields(), inputs=dict(inputs)))
        with _phase(bus, crew, scope, CrewKickoffFailedEvent) as elapsed:
            outputs: dict[str, TaskOutput] = {}
            usage = TokenUsage()
            for step in steps:
                sources = step.task.context
                context = [o.raw for o in outputs.values()] if sources is None else [outputs[t.id].raw for t in sources]
                output, step_usage = yield from _run_task(bus, scope, step, context)
                outputs[step.task.id] = output
                usage = usage + step_usage
        result = RunResult(run_id=scope.run_id or "", tasks_output=list(outputs.values()), token_usage=usage)
        final = result.tasks_output[-1].raw if result.tasks_output else ""
        bus.emit(
            crew, CrewKickoffCompletedEvent(**scope.fields(), output=final, token_usage=usage, duration_s=elapsed())
        )
    return result


def _run_task(
    bus: EventBus, crew_scope: ExecutionScope, step: _Step, context: list[str]
) -> Flow[tuple[TaskOutput, TokenUsage]]:
    scope = ExecutionScope(
        run_id=crew_scope.run_id,
        crew_name=crew_scope.crew_name,
        task_id=step.task.id,
        task_name=step.task.label,
        agent_id=step.agent.id,
        agent_role=step.role,
    )
    with use_scope(scope):
        fields = scope.fields()
        bus.emit(
            step.task,
            TaskStartedEvent(**fields, description=step.description, expected_output=step.expected_output),
        )
        with _phase(bus, step.task, scope, TaskFailedEvent) as task_elapsed:
            bus.emit(step.agent, AgentExecutionStartedEvent(**fields, goal=step.goal))
            with _phase(bus, step.agent, scope, AgentExecutionErrorEvent) as agent_elapsed:
                messages = task_messages(
                    role=step.role,
                    goal=step.goal,
                    backstory=step.backstory,
                    description=step.description,
                    expected_output=step.expected_output,
                    context=context,
                )
                answer, usage = yield from agent_loop(bus, scope, step.agent, messages)
            bus.emit(step.agent, AgentExecutionCompletedEvent(**fields, output=answer, duration_s=agent_elapsed()))
        bus.emit(step.task, TaskCompletedEvent(**fields, output=answer, duration_s=task_elapsed()))
    output = TaskOutput(
        task_id=step.task.id, name=step.task.label, description=step.description, agent_role=step.role, raw=answer
    )
    return output, usage


@contextmanager
def _phase(
    bus: EventBus, source: Any, scope: ExecutionScope, failed: Callable[..., BaseEvent]
) -> Iterator[Callable[[], float]]:
    """Time a phase; if it raises, emit its failed event with the cause, then re-raise."""
    started = time.perf_counter()

    def elapsed() -> float:
        return time.perf_counter() - started

    try:
        yield elapsed
    except BaseException as exc:
        bus.emit(
            source,
            failed(
                **scope.fields(),
                error=error_message(exc),
                error_type=error_type_of(exc),
                duration_s=elapsed(),
            ),
        )
        raise
