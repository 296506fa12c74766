"""One crew run as a flow (see ``_flow``): tasks in order, each by its agent, with events and scopes.

:func:`prepare` fills every template and picks the run's id; :meth:`Run.flow`
is the run itself, returning the :class:`~crewtrace.crew.outputs.CrewOutput`.
Whoever drives it (``kickoff``, ``kickoff_async``, the streaming engine) hands
it the run's :class:`~crewtrace.events.scope.RunSink`: every LLM call made while
it runs, in a tool too, sends its events there.

Every phase (crew, task, agent) emits its started event inside the guard that
emits its failed event, so whatever is interrupted where (a handler raising
``KeyboardInterrupt`` on the started event included), each started phase ends
exactly once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from crewtrace.crew._agent_loop import agent_loop
from crewtrace.crew._flow import Flow
from crewtrace.crew._progress import progress_logger
from crewtrace.crew._prompt import task_messages
from crewtrace.crew._template import fill
from crewtrace.crew.agent import Agent
from crewtrace.crew.outputs import CrewOutput, TaskOutput, UsageMetrics
from crewtrace.crew.task import Task
from crewtrace.errors import error_type_of
from crewtrace.events.base import BaseEvent, TokenUsage
from crewtrace.events.bus import EventBus
from crewtrace.events.scope import ExecutionScope, RunSink, use_scope, use_sink
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
class _Step:
    """A task with every template filled for this run; the Task itself is never mutated."""

    task: Task
    agent: Agent
    role: str
    goal: str
    backstory: str
    description: str
    expected_output: str
    verbose: bool


@dataclass(frozen=True, slots=True)
class Run:
    """One kickoff, prepared: templates filled, id chosen. Nothing happens until :meth:`flow` is driven."""

    run_id: str
    crew_name: str
    source: Any
    """The ``Crew``: the source of the run's events."""
    bus: EventBus
    steps: tuple[_Step, ...]
    inputs: dict[str, Any]

    def task_positions(self) -> dict[str, int]:
        """Each task's 0-based position in the crew, by task id."""
        return {step.task.id: position for position, step in enumerate(self.steps)}

    def flow(self, sink: RunSink | None = None) -> Flow[CrewOutput]:
        """The run; ``sink`` is where its LLM calls send their events (by default: the crew's bus)."""
        return _run(self, sink or RunSink(self.bus))


def prepare(
    source: Any, crew_name: str, bus: EventBus, tasks: Sequence[Task], inputs: Mapping[str, Any], *, verbose: bool
) -> Run:
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
                verbose=verbose or agent.verbose,
            )
        )
    return Run(
        run_id=uuid.uuid4().hex, crew_name=crew_name, source=source, bus=bus, steps=tuple(steps), inputs=dict(inputs)
    )


def _run(run: Run, sink: RunSink) -> Flow[CrewOutput]:
    bus, crew = run.bus, run.source
    scope = ExecutionScope(run_id=run.run_id, crew_name=run.crew_name)
    with use_sink(sink), use_scope(scope), _phase(bus, crew, scope, CrewKickoffFailedEvent) as elapsed:
        bus.emit(crew, scope.stamp(CrewKickoffStartedEvent, inputs=dict(run.inputs)))
        outputs: dict[str, TaskOutput] = {}
        usage, requests = TokenUsage(), 0
        for step in run.steps:
            sources = step.task.context
            context = [o.raw for o in outputs.values()] if sources is None else [outputs[t.id].raw for t in sources]
            output, step_usage, step_requests = yield from _run_task(bus, scope, step, context)
            outputs[step.task.id] = output
            usage, requests = usage + step_usage, requests + step_requests
        tasks_output = list(outputs.values())
        result = CrewOutput(
            raw=tasks_output[-1].raw,
            tasks_output=tasks_output,
            token_usage=UsageMetrics.of(usage, requests),
            run_id=run.run_id,
        )
        completed = scope.stamp(CrewKickoffCompletedEvent, output=result.raw, token_usage=usage, duration_s=elapsed())
    bus.emit(crew, completed)
    return result


def _run_task(
    bus: EventBus, crew_scope: ExecutionScope, step: _Step, context: list[str]
) -> Flow[tuple[TaskOutput, TokenUsage, int]]:
    task, agent = step.task, step.agent
    # Attribution carries the role as written: filled-in inputs are content, never labels or span names.
    scope = crew_scope.within(task_id=task.id, task_name=task.label, agent_id=agent.id, agent_role=agent.label)
    if step.verbose:
        progress_logger().info("%s: task %r started by %r", crew_scope.crew_name, task.label, agent.label)
    with use_scope(scope):
        with _phase(bus, task, scope, TaskFailedEvent) as task_elapsed:
            bus.emit(
                task,
                scope.stamp(TaskStartedEvent, description=step.description, expected_output=step.expected_output),
            )
            with _phase(bus, agent, scope, AgentExecutionErrorEvent) as agent_elapsed:
                started = scope.stamp(
                    AgentExecutionStartedEvent,
                    role=step.role,
                    goal=step.goal,
                    model=agent.llm.request_model,
                    provider=agent.llm.provider,
                )
                bus.emit(agent, started)
                messages = task_messages(
                    role=step.role,
                    goal=step.goal,
                    backstory=step.backstory,
                    description=step.description,
                    expected_output=step.expected_output,
                    context=context,
                )
                answer, usage, requests = yield from agent_loop(bus, scope, agent, messages)
                agent_completed = scope.stamp(AgentExecutionCompletedEvent, output=answer, duration_s=agent_elapsed())
            bus.emit(agent, agent_completed)
            task_completed = scope.stamp(TaskCompletedEvent, output=answer, duration_s=task_elapsed())
        bus.emit(task, task_completed)
    if step.verbose:
        progress_logger().info(
            "%s: task %r done by %r in %.2f s (%d tokens in, %d out)",
            crew_scope.crew_name,
            task.label,
            agent.label,
            task_completed.duration_s,
            usage.input_tokens,
            usage.output_tokens,
        )
    output = TaskOutput(
        task_id=task.id,
        name=task.label,
        description=step.description,
        expected_output=step.expected_output,
        agent=step.role,
        raw=answer,
    )
    return output, usage, requests


@contextmanager
def _phase(bus: EventBus, source: Any, scope: ExecutionScope, failed: type[BaseEvent]) -> Iterator[Callable[[], float]]:
    """Time a phase; if it raises, emit its failed event with the cause, then re-raise.

    The completed event is emitted after the block, outside the guard: once it
    is out, a failure while delivering it must not also report the phase failed.
    """
    started = time.perf_counter()

    def elapsed() -> float:
        return time.perf_counter() - started

    try:
        yield elapsed
    except BaseException as exc:
        bus.emit(
            source,
            scope.stamp(failed, error=error_message(exc), error_type=error_type_of(exc), duration_s=elapsed()),
        )
        raise
