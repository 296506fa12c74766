"""The bar every crew path is held to (crewtrace's own crews and CrewAI's through the adapter).

Assertions on what the bridge exported: the span tree of a run (a crew's, a flow's, an agent's
without a crew), attribution on every chat span and metric point, token usage, and the chunk span
events of a stream.
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
FLOW = "crewtrace.flow.name"
FLOW_RUN = "crewtrace.flow.run.id"
METHOD = "crewtrace.flow.method"
CREW_KEYS = (AGENT, "gen_ai.agent.id", TASK, "crewtrace.task.id", "crewtrace.run.id")
"""What every chat span of a crew run carries (and ``AGENT``, ``TASK`` every metric point)."""
AGENT_KEYS = (AGENT, "gen_ai.agent.id", "crewtrace.run.id")
"""What every chat span of an agent kicked off without a crew carries."""
FLOW_KEYS = (FLOW, FLOW_RUN, METHOD)
"""What every chat span of a flow run carries (and ``FLOW``, ``METHOD`` every metric point)."""
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


def assert_attributed(
    spans: Iterable[ReadableSpan],
    reader: InMemoryMetricReader,
    *,
    keys: Sequence[str] = CREW_KEYS,
    labels: Sequence[str] = (AGENT, TASK),
) -> None:
    """``keys`` on every chat span, ``labels`` on every point of every per-call metric (agent and task by default)."""
    for span in chat_spans(spans):
        for key in keys:
            assert span.attributes.get(key), f"{span.name} has no {key}"
    seen = 0
    for name in ATTRIBUTED_METRICS:
        for point in metric_points(reader, name):
            seen += 1
            assert all(point.attributes.get(label) for label in labels), f"{name} point {point.attributes}"
    assert seen, "no metric points at all"


def assert_usage(spans: Iterable[ReadableSpan], reader: InMemoryMetricReader) -> None:
    """Token usage on every chat span, and the token metric adds up to what the spans say."""
    chats = chat_spans(spans)
    assert chats, "no chat spans"
    for chat in chats:
        assert chat.attributes.get("gen_ai.usage.input_tokens"), f"{chat.name} has no input tokens"
        assert chat.attributes.get("gen_ai.usage.output_tokens"), f"{chat.name} has no output tokens"
    points = metric_points(reader, "gen_ai.client.token.usage")
    for token_type, key in (("input", "gen_ai.usage.input_tokens"), ("output", "gen_ai.usage.output_tokens")):
        recorded = sum(p.sum for p in points if p.attributes["gen_ai.token.type"] == token_type)
        assert recorded == sum(c.attributes[key] for c in chats), f"{token_type} tokens counted once each"


def assert_one_trace(spans: Sequence[ReadableSpan]) -> None:
    """All in one trace, every parent exported, every span ended after it started."""
    by_id = {s.context.span_id for s in spans}
    assert len({s.context.trace_id for s in spans}) == 1, sorted({s.name for s in spans})
    for span in spans:
        assert span.parent is None or span.parent.span_id in by_id, f"{span.name}: parent not exported"
        assert span.start_time <= span.end_time


def children(spans: Iterable[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    """The spans directly under ``parent``, in start order."""
    return sorted((s for s in spans if s.parent == parent.context), key=lambda s: s.start_time)


def assert_flow_tree(spans: Sequence[ReadableSpan], flow: str, methods: Mapping[str, Iterable[str]]) -> ReadableSpan:
    """One flow run, one trace: ``invoke_workflow {flow}`` → ``execute_flow_method {method}`` → what ran in it.

    ``methods`` maps each method to the names of spans that must sit right under it (a crew's
    ``invoke_workflow``, a ``chat``, an ``invoke_agent``). Every span of the trace carries the
    flow's name and run id. Returns the flow span.
    """
    assert_one_trace(spans)
    (root,) = [s for s in spans if s.name == f"invoke_workflow {flow}"]
    assert root.parent is None and root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["gen_ai.workflow.name"] == flow
    for span in spans:
        assert span.attributes[FLOW] == flow and span.attributes[FLOW_RUN] == root.attributes[FLOW_RUN], span.name
    for method, inside in methods.items():
        (method_span,) = [s for s in spans if s.name == f"execute_flow_method {method}"]
        assert method_span.parent == root.context and method_span.attributes[METHOD] == method
        names = [s.name for s in children(spans, method_span)]
        for name in inside:
            assert name in names, f"no {name} under {method}: {names}"
    return root


def assert_agent_tree(spans: Sequence[ReadableSpan], role: str, *, tools: Iterable[str] = ()) -> ReadableSpan:
    """An agent kicked off without a crew: one trace under ``invoke_agent {role}``, its calls and tools below."""
    assert_one_trace(spans)
    (root,) = [s for s in spans if s.name == f"invoke_agent {role}" and s.parent is None]
    below = children(spans, root)
    assert [s for s in below if s.name.startswith("chat ")], f"no chat span under invoke_agent {role}"
    for tool in tools:
        assert f"execute_tool {tool}" in [s.name for s in below], f"no execute_tool {tool} under the agent"
    for span in [root, *below]:
        assert span.attributes[AGENT] == role
        assert span.attributes["gen_ai.agent.id"] == root.attributes["gen_ai.agent.id"]
    return root


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
