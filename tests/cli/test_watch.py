"""`crewtrace watch` as a user runs it: a subprocess receiving OTLP from other processes over gRPC and HTTP."""

from __future__ import annotations

import gzip
import http.client
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
from tests.cli.running import one_line, run_crewtrace, user_env
from tests.cli.watching import WatchProcess
from tests.support.openai_server import FakeOpenAIServer, Fault, Reply, ToolCallReply, last_user_text

from crewtrace.cli import main


@pytest.fixture(scope="module")
def watch() -> Iterator[WatchProcess]:
    with WatchProcess() as process:
        yield process


def block(out: str, run: str) -> str:
    """The output drawn for the run named ``run``: its summary line up to the next run."""
    start = out.index(f"\nrun {run}")
    end = out.find("\nrun ", start + 1)
    return out[start + 1 : end if end != -1 else len(out)]


def span_labels(text: str) -> list[str]:
    return [line.split(" |")[0].rstrip() for line in text.splitlines() if " |" in line]


def export_other_instrumentation_trace(exporter: SpanExporter, root_name: str) -> str:
    """A trace as another instrumentation draws it: an HTTP server span, a model call, a failed step."""
    provider = TracerProvider(resource=Resource.create({"service.name": "other-app"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("another.instrumentation")
    root = tracer.start_span(root_name, kind=SpanKind.SERVER, attributes={"http.request.method": "POST"})
    inside = set_span_in_context(root)
    chat = tracer.start_span("openai.chat", inside, kind=SpanKind.CLIENT)
    chat.set_attributes({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 12})
    chat.set_attribute("gen_ai.usage.output_tokens", 7)
    chat.end()
    step = tracer.start_span("tool \x1b]0;owned\x07 \x1b[2J", inside)
    step.set_attribute("error.type", "\x1b[31mBoom")
    step.set_status(Status(StatusCode.ERROR))
    step.end()
    root.end()
    provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def test_spans_of_any_instrumentation_draw_with_failures_marked_and_controls_visible(watch: WatchProcess) -> None:
    trace_id = export_other_instrumentation_trace(
        GrpcSpanExporter(endpoint=f"127.0.0.1:{watch.grpc_port}", insecure=True), "POST /chat"
    )
    drawn = block(watch.wait_for_output(r"^run POST /chat"), "POST /chat")
    summary, header = drawn.splitlines()[:2]
    assert re.fullmatch(
        r"run POST /chat \(other-app\): ok, 1 failed span in \d+ ms; 3 spans, 1 LLM calls \(0 failed\), "
        r"0 tool calls, 12 tokens in, 7 out",
        summary,
    )
    assert header.startswith(f"trace {trace_id}  3 spans  ")
    assert span_labels(drawn) == ["POST /chat", "  openai.chat", "  tool \\x1b]0;owned\\x07 \\x1b[2J"]
    assert drawn.splitlines()[4].endswith("✗ \\x1b[31mBoom")
    assert "\nagent  task  calls  failed  chunks  tokens in  tokens out  ttfc\n" in drawn
    assert "\x1b" not in watch.stdout() and "\x07" not in watch.stdout()


def test_otlp_json_over_http_draws_too(watch: WatchProcess) -> None:
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "invoke_workflow json-crew",
                                "kind": 1,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [{"key": "gen_ai.workflow.name", "value": {"stringValue": "json-crew"}}],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    request = urllib.request.Request(
        f"{watch.http_endpoint}/v1/traces", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200 and json.loads(response.read()) == {}
    drawn = block(watch.wait_for_output(r"^run json-crew"), "json-crew")
    assert drawn.startswith("run json-crew (json-app): ok in 1.00 s; 1 spans, 0 LLM calls")
    assert "trace 5b8efff798038103d269b633813fc60c  1 spans  1.00 s" in drawn


def test_a_chunked_gzip_protobuf_request_draws_too(watch: WatchProcess) -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = bytes.fromhex("ab" * 16), bytes.fromhex("cd" * 8)
    span.name, span.start_time_unix_nano, span.end_time_unix_nano = "chunked-run", 10**18, 10**18 + 2 * 10**9
    body = gzip.compress(request.SerializeToString())
    connection = http.client.HTTPConnection("127.0.0.1", watch.http_port, timeout=10)
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    connection.request("POST", "/v1/traces", body=iter([body[:10], body[10:]]), headers=headers, encode_chunked=True)
    assert connection.getresponse().status == 200
    connection.close()
    drawn = block(watch.wait_for_output(r"^run chunked-run"), "chunked-run")
    assert drawn.startswith("run chunked-run: ok in 2.00 s; 1 spans, ")


def test_json_mode_prints_one_object_per_trace() -> None:
    with WatchProcess("--json") as watch:
        trace_id = export_other_instrumentation_trace(
            HttpSpanExporter(endpoint=f"{watch.http_endpoint}/v1/traces"), "GET /json"
        )
        (line,) = watch.wait_for_output(r"^\{").splitlines()
    trace = json.loads(line)
    assert trace["trace_id"] == trace_id and trace["name"] == "GET /json" and trace["service"] == "other-app"
    assert (trace["status"], trace["span_count"], trace["failed_spans"], trace["llm_calls"]) == ("ok", 3, 1, 1)
    assert (trace["input_tokens"], trace["output_tokens"], trace["root_received"]) == (12, 7, True)
    assert trace["spans"][0]["name"] == "GET /json", "spans in start order"
    failed = trace["spans"][2]
    assert failed["error_type"] == "\x1b[31mBoom" and failed["status"] == "error"
    assert "\x1b" not in line, "JSON escapes control characters"


def test_ctrl_c_draws_what_is_still_open_and_exits_130_with_a_summary() -> None:
    with WatchProcess() as watch:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(GrpcSpanExporter(endpoint=watch.grpc_endpoint, insecure=True)))
        tracer = provider.get_tracer("test")
        root = tracer.start_span("invoke_workflow unfinished")
        tracer.start_span("execute_task first", set_span_in_context(root)).end()  # its root never ends
        # Exported as it ended (SimpleSpanProcessor): watch has it, and its trace stays open without a root.
        assert watch.interrupt() == 130
        out, err = watch.stdout(), watch.stderr()
        provider.shutdown()
    assert "\nrun execute_task first: ok in 0 ms; 1 spans, 0 LLM calls" in out
    assert out.rstrip().splitlines()[-1].startswith("execute_task first ")
    assert "[root span not received]" in out
    assert err.splitlines()[-1] == "crewtrace watch: interrupted; 1 traces (1 spans) received, 1 of them still open"


@pytest.mark.parametrize("option", ["--grpc-port", "--http-port"])
def test_a_port_in_use_is_one_line_naming_the_option(
    watch: WatchProcess, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = watch.grpc_port if option == "--grpc-port" else watch.http_port
    assert main(["watch", option, str(taken)]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"crewtrace watch: error: {option} {taken}: 127.0.0.1:{taken} is already in use")
    assert line.endswith(f"choose another port with {option} (0 picks a free one)")


def test_help_says_it_is_a_live_view_not_a_store(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["watch", "--help"])
    assert exit.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "not a trace store" in text and "Jaeger" in text
    assert "root span (the one without a parent) has arrived and no span of it has arrived for --settle" in text


# A user's application: a crewtrace crew (a tool round, then a failing run) exporting with setup_telemetry.
APPLICATION = """
import sys
from crewtrace import LLM, Agent, Crew, Task, tool
from crewtrace.errors import CrewtraceError
from crewtrace.telemetry import setup_telemetry

endpoint, protocol, base_url = sys.argv[1:]

@tool
def lookup(topic: str) -> str:
    '''Look a topic up.

    Args:
        topic: what to look up
    '''
    return f"notes on {topic}"

telemetry = setup_telemetry("watched-app", otlp_endpoint=endpoint, otlp_protocol=protocol)
llm = LLM("openai/test-model", base_url=base_url, api_key="sk-watched", stream=True, max_retries=0)
analyst = Agent(role="Analyst", goal="Answer.", backstory="Thorough.", llm=llm, tools=[lookup])
task = Task(name="analyse", description="Analyse {topic}.", expected_output="One line.", agent=analyst)
Crew(name="watched-crew", agents=[analyst], tasks=[task]).kickoff(inputs={"topic": "tracing"})
try:
    Crew(name="failing-crew", agents=[analyst], tasks=[task]).kickoff(inputs={"topic": "errors"})
except CrewtraceError:
    pass
telemetry.shutdown()
"""


def respond(body: dict[str, Any]) -> Reply:
    if "errors" in last_user_text(body):
        return Reply(chunks=["x"], fault=Fault.STATUS_500)
    if body["messages"][-1]["role"] == "tool":
        return Reply(chunks=["Tracing ", "is ", "answered."])
    return Reply(tool_calls=[ToolCallReply("c1", "lookup", '{"topic": "tracing"}')])


@pytest.mark.slow  # another process runs a crew (a cold import of litellm)
def test_a_crewtrace_application_exporting_over_grpc_is_drawn_run_by_run(
    watch: WatchProcess, server: FakeOpenAIServer
) -> None:
    server.responder = respond
    application = subprocess.run(
        [sys.executable, "-c", APPLICATION, watch.grpc_endpoint, "grpc", server.base_url],
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert application.returncode == 0, application.stderr
    out = watch.wait_for_output(r"^run (watched|failing)-crew", count=2)
    ok, failed = block(out, "watched-crew"), block(out, "failing-crew")
    assert re.match(
        r"run watched-crew \(watched-app\): ok in [\d.]+ m?s; 6 spans, 2 LLM calls \(0 failed\), 1 tool calls", ok
    )
    assert span_labels(ok) == [
        "invoke_workflow watched-crew",
        "  execute_task analyse",
        "    invoke_agent Analyst",
        "      chat test-model",
        "      execute_tool lookup",
        "      chat test-model",
    ]
    assert re.search(r"^Analyst  analyse  2      0       \d+ +\d+ +\d+ +[\d.]+ m?s$", ok, re.M), (
        "the table per agent and task"
    )
    assert failed.startswith("run failing-crew (watched-app): failed (InternalServerError) in ")
    chat = next(line for line in failed.splitlines() if line.startswith("      chat "))
    assert chat.endswith("✗ InternalServerError")
    assert re.search(r"^Analyst  analyse  1      1       0 .* none$", failed, re.M), "no first chunk, no time to it"


@pytest.mark.slow  # crewtrace demo runs (a cold import of litellm)
def test_the_demo_exporting_by_the_otel_variables_over_http_is_drawn_with_their_service(watch: WatchProcess) -> None:
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": watch.http_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "my-demo",
    }
    demo = run_crewtrace("demo", env=otel)
    assert demo.returncode == 0, demo.stderr
    assert demo.stderr == ""
    trace_id = re.search(
        r"^trace id: ([0-9a-f]{32}), sent to " + re.escape(watch.http_endpoint) + "$", demo.stdout, re.M
    )
    assert trace_id is not None, demo.stdout
    assert f"\nin Jaeger: http://127.0.0.1:16686/trace/{trace_id[1]}\n" in demo.stdout
    drawn = block(watch.wait_for_output(r"^run demo-crew \(my-demo\)"), "demo-crew (my-demo)")
    assert f"\ntrace {trace_id[1]}  10 spans  " in drawn
    assert span_labels(drawn)[0] == "invoke_workflow demo-crew"


@pytest.mark.slow  # crewtrace demo runs (a cold import of litellm)
def test_a_grpc_export_to_an_otlp_http_port_suggests_the_http_protocol(watch: WatchProcess) -> None:
    demo = run_crewtrace("demo", "--otlp-endpoint", watch.http_endpoint)
    assert demo.returncode == 0, demo.stderr
    line = one_line(demo.stderr)
    assert line.startswith(f"telemetry could not be delivered to {watch.http_endpoint}: it answers OTLP/HTTP")
    assert "add --otlp-protocol http/protobuf" in line
    assert "in Jaeger" not in demo.stdout
