"""The bar every crew path is held to (crewtrace's own crews and CrewAI's through the adapter).

Assertions on what the bridge exported: the span tree of a run, agent and task on
every chat span and metric point, and the chunk span events of a stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from tests.support.metrics import metric_points

CHUNK_EVENT = "crewtrace.stream.chunk"
AGENT = "gen_ai.agent.name"
TASK = "crewtrace.task.name"
ATTRIBUTED_METRICS = (
    "gen_ai.client.operation.duration",
    "gen_ai.client.token.usage",
    "gen_ai.client.operation.time_to_first_chunk",
    "gen_ai.client.operation.time_per_output_chunk",
    "crewtrace.stream.chunks",
)


def chat_spans(spans: Iterable[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith("chat ")]


def assert_run_tree(
    spans: Sequence[ReadableSpan], workflow: str, tasks: Mapping[str, str], *, tools: Iterable[str] = ()
) -> ReadableSpan:
    """One run: ``invoke_workflow`` → ``execute_task`` → ``invoke_agent`` → ``chat``/``execute_tool``, one trace.

    ``tasks`` maps each task name to the role of its agent. Returns the workflow span.
    """
    by_id = {s.context.span_id: s for s in spans}
    (root,) = [s for s in spans if s.name == f"invoke_workflow {workflow}"]
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}, "one trace per kickoff"
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    for task, role in tasks.items():
        (task_span,) = [s for s in spans if s.name == f"execute_task {task}"]
        (agent_span,) = [s for s in spans if s.name == f"invoke_agent {role}" and s.parent == task_span.context]
        assert task_span.parent == root.context
        assert agent_span.kind is SpanKind.INTERNAL and agent_span.attributes["gen_ai.operation.name"] == "invoke_agent"
        calls = [s for s in chat_spans(spans) if s.parent == agent_span.context]
        assert calls, f"no chat span under invoke_agent {role}"
        for span in (task_span, agent_span, *calls):
            assert span.attributes[TASK] == task and span.attributes["crewtrace.task.id"]
            assert span.attributes["gen_ai.workflow.name"] == workflow
        for span in (agent_span, *calls):
            assert span.attributes[AGENT] == role
            assert span.attributes["gen_ai.agent.id"] == agent_span.attributes["gen_ai.agent.id"]
        assert all(c.kind is SpanKind.CLIENT for c in calls)
    for tool in tools:
        found = [s for s in spans if s.name == f"execute_tool {tool}"]
        assert found, f"no execute_tool {tool} span"
        for span in found:
            parent = by_id[span.parent.span_id]
            assert parent.name.startswith("invoke_agent ") and span.attributes["gen_ai.tool.name"] == tool
    for span in spans:
        assert span.parent is None or span.parent.span_id in by_id, f"{span.name}: parent not exported"
        assert span.start_time <= span.end_time
    return root


def assert_attributed(spans: Iterable[ReadableSpan], reader: InMemoryMetricReader) -> None:
    """Agent and task on every chat span and on every point of every per-call metric."""
    for span in chat_spans(spans):
        for key in (AGENT, "gen_ai.agent.id", TASK, "crewtrace.task.id", "crewtrace.run.id"):
            assert span.attributes.get(key), f"{span.name} has no {key}"
    seen = 0
    for name in ATTRIBUTED_METRICS:
        for point in metric_points(reader, name):
            seen += 1
            assert point.attributes.get(AGENT) and point.attributes.get(TASK), f"{name} point {point.attributes}"
    assert seen, "no metric points at all"


def assert_chunk_events(chat: ReadableSpan, chunks: int) -> None:
    """First and last chunk kept alone, the rest in contiguous groups whose counts add up exactly."""
    assert chat.attributes["crewtrace.stream.chunk_count"] == chunks
    events = [e for e in chat.events if e.name == CHUNK_EVENT]
    assert chat.dropped_events == 0
    indexes = [e.attributes["crewtrace.chunk.index"] for e in events]
    counts = [e.attributes["crewtrace.chunk.count"] for e in events]
    assert (indexes[0], counts[0]) == (0, 1), "first chunk kept"
    assert (indexes[-1], counts[-1]) == (chunks - 1, 1), "last chunk kept"
    assert sum(counts) == chunks, "every chunk accounted for"
    assert all(indexes[i] + counts[i] == indexes[i + 1] for i in range(len(events) - 1)), "contiguous groups"
    stamps = [e.timestamp for e in events]
    assert stamps == sorted(stamps) and chat.start_time <= stamps[0] and stamps[-1] <= chat.end_time


def assert_separate_runs(spans: Sequence[ReadableSpan], runs: int) -> None:
    """Concurrent runs: one trace each, every chat span under its own run's agent, task and workflow."""
    by_id = {s.context.span_id: s for s in spans}
    workflows = [s for s in spans if s.name.startswith("invoke_workflow ")]
    assert len(workflows) == runs and len({w.context.trace_id for w in workflows}) == runs
    for chat in chat_spans(spans):
        agent = by_id[chat.parent.span_id]
        task = by_id[agent.parent.span_id]
        workflow = by_id[task.parent.span_id]
        assert agent.attributes["gen_ai.agent.id"] == chat.attributes["gen_ai.agent.id"]
        assert task.attributes["crewtrace.task.id"] == chat.attributes["crewtrace.task.id"]
        assert workflow.attributes["crewtrace.run.id"] == chat.attributes["crewtrace.run.id"]
        assert len({chat.context.trace_id, agent.context.trace_id, workflow.context.trace_id}) == 1
