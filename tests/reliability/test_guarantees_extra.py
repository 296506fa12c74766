"""Promises of docs/guarantees.md that the rest of the fault suite did not check on their own.

- The export log filter lets each distinct message through once a minute and says how many
  repeats it held back (test_backend_down checks that no message repeats within a run).
- Every way of walking away from a stream releases its HTTP connection (test_abandoned_streams
  checks this once, after 1,000 streams of mixed ways; the ways are in tests/support/walking_away.py).
- The SDK's own span metrics (the queue_full drop counter among them) are exported over OTLP,
  not only on ``/metrics``.
- The agent, model and tool labels are capped like the task and error labels.
- A failed call's ``__cause__`` is a sanitised stand-in for the provider's exception.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from tests.support.llms import API_KEY, MakeLLM
from tests.support.metrics import metric_points
from tests.support.openai_server import FakeOpenAIServer, Fault, Reply
from tests.support.otlp_receiver import OTLPHttpReceiver
from tests.support.pipeline import Pipeline
from tests.support.polling import wait_until
from tests.support.synthetic import emit_call
from tests.support.walking_away import ASYNC_WAYS, CHUNKS, SYNC_WAYS, settle

from crewtrace import LLM, LLMCallError
from crewtrace.events import (
    EventBus,
    ToolUsageFinishedEvent,
    ToolUsageStartedEvent,
)
from crewtrace.telemetry import OTelBridge, Telemetry, _log_filter

EVERY_WAY: list[Callable[[LLM], Any]] = [*SYNC_WAYS, *ASYNC_WAYS]
# One of the SDK's export loggers that the SDK gives no filter of its own (its DuplicateFilter would
# drop a repeat before crewtrace's filter could count it).
EXPORT_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def test_the_export_log_filter_passes_each_message_once_a_minute_and_counts_the_repeats(
    bus: EventBus,
    telemetries: Callable[..., Telemetry],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(_log_filter, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    telemetry = telemetries("svc-repeats", bus=bus)
    logger = logging.getLogger(EXPORT_LOGGER)
    caplog.set_level(logging.WARNING, logger=EXPORT_LOGGER)

    def passed() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == EXPORT_LOGGER]

    logger.warning("Failed to export span batch code: %s", 503)
    for _ in range(3):
        now[0] += 19.0
        logger.warning("Failed to export span batch code: %s", 503)  # 19, 38, 57 s later: held back
    logger.warning("Another problem: %s", "refused")  # a distinct message passes at once
    assert passed() == ["Failed to export span batch code: 503", "Another problem: refused"]

    now[0] += 3.0  # 60 s after the first one passed
    logger.warning("Failed to export span batch code: %s", 503)
    assert passed()[-1] == "Failed to export span batch code: 503 [3 more like this in the last 60 s]"

    telemetry.shutdown(timeout=2.0)
    caplog.clear()
    for _ in range(3):
        logger.warning("Failed to export span batch code: %s", 503)
    assert len(passed()) == 3, "shutdown() takes the filter off the SDK's loggers"


@pytest.mark.parametrize("way", EVERY_WAY, ids=lambda f: f.__name__)
def test_every_way_of_walking_away_releases_the_http_connection(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline, way: Callable[[LLM], Any]
) -> None:
    """Five streams abandoned in a row: a connection not released would stay open on the server, one per stream."""
    server.responder = lambda body: Reply(chunks=CHUNKS)
    llm = make_llm()

    async def abandon_async() -> None:
        for _ in range(5):
            await way(llm)
        await settle(pipeline.bridge)

    if way in ASYNC_WAYS:
        asyncio.run(abandon_async())
    else:
        for _ in range(5):
            way(llm)
    assert len(server.requests) == 5
    wait_until(lambda: server.open_connections <= 1, what=f"released connections, {server.open_connections} open")
    assert len(pipeline.chat_spans()) == 5


def test_the_sdks_own_span_metrics_are_exported_over_otlp(
    make_llm: MakeLLM, bus: EventBus, telemetries: Callable[..., Telemetry], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")  # the SDK's own switch
    with OTLPHttpReceiver() as receiver:
        telemetry = telemetries(
            "svc-sdk-metrics", otlp_endpoint=receiver.endpoint, otlp_protocol="http/protobuf", bus=bus
        )
        make_llm().call("hello")
        assert telemetry.shutdown(timeout=5.0) is True
        names = receiver.metric_names()
    assert {
        "otel.sdk.span.started",
        "otel.sdk.span.live",
        "otel.sdk.processor.span.processed",
    } <= names, sorted(names)
    assert "gen_ai.client.operation.duration" in names


def test_agent_model_and_tool_labels_are_capped_too(
    tracer_provider: TracerProvider, meter_provider: MeterProvider, metric_reader: InMemoryMetricReader, bus: EventBus
) -> None:
    bridge = OTelBridge(tracer_provider, meter_provider, max_label_values=3, bus=bus)
    for n in range(10):
        emit_call(bus, f"c{n}", stream=False, model=f"openai/model-{n}", task_name="T", agent_role=f"Agent {n}")
    for n in range(10):  # by an agent/task pair already admitted, so that only the tool label overflows
        tool: dict[str, Any] = {"tool_name": f"tool_{n}", "declared": True, "tool_call_id": f"t{n}", "arguments": "{}"}
        tool["iteration"] = 0
        bus.emit(None, ToolUsageStartedEvent(**tool, agent_role="Agent 0", task_name="T"))
        bus.emit(
            None, ToolUsageFinishedEvent(**tool, agent_role="Agent 0", task_name="T", output="ok", duration_s=0.01)
        )
    bridge.close()

    durations = metric_points(metric_reader, "gen_ai.client.operation.duration")
    assert {p.attributes["gen_ai.request.model"] for p in durations} == {
        "openai/model-0",
        "openai/model-1",
        "openai/model-2",
        "_OTHER",
    }
    assert {p.attributes["gen_ai.agent.name"] for p in durations} == {"Agent 0", "Agent 1", "Agent 2", "_OTHER"}
    assert sum(p.count for p in durations) == 10, "capping loses no measurement"
    tool_calls = metric_points(metric_reader, "crewtrace.tool.calls")
    assert {p.attributes["gen_ai.tool.name"] for p in tool_calls} == {"tool_0", "tool_1", "tool_2", "_OTHER"}
    assert sum(p.value for p in tool_calls) == 10


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
def test_a_failed_call_chains_a_sanitised_stand_in_for_the_providers_exception(
    server: FakeOpenAIServer, bus: EventBus, stream: bool
) -> None:
    server.responder = lambda body: Reply(chunks=CHUNKS, fault=Fault.STATUS_429)
    llm = LLM("openai/test-model", stream=stream, base_url=server.base_url, api_key=API_KEY, bus=bus, num_retries=0)
    with pytest.raises(LLMCallError) as caught:
        llm.call("hello")
    cause = caught.value.__cause__
    assert type(cause).__name__ == "ProviderError"
    assert str(cause).startswith("RateLimitError: "), "the stand-in names the provider's exception"
    assert cause is not None and cause.__traceback__ is None, "no frame of the provider's: their locals hold the key"
    provider_traceback = getattr(cause, "provider_traceback", "")
    assert "Traceback (most recent call last)" in provider_traceback, "the original traceback, as text"
    assert "RateLimitError" in provider_traceback
    assert API_KEY not in str(cause) and API_KEY not in provider_traceback
