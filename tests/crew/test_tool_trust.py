"""What a model asks of tools and what tools hand back: never a label made of content, never the end of a run.

A tool name the model makes up is content (any length, any characters): telemetry labels it ``_UNKNOWN``
(span name, ``gen_ai.tool.name``, metric label) and records the name itself only with capture on, and it
never uses up the tool label cap. A tool result that has no text form (its ``str()`` raises, or it nests
deeper than the recursion limit) goes back to the model as the tool's error, like any other bad tool call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.support.crews import add, answer_after_tools, tool_crew
from tests.support.openai_server import FakeOpenAIServer, ToolCallReply
from tests.support.recording import Recorder
from tests.support.trace_assertions import metric_points

from crewtrace import LLM, tool
from crewtrace.events import EventBus, ToolUsageErrorEvent, ToolUsageStartedEvent
from crewtrace.telemetry import OTelBridge

MakeLLM = Callable[..., LLM]

# Names a model could make up: terminal escapes, a customer's data, any length.
MADE_UP = [
    "\x1b]0;pwned\x07\x1b[2Jclear_screen",
    "lookup_customer_4111_1111_1111_1111",
    "x" * 5_000,
    "search notes for Alice Q. Customer",
    "add_",
]


def made_up_calls() -> list[ToolCallReply]:
    calls = [ToolCallReply(f"made_up_{n}", name, "{}") for n, name in enumerate(MADE_UP)]
    return [*calls, ToolCallReply("declared", "add", '{"a": 2, "b": 3}')]


def everything_exported(span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader) -> str:
    parts = []
    for span in span_exporter.get_finished_spans():
        parts += [span.name, span.status.description or "", repr(dict(span.attributes or {}))]
        parts += [f"{e.name} {dict(e.attributes or {})}" for e in span.events]
    parts.append(metric_reader.get_metrics_data().to_json())
    return "\n".join(parts)


@pytest.mark.parametrize("capture", [False, True], ids=["capture-off", "capture-on"])
def test_a_tool_name_the_model_makes_up_is_content_labelled_unknown_outside_the_cap(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    bus: EventBus,
    recorder: Recorder,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
    capture: bool,
) -> None:
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=capture, max_label_values=1, bus=bus)
    server.responder = answer_after_tools(made_up_calls())
    result = tool_crew(make_llm, bus, [add]).kickoff()
    bridge.close()
    assert result.raw.startswith("Final: Error: unknown tool"), "the model is told, and the run goes on"

    started = recorder.of(ToolUsageStartedEvent)
    assert [(e.tool_name, e.declared) for e in started] == [*((name, False) for name in MADE_UP), ("add", True)]
    assert {e.error_type for e in recorder.of(ToolUsageErrorEvent)} == {"unknown_tool"}

    tool_spans = [s for s in span_exporter.get_finished_spans() if s.name.startswith("execute_tool ")]
    assert sorted(s.name for s in tool_spans) == ["execute_tool _UNKNOWN"] * len(MADE_UP) + ["execute_tool add"]
    for span in tool_spans:
        attributes = dict(span.attributes or {})
        unknown = span.name == "execute_tool _UNKNOWN"
        assert attributes["gen_ai.tool.name"] == ("_UNKNOWN" if unknown else "add")
        requested = attributes.get("crewtrace.tool.requested_name")
        if capture and unknown:
            assert requested in MADE_UP, "with capture on, the made-up name is recorded in its own attribute"
        else:
            assert requested is None

    calls = metric_points(metric_reader, "crewtrace.tool.calls")
    assert {p.attributes["gen_ai.tool.name"]: p.value for p in calls} == {"_UNKNOWN": len(MADE_UP), "add": 1}
    assert bridge.label_value_counts()["gen_ai.tool.name"] == 1, "made-up names use none of the tool label cap"
    if not capture:
        exported = everything_exported(span_exporter, metric_reader)
        for name in MADE_UP:
            assert name not in exported, f"{name[:40]!r} was exported with capture off"
        assert "4111_1111" not in exported and "\x1b" not in exported, "no part of a made-up name"


class Unprintable:
    """A result whose ``str()`` fails, as a half-initialised object's can."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@tool
def unprintable(query: str) -> object:
    """Returns an object that cannot be turned into text."""
    return Unprintable()


@tool
def deeply_nested(depth: int) -> object:
    """Returns a list nested ``depth`` levels deep."""
    nested: list[Any] = []
    for _ in range(depth):
        nested = [nested]
    return nested


@tool
async def unprintable_async(query: str) -> object:
    """Returns, asynchronously, an object that cannot be turned into text."""
    await asyncio.sleep(0)
    return Unprintable()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["kickoff", "kickoff_async"])
def test_no_tool_result_ends_the_run(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, recorder: Recorder, asynchronous: bool
) -> None:
    calls = [
        ToolCallReply("u1", "unprintable", '{"query": "q"}'),
        ToolCallReply("u2", "unprintable_async", '{"query": "q"}'),
        ToolCallReply("n1", "deeply_nested", '{"depth": 100000}'),
        ToolCallReply("a1", "add", '{"a": 2, "b": 3}'),
    ]
    server.responder = answer_after_tools(calls)
    crew = tool_crew(make_llm, bus, [unprintable, unprintable_async, deeply_nested, add])
    result = asyncio.run(crew.kickoff_async()) if asynchronous else crew.kickoff()
    assert result.raw.endswith("| 5"), "the run went on to its answer, the good tool's result included"
    errors = {e.tool_name: e for e in recorder.of(ToolUsageErrorEvent)}
    assert set(errors) == {"unprintable", "unprintable_async", "deeply_nested"}
    assert {e.error_type for e in errors.values()} == {"invalid_result"}
    assert errors["unprintable"].error.endswith("cannot be sent as text (RuntimeError)")
    assert errors["deeply_nested"].error.endswith("cannot be sent as text (RecursionError)")
