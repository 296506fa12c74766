"""Self-tests of tests/support against the real clients the suite relies on.

If litellm, the OTLP exporters or Prometheus change how they talk, these fail first
and point at the support code rather than at crewtrace.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network for the cost map

import litellm
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry, Counter, start_http_server
from tests.support.openai_server import (
    FakeOpenAIServer,
    Fault,
    Reply,
    ToolCallReply,
    numbered_chunks,
)
from tests.support.otlp_receiver import OTLPGrpcReceiver, OTLPHttpReceiver
from tests.support.ports import free_port
from tests.support.prometheus import PrometheusServer, require_prometheus

litellm.suppress_debug_info = True


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


def _kwargs(server: FakeOpenAIServer, text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/test-model",
        "api_base": server.base_url,
        "api_key": "sk-test",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def test_litellm_sync_stream_gets_default_reply_and_usage(server: FakeOpenAIServer) -> None:
    text, usage = "", None
    for chunk in litellm.completion(**_kwargs(server)):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        usage = getattr(chunk, "usage", None) or usage

    assert text == "Answer for: hello there"
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (2, 6)  # 2 words; 23 chars in 4-char chunks
    (request,) = server.requests
    assert request.body["model"] == "test-model"
    assert request.headers["authorization"] == "Bearer sk-test"


async def test_litellm_async_stream_with_queued_numbered_chunks(server: FakeOpenAIServer) -> None:
    server.queue(Reply(chunks=numbered_chunks(300), usage=(7, 300)))
    pieces: list[str] = []
    response = await litellm.acompletion(**_kwargs(server))
    async for chunk in response:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    assert "".join(pieces) == "".join(numbered_chunks(300))
    # the queue is drained, so the next request falls back to the responder
    plain = await litellm.acompletion(**{**_kwargs(server, "again"), "stream": False})
    assert plain.choices[0].message.content == "Answer for: again"


def test_parallel_tool_calls_stream_in_openai_delta_format(server: FakeOpenAIServer) -> None:
    calls = [ToolCallReply("call_a", "search", '{"query": "otel spans"}'), ToolCallReply("call_b", "clock", "{}")]
    server.queue(Reply(tool_calls=calls))
    arguments: dict[int, str] = {}
    ids: dict[int, str] = {}
    finish = None
    for chunk in litellm.completion(**_kwargs(server)):
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for call in chunk.choices[0].delta.tool_calls or []:
            if call.id:
                ids[call.index] = call.id
            arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")
    assert ids == {0: "call_a", 1: "call_b"}
    assert json.loads(arguments[0]) == {"query": "otel spans"}
    assert json.loads(arguments[1]) == {}
    assert finish == "tool_calls"


def _stream_until_error(server: FakeOpenAIServer, **extra: Any) -> tuple[list[str], Exception]:
    seen: list[str] = []
    try:
        for chunk in litellm.completion(**_kwargs(server, **extra)):
            if chunk.choices and chunk.choices[0].delta.content:
                seen.append(chunk.choices[0].delta.content)
    except Exception as exc:
        return seen, exc
    pytest.fail("the stream ended without an error")


@pytest.mark.parametrize("fault", [Fault.RESET, Fault.MALFORMED, Fault.STALL])
def test_mid_stream_faults_raise_after_the_chunks_sent(server: FakeOpenAIServer, fault: Fault) -> None:
    server.queue(Reply(chunks=numbered_chunks(10), fault=fault, fault_after=3))
    seen, error = _stream_until_error(server, timeout=0.5)
    assert seen == numbered_chunks(3)
    # litellm 1.106 wraps every mid-stream fault in MidStreamFallbackError; 1.110 raises a stall as its Timeout.
    assert isinstance(error, (litellm.exceptions.MidStreamFallbackError, litellm.exceptions.Timeout)), repr(error)


def test_rate_limit_fault_is_retried_by_the_sdk_unless_disabled(server: FakeOpenAIServer) -> None:
    server.queue(Reply(chunks=[], fault=Fault.STATUS_429))
    assert litellm.completion(**{**_kwargs(server), "stream": False}).choices[0].message.content
    assert len(server.requests) == 2  # the OpenAI SDK retried once, then got the responder's reply

    server.queue(Reply(chunks=[], fault=Fault.STATUS_429))
    with pytest.raises(litellm.exceptions.RateLimitError):
        litellm.completion(**_kwargs(server, num_retries=0))


def _traced(exporter: SpanExporter) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "selftest"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("selftest")
    with tracer.start_as_current_span("crew", kind=SpanKind.CLIENT, attributes={"n": 3, "tags": ["a", "b"]}) as span:
        span.add_event("chunk", {"index": 0})
        with tracer.start_as_current_span("task"):
            pass
    provider.shutdown()


Receiver = OTLPGrpcReceiver | OTLPHttpReceiver


@pytest.mark.parametrize(
    ("make_receiver", "make_exporter"),
    [
        (OTLPGrpcReceiver, lambda r: GrpcSpanExporter(endpoint=r.endpoint, insecure=True)),
        (OTLPHttpReceiver, lambda r: HttpSpanExporter(endpoint=r.traces_url, compression=Compression.Gzip)),
    ],
    ids=["grpc", "http-gzip"],
)
def test_otlp_receiver_decodes_spans_from_the_sdk_exporter(
    make_receiver: Callable[[], Receiver], make_exporter: Callable[[Any], SpanExporter]
) -> None:
    with make_receiver() as receiver:
        _traced(make_exporter(receiver))
        spans = {s.name: s for s in receiver.wait_for_spans(2, timeout=10)}
    crew, task = spans["crew"], spans["task"]
    assert crew.kind == "CLIENT"
    assert crew.attributes == {"n": 3, "tags": ["a", "b"]}
    assert [(e.name, e.attributes) for e in crew.events] == [("chunk", {"index": 0})]
    assert crew.parent_span_id is None
    assert task.parent_span_id == crew.span_id
    assert task.trace_id == crew.trace_id
    assert crew.resource["service.name"] == "selftest"


@pytest.mark.integration
def test_prometheus_scrapes_a_prometheus_client_endpoint(tmp_path: Path) -> None:
    require_prometheus()
    registry = CollectorRegistry()
    Counter("selftest_chunks", "chunks seen", ["agent"], registry=registry).labels("writer").inc(5)
    port = free_port()
    httpd, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with PrometheusServer([f"127.0.0.1:{port}"], tmp_path=tmp_path) as prometheus:
            (series,) = prometheus.wait_for('selftest_chunks_total{agent="writer"}', timeout=30)
            assert series["value"][1] == "5"
    finally:
        httpd.shutdown()
        thread.join(timeout=5)
