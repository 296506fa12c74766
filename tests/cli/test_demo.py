"""`crewtrace demo` run as a user runs it: offline by default, or on a real OpenAI-compatible endpoint."""

from __future__ import annotations

import re

import pytest
from tests.cli.running import one_line, run_crewtrace
from tests.support.demo_output import TREE, waterfall
from tests.support.openai_server import FakeOpenAIServer, Fault, Reply
from tests.support.otlp_receiver import OTLPGrpcReceiver

NOISE = re.compile(r"warning|traceback|exception|litellm:|statuscode|transient|error(?!\.type)", re.IGNORECASE)


def table(out: str) -> dict[str, list[str]]:
    lines = out[out.index("\nagent ") + 1 :].splitlines()
    assert lines[0].split() == ["agent", "task", "calls", "failed", "chunks", "tokens", "in", "tokens", "out", "ttfc"]
    return {line.split()[0]: line.split() for line in lines[2:4]}


@pytest.fixture(scope="module")
def offline(no_network: list[str]) -> tuple[str, str]:
    """One offline run with no network at all and without LITELLM_LOCAL_MODEL_COST_MAP."""
    result = run_crewtrace("demo", prefix=no_network)
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


def test_offline_demo_needs_no_network_and_prints_no_warning(offline: tuple[str, str]) -> None:
    out, err = offline
    assert err == ""
    assert [line for line in out.splitlines() if NOISE.search(line)] == []


def test_offline_demo_streams_labelled_chunks_and_tool_calls(offline: tuple[str, str]) -> None:
    out, _ = offline
    assert '[Researcher | research_topic]\n  calls search_notes {"query": "streaming"}\n' in out
    assert (
        "\n  search_notes -> Every streamed chunk carries its agent and task, so slow agen…\n"
        "  search_notes -> Time to first chunk matters more to users than total duration.\n"
        "  Key findings on observability for LLM agent crews:"
    ) in out, "tool results one per line, no blank line between them, text on a fresh line"
    assert "[Writer | write_summary] Summary of observability" in out
    assert out.count("Tracing each chunk") == 1, "the answer is not repeated"
    assert "final answer" not in out


def test_offline_demo_summarises_per_agent_and_task(offline: tuple[str, str]) -> None:
    rows = table(offline[0])
    assert rows["Researcher"][1:4] == ["research_topic", "2", "0"], "a tool round, then the answer"
    assert rows["Writer"][1:4] == ["write_summary", "1", "0"]
    assert int(rows["Researcher"][4]) > 10, "many chunks, not one blob"
    assert "\nttfc: mean time to first chunk per call; tool calls: 2\n" in offline[0]
    assert re.search(r"^total: \d+ tokens in, \d+ out, cost \$0\.\d{6} \(litellm's prices\)$", offline[0], re.M)


def test_offline_demo_ends_with_a_waterfall_of_its_spans(offline: tuple[str, str]) -> None:
    out, _ = offline
    assert re.search(r"^trace [0-9a-f]{32}  10 spans  ", out, re.M)
    lines = waterfall(out)
    assert [line.split(" |")[0].rstrip() for line in lines] == TREE
    bars = [line[line.index("|") + 1 : line.rindex("|")] for line in lines]
    assert bars[0].strip() == bars[0] and set(bars[0]) == {"█"}, "the workflow spans the whole axis"
    assert bars[1].index("█") == 0 and bars[7].rstrip().endswith("█"), "tasks in order on one time axis"
    assert bars[7].index("█") >= len(bars[1].rstrip()) - 1, "the second task starts where the first ends"
    for line, bar in zip(lines, bars, strict=True):
        if "chat " in line:
            assert re.search(r"ttfc \d+(ms|\.\d\ds) \d+ ch$", line), line
            assert bar.lstrip().startswith("░"), "the wait for the first chunk is drawn"


def test_offline_demo_fits_80_columns_without_trailing_spaces(offline: tuple[str, str]) -> None:
    for line in offline[0].splitlines():
        assert len(line) <= 80, line
        assert line == line.rstrip(), repr(line)


@pytest.mark.slow  # a whole demo run
def test_topic_changes_the_offline_answer(no_network: list[str]) -> None:
    result = run_crewtrace("demo", "--topic", "sleepy robots", prefix=no_network)
    assert result.returncode == 0, result.stderr
    assert "Key findings on sleepy robots:" in result.stdout
    assert "Summary of sleepy robots:" in result.stdout


@pytest.mark.slow  # a whole demo run
def test_console_prints_raw_spans_and_metrics(no_network: list[str]) -> None:
    result = run_crewtrace("demo", "--console", prefix=no_network)
    assert result.returncode == 0, result.stderr
    assert '"name": "invoke_workflow demo-crew"' in result.stdout
    assert '"gen_ai.response.time_to_first_chunk"' in result.stdout
    assert '"name": "gen_ai.client.operation.duration"' in result.stdout
    assert "\ntrace " in result.stdout, "and the waterfall"


@pytest.mark.slow  # a whole demo run
def test_demo_runs_on_a_real_endpoint(server: FakeOpenAIServer) -> None:
    result = run_crewtrace(
        "demo", "--model", "openai/test-model", "--base-url", server.base_url, env={"OPENAI_API_KEY": "sk-demo"}
    )
    assert result.returncode == 0, result.stderr
    assert "[Researcher | research_topic] Answer for: Research observability" in result.stdout
    assert len(server.requests) == 2
    assert server.requests[0].headers["authorization"] == "Bearer sk-demo"
    assert [line.split(" |")[0].strip() for line in waterfall(result.stdout)][-1] == "chat test-model"


@pytest.mark.slow  # a whole demo run
def test_a_failing_endpoint_is_one_line_exit_1_and_marked_in_the_waterfall(server: FakeOpenAIServer) -> None:
    server.responder = lambda body: Reply(chunks=["x"], fault=Fault.STATUS_500)
    result = run_crewtrace(
        "demo", "--model", "openai/test-model", "--base-url", server.base_url, env={"OPENAI_API_KEY": "k"}
    )
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith("crew failed:") and "InternalServerError" in line
    chat = next(line for line in waterfall(result.stdout) if "chat " in line)
    assert chat.endswith("✗ InternalServerError")


@pytest.mark.slow  # a whole demo run
def test_otlp_endpoint_with_nothing_listening_says_so_once_at_the_end(unused_port: int) -> None:
    endpoint = f"http://127.0.0.1:{unused_port}"
    for protocol in ("grpc", "http/protobuf"):
        result = run_crewtrace("demo", "--otlp-endpoint", endpoint, "--otlp-protocol", protocol)
        assert result.returncode == 0, result.stderr
        assert "[Writer | write_summary] Summary of" in result.stdout and "\ntrace " in result.stdout
        assert [line for line in result.stdout.splitlines() if NOISE.search(line)] == [], "nothing interleaved"
        line = one_line(result.stderr)
        assert line.startswith(f"telemetry could not be delivered to {endpoint}: ")
        assert "crewtrace stack crewtrace-stack && docker compose -f crewtrace-stack/docker-compose.yml up -d" in line


@pytest.mark.slow  # a whole demo run
def test_otlp_endpoint_with_a_collector_delivers_the_trace_quietly() -> None:
    with OTLPGrpcReceiver() as collector:
        result = run_crewtrace("demo", "--otlp-endpoint", collector.endpoint)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        names = {span.name for span in collector.wait_for_spans(10)}
    assert {"invoke_workflow demo-crew", "execute_tool search_notes", "chat demo"} <= names


@pytest.fixture
def unused_port() -> int:
    from tests.support.ports import free_port

    return free_port()
