"""Odd data from a provider (a cost or token counts that are not numbers) never loses the answer,
never leaves a span open, and never escapes the error tree.

Real HTTP against the local server, on both stream paths (``openai/`` read directly, ``hosted_vllm/``
through litellm's wrapper) and without streaming, with the real bridge recording spans and metrics.
Where crewtrace reads the reply itself (the direct path), the answer is kept and the odd value left
out with a warning; where litellm itself refuses the reply (its wrapper, a non-streamed response), the
call fails inside crewtrace's error tree, with a failed event, and its span ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.support.llms import API_KEY
from tests.support.openai_server import FakeOpenAIServer, Reply
from tests.support.recording import Recorder
from tests.support.trace_assertions import metric_points

from crewtrace import LLM, CrewtraceError, LLMError
from crewtrace.events import EventBus, LLMCallCompletedEvent, LLMCallFailedEvent, TokenUsage
from crewtrace.telemetry import OTelBridge

PATHS = {"direct": "openai/gpt-4o-mini", "wrapped": "hosted_vllm/gpt-4o-mini"}
CHUNKS = ["The ", "answer ", "arrived ", "whole."]
ANSWER = "".join(CHUNKS)


@dataclass
class Call:
    """One call's outcome as the application and the telemetry saw it."""

    text: str | None
    error: BaseException | None
    recorder: Recorder
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    bridge: OTelBridge

    def assert_ended_cleanly(self) -> None:
        """One end event, no span left open, no stream left active, nothing outside the error tree."""
        assert self.error is None or isinstance(self.error, CrewtraceError), repr(self.error)
        ends = [e for e in self.recorder.events if isinstance(e, (LLMCallCompletedEvent, LLMCallFailedEvent))]
        assert len(ends) == 1, [e.type for e in self.recorder.events]
        assert self.bridge.open_spans() == ()
        (chat,) = [s for s in self.spans.get_finished_spans() if s.name.startswith("chat ")]
        failed = isinstance(ends[0], LLMCallFailedEvent)
        assert (chat.status.status_code is StatusCode.ERROR) is failed
        assert all(p.value == 0 for p in metric_points(self.reader, "crewtrace.stream.active"))


@pytest.fixture
def call(
    server: FakeOpenAIServer,
    bus: EventBus,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
) -> Iterator[Any]:
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=False, bus=bus)
    recorder = Recorder(bus)

    def make(path: str, stream: bool, usage: dict[str, Any]) -> Call:
        server.responder = lambda body: Reply(chunks=CHUNKS, usage=usage)
        llm = LLM(PATHS[path], stream=stream, base_url=server.base_url, api_key=API_KEY, bus=bus, num_retries=0)
        text, error = None, None
        try:
            text = llm.call("hello")
        except Exception as exc:
            error = exc
        return Call(text, error, recorder, span_exporter, metric_reader, bridge)

    yield make
    bridge.close()


ODD_COSTS = {"text": "0.5 dollars", "dict": {"usd": 0.5}, "list": [0.5], "negative": -1, "bool": True}


@pytest.mark.parametrize("cost", ODD_COSTS.values(), ids=ODD_COSTS.keys())
@pytest.mark.parametrize(("path", "stream"), [("direct", True), ("wrapped", True), ("direct", False)])
def test_a_cost_that_is_not_a_number_never_fails_a_call_that_arrived_whole(
    call: Any, path: str, stream: bool, cost: object, caplog: pytest.LogCaptureFixture
) -> None:
    usage = {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6, "cost": cost}
    with caplog.at_level(logging.WARNING, logger="crewtrace.llm"):
        outcome = call(path, stream, usage)
    assert outcome.error is None, repr(outcome.error)
    assert outcome.text == ANSWER, "the answer is kept"
    outcome.assert_ended_cleanly()
    (completed,) = outcome.recorder.of(LLMCallCompletedEvent)
    assert completed.usage == TokenUsage(input_tokens=2, output_tokens=4)
    assert completed.cost_usd is None or completed.cost_usd > 0, "litellm's price, if it has one, never the odd value"
    if path == "direct":  # crewtrace read the provider's cost itself: it says it set it aside
        assert completed.cost_usd is not None, "gpt-4o-mini is in litellm's price map"
        assert "usage.cost is not a number" in caplog.text


ODD_COUNTS = {
    "text": ("many", 4),
    "fraction": (2.5, 4),
    "negative": (-2, 4),
    "dict": ({"n": 2}, 4),
    "beyond int64": (2**64, 4),
}


@pytest.mark.parametrize("counts", ODD_COUNTS.values(), ids=ODD_COUNTS.keys())
@pytest.mark.parametrize(("path", "stream"), [("direct", True), ("wrapped", True), ("direct", False)])
def test_token_counts_that_are_not_integers_never_lose_the_answer_or_escape_the_error_tree(
    call: Any, path: str, stream: bool, counts: tuple[object, object], caplog: pytest.LogCaptureFixture
) -> None:
    prompt, completion = counts
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": 6}
    with caplog.at_level(logging.WARNING, logger="crewtrace.llm"):
        outcome = call(path, stream, usage)
    outcome.assert_ended_cleanly()
    if outcome.error is None:
        assert outcome.text == ANSWER, "the answer is kept"
        (completed,) = outcome.recorder.of(LLMCallCompletedEvent)
        assert completed.usage is None, "counts that are not token counts are left out, not guessed"
        assert "token counts that are not whole numbers" in caplog.text
        assert metric_points(outcome.reader, "gen_ai.client.token.usage") == []
    else:  # litellm itself refused the reply: crewtrace's error, with a failed event
        assert isinstance(outcome.error, LLMError)
        assert outcome.recorder.of(LLMCallFailedEvent)
    if path == "direct" and stream:
        assert outcome.error is None, "crewtrace reads this stream itself: nothing odd in it may lose the answer"


@pytest.mark.parametrize(("path", "stream"), [("direct", True), ("wrapped", True), ("direct", False)])
def test_whole_numbers_sent_as_floats_or_digit_strings_are_counted(call: Any, path: str, stream: bool) -> None:
    outcome = call(path, stream, {"prompt_tokens": "7", "completion_tokens": 4.0, "total_tokens": 11})
    outcome.assert_ended_cleanly()
    if outcome.error is None:
        (completed,) = outcome.recorder.of(LLMCallCompletedEvent)
        assert completed.usage == TokenUsage(input_tokens=7, output_tokens=4)
    if path == "direct" and stream:
        assert outcome.error is None
