"""Real CrewAI under ``instrument_crewai()``: its keys, the tool names its model makes up and odd usage
data get the same treatment as on crewtrace's own crews.

- Every API key the adapter can see (a CrewAI LLM's ``api_key``, given or read from the provider's
  variable; any shape, not only ``sk-...``) is redacted from everything crewtrace records, capture on or off.
- A tool name that is not one of the agent's tools is content: ``_UNKNOWN`` in telemetry, outside the cap.
- Token counts that are not integers never leave a span open or a stream counted as active.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

if os.environ.get("CI") != "true":  # under CI the test extra has installed CrewAI: a missing one fails there
    pytest.importorskip("crewai", reason="needs CrewAI: pip install -e '.[test,crewai]' (make test uses .venv-crewai)")
from crewai import LLM as CrewAILLM
from crewai import Agent, Crew, Task
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.integrations.crewai_crews import two_agent_crewai_crew, wait_for_runs
from tests.support.openai_server import FakeOpenAIServer, Reply, ToolCallReply
from tests.support.polling import wait_until
from tests.support.recording import Recorder
from tests.support.trace_assertions import chat_spans, metric_points

from crewtrace.events import (
    BaseEvent,
    CrewKickoffCompletedEvent,
    CrewKickoffFailedEvent,
    EventBus,
    LLMCallCompletedEvent,
    ToolUsageStartedEvent,
)
from crewtrace.telemetry import OTelBridge

ECHO = "upstream refused the credentials"


@pytest.fixture
def telemetry(
    request: pytest.FixtureRequest,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    bus: EventBus,
    instrumentation: Any,
) -> Iterator[OTelBridge]:
    """The bridge, with content capture as the test's ``capture`` parameter says (off if it has none)."""
    capture = bool(getattr(request, "param", False))
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=capture, bus=bus)
    yield bridge
    bridge.close()


def exported(spans: list[ReadableSpan], reader: InMemoryMetricReader) -> str:
    """Every text telemetry wrote: span names, status descriptions, attributes, events; metric points."""
    parts = []
    for span in spans:
        parts += [span.name, span.status.description or "", repr(dict(span.attributes or {}))]
        parts += [f"{e.name} {dict(e.attributes or {})}" for e in span.events]
    parts.append(reader.get_metrics_data().to_json())
    return "\n".join(parts)


# -- every key the adapter can see is redacted ---------------------------------------------------------


def echoing(key: str) -> Callable[[dict[str, Any]], Reply]:
    def respond(body: dict[str, Any]) -> Reply:
        raise RuntimeError(f"{ECHO} {key}")  # the server's 500 echoes the key, as a misconfigured proxy might

    return respond


@pytest.mark.parametrize("telemetry", [False, True], ids=["capture-off", "capture-on"], indirect=True)
@pytest.mark.parametrize("key_source", ["arg", "env"])
def test_a_crewai_key_of_any_shape_echoed_by_the_provider_is_redacted_everywhere(
    server: FakeOpenAIServer,
    bus: EventBus,
    telemetry: OTelBridge,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    key_source: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = f"zz{uuid.uuid4().hex}"  # no key shape, and new to this process: only registering it can redact it
    if key_source == "env":
        monkeypatch.setenv("OPENAI_API_KEY", key)
    server.responder = echoing(key)
    recorder = Recorder(bus)
    llm = CrewAILLM(
        model="openai/test-model",
        base_url=server.base_url,
        api_key=key if key_source == "arg" else None,
        stream=True,
        max_retries=0,
        timeout=10,
    )
    assert llm.api_key == key
    agent = Agent(role="Keeper", goal="Guard.", backstory="Discreet.", llm=llm, max_iter=1, max_retry_limit=0)
    crew = Crew(name="keys", agents=[agent], tasks=[Task(description="d", expected_output="e", agent=agent)])
    caplog.set_level(logging.DEBUG, logger="crewtrace")
    with pytest.raises(Exception, match=ECHO):  # CrewAI raises its own error, the key in it: CrewAI's business
        crew.kickoff()
    spans = wait_for_runs(span_exporter)
    wait_until(lambda: recorder.of(CrewKickoffFailedEvent), what="the run's failed event")
    failed = [e for e in recorder.events if getattr(e, "error", None)]
    assert failed and all(ECHO in e.error for e in failed), "the provider's message is kept, less the key"
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)
    if telemetry.capture_content:
        assert any(ECHO in (s.status.description or "") for s in spans), "capture on: the status has the message"
    where = {
        "spans and metrics": exported(list(spans), metric_reader),
        "events on the bus": "\n".join(e.model_dump_json() for e in recorder.events),
        "crewtrace's log records": "\n".join(
            f"{r.getMessage()} {r.exc_text or ''} {json.dumps(r.__dict__, default=str)}"
            for r in caplog.records
            if r.name.startswith("crewtrace")
        ),
    }
    assert [name for name, text in where.items() if key in text] == [], "the key leaked"


# -- a tool name the model makes up is content -----------------------------------------------------------

MADE_UP = "\x1b]0;pwned\x07lookup_customer_4111_1111"


@pytest.mark.parametrize("telemetry", [False, True], ids=["capture-off", "capture-on"], indirect=True)
def test_a_tool_name_the_crewai_model_makes_up_is_labelled_unknown_outside_the_cap(
    server: FakeOpenAIServer,
    bus: EventBus,
    telemetry: OTelBridge,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    recorder = Recorder(bus)
    server.queue(
        Reply(chunks=[], tool_calls=[ToolCallReply("call_made_up", MADE_UP, "{}")]),
        Reply(chunks=[], tool_calls=[ToolCallReply("call_declared", "search_notes", '{"query": "otel"}')]),
        Reply(chunks=["Final Answer: ", "done"]),
        Reply(chunks=["Final Answer: ", "written"]),
    )
    two_agent_crewai_crew(server, tools=True).kickoff(inputs={"topic": "otel"})
    spans = wait_for_runs(span_exporter)
    started = recorder.of(ToolUsageStartedEvent)
    assert [e.declared for e in started] == [False, True], [e.tool_name for e in started]
    assert started[1].tool_name == "search_notes"
    tools = sorted((s.name, s.attributes["gen_ai.tool.name"]) for s in spans if s.name.startswith("execute_tool "))
    assert tools == [("execute_tool _UNKNOWN", "_UNKNOWN"), ("execute_tool search_notes", "search_notes")]
    calls = metric_points(metric_reader, "crewtrace.tool.calls")
    assert {p.attributes["gen_ai.tool.name"] for p in calls} == {"_UNKNOWN", "search_notes"}
    assert telemetry.label_value_counts()["gen_ai.tool.name"] == 1, "the made-up name uses none of the cap"
    (unknown,) = [s for s in spans if s.name == "execute_tool _UNKNOWN"]
    requested = (unknown.attributes or {}).get("crewtrace.tool.requested_name")
    if telemetry.capture_content:
        assert requested == started[0].tool_name, "with capture on, the name the model asked for, in its own attribute"
    else:
        assert requested is None
        assert "4111_1111" not in exported(list(spans), metric_reader), "capture off: the made-up name is nowhere"


# -- token counts that are not integers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": "many", "completion_tokens": 3, "total_tokens": 5},
        {"prompt_tokens": 2.5, "completion_tokens": 3, "total_tokens": 5},
        {"prompt_tokens": {"n": 2}, "completion_tokens": 3, "total_tokens": 5},
    ],
    ids=["text", "fraction", "dict"],
)
@pytest.mark.parametrize("is_litellm", [False, True], ids=["native", "litellm"])
def test_token_counts_that_are_not_integers_leave_no_span_open_and_no_stream_active(
    server: FakeOpenAIServer,
    bus: EventBus,
    telemetry: OTelBridge,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    usage: dict[str, Any],
    is_litellm: bool,
) -> None:
    recorder = Recorder(bus)
    server.responder = lambda body: Reply(chunks=["Final Answer: ", "odd", " usage"], usage=usage)
    with contextlib.suppress(Exception):  # CrewAI (or litellm under it) may refuse the reply itself: its business
        two_agent_crewai_crew(server, is_litellm=is_litellm).kickoff(inputs={"topic": "odd"})
    wait_until(
        lambda: recorder.of(CrewKickoffCompletedEvent) or recorder.of(CrewKickoffFailedEvent), what="the run's end"
    )
    spans = wait_for_runs(span_exporter)
    assert telemetry.open_spans() == (), "every span ended"
    assert chat_spans(spans), "the calls were recorded"
    assert all(p.value == 0 for p in metric_points(metric_reader, "crewtrace.stream.active"))
    for completed in recorder.of(LLMCallCompletedEvent):
        assert completed.usage is None or completed.usage.input_tokens >= 0
    assert all(isinstance(e, BaseEvent) for e in recorder.events)
