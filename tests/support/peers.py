"""The other OpenAI instrumentations crewtrace lives among, and the bar: one chat span and one set of numbers per call.

Each peer instruments the OpenAI SDK for the whole process (an OpenTelemetry
``BaseInstrumentor``), so :func:`peer_instrumented` switches it on with the test's own
providers and off again after.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from openai.resources.chat.completions import AsyncCompletions, Completions
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanKind
from tests.support.openai_server import RecordedRequest

PEERS = ("opentelemetry", "openllmetry", "openinference")
"""OpenTelemetry's own (opentelemetry-instrumentation-genai-openai, on opentelemetry-util-genai), OpenLLMetry's
(opentelemetry-instrumentation-openai) and OpenInference's (openinference-instrumentation-openai)."""
NESTING_PEERS = ("openinference",)
"""Peers that honour no stand-down key: their spans nest under crewtrace's chat span."""


@contextmanager
def peer_instrumented(peer: str, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> Iterator[None]:
    options: dict[str, Any] = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    if peer == "opentelemetry":
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
    elif peer == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    else:
        from openinference.instrumentation.openai import OpenAIInstrumentor

        del options["meter_provider"]  # OpenInference records no metrics
    instrumentor = OpenAIInstrumentor()
    original = Completions.__dict__["create"]
    instrumentor.instrument(**options)
    try:
        yield
    finally:
        instrumentor.uninstrument()
        if peer == "openllmetry":
            _unwrap_openllmetry()
        assert Completions.__dict__["create"] is original, f"{peer} is still instrumenting"


def _unwrap_openllmetry() -> None:
    """Undo OpenLLMetry's chat wrappers, which its ``uninstrument()`` leaves on.

    OpenLLMetry 0.62 calls ``unwrap("openai.resources.chat.completions", "Completions.create")``, while
    opentelemetry-instrumentation's ``unwrap`` takes ``"module.Class"`` and ``"method"``: it unwraps nothing,
    and OpenLLMetry would go on tracing (and injecting headers) for the rest of the session.
    """
    for cls in (Completions, AsyncCompletions):
        unwrap(cls, "create")


def crewtrace_chats(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.instrumentation_scope.name == "crewtrace" and s.name.startswith("chat ")]


def assert_one_chat_span_per_request(
    spans: Sequence[ReadableSpan], requests: Sequence[RecordedRequest], peer: str
) -> list[ReadableSpan]:
    """crewtrace's chat spans, one per request the server received; a peer's spans absent, or under one of them."""
    chats = crewtrace_chats(spans)
    assert len(chats) == len(requests) > 0, f"{len(chats)} chat spans for {len(requests)} requests"
    assert all(chat.kind is SpanKind.CLIENT for chat in chats)
    others = [s for s in spans if s.instrumentation_scope.name != "crewtrace"]
    if peer not in NESTING_PEERS:
        assert others == [], f"{peer} recorded spans of its own: {[s.name for s in others]}"
    chat_ids = {chat.context.span_id for chat in chats}
    for span in others:
        assert span.parent is not None and span.parent.span_id in chat_ids, f"{span.name} is not under a chat span"
    assert len({s.parent.span_id for s in others if s.parent}) == len(others), "at most one nested span per call"
    return chats


def duration_counts(reader: InMemoryMetricReader, name: str = "gen_ai.client.operation.duration") -> dict[str, int]:
    """Points of metric ``name`` counted per instrumentation scope, across every series."""
    data = reader.get_metrics_data()
    counts: dict[str, int] = {}
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    total = sum(point.count for point in metric.data.data_points)
                    counts[scope_metrics.scope.name] = counts.get(scope_metrics.scope.name, 0) + total
    return counts


def assert_trace_context_sent(requests: Sequence[RecordedRequest], chats: Sequence[ReadableSpan]) -> None:
    """Every request names one of crewtrace's chat spans as its parent, each chat span once; never baggage."""
    by_id = {f"{chat.context.span_id:016x}": chat for chat in chats}
    parents = []
    for request in requests:
        assert "baggage" not in request.headers, request.headers
        version, trace_id, parent_id, _flags = request.headers["traceparent"].split("-")
        assert version == "00" and parent_id in by_id, request.headers["traceparent"]
        assert trace_id == f"{by_id[parent_id].context.trace_id:032x}"
        parents.append(parent_id)
    assert sorted(parents) == sorted(by_id), "each call's request carries its own chat span"
