"""Mistakes get one line that says what to change: exit 2 for usage, 1 for failures, 130 for Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from tests.cli.running import crewtrace_command, one_line, run_crewtrace, run_crewtrace_in_process, user_env
from tests.support.openai_server import FakeOpenAIServer, Reply
from tests.support.otlp_receiver import OTLPGrpcReceiver
from tests.support.polling import wait_until


def test_plain_crewtrace_prints_help() -> None:
    result = run_crewtrace()
    assert result.returncode == 0
    assert result.stdout.startswith("usage: crewtrace ")
    assert "demo" in result.stdout and "stack" in result.stdout


def test_an_unknown_demo_option_prints_the_demos_usage() -> None:
    result = run_crewtrace("demo", "--bogus")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: crewtrace demo ")
    assert result.stderr.rstrip().endswith("crewtrace demo: error: unrecognized arguments: --bogus")


def test_demo_help_describes_the_offline_model() -> None:
    result = run_crewtrace("demo", "--help")
    assert result.returncode == 0
    assert "custom provider" in result.stdout and "mock" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--base-url", "http://127.0.0.1:1/v1"],
            "--base-url needs --model (the offline default does not use an endpoint)",
        ),
        (["--metrics-port", "70000"], "argument --metrics-port: must be between 0 and 65535, got 70000"),
        (["--metrics-port", "http"], "argument --metrics-port: expected a port number (0-65535), got 'http'"),
    ],
)
def test_bad_values_are_usage_errors(args: list[str], message: str) -> None:
    result = run_crewtrace("demo", *args)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"crewtrace demo: error: {message}"


def test_an_otlp_endpoint_without_scheme_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_crewtrace_in_process(capsys, "demo", "--otlp-endpoint", "localhost:4317")
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("crewtrace demo: error: malformed OTLP endpoint 'localhost:4317'")
    assert "http://localhost:4317" in line
    assert result.stdout == "", "refused before anything runs"


def test_a_metrics_port_in_use_is_one_line_exit_1(busy_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_crewtrace_in_process(capsys, "demo", "--metrics-port", str(busy_port))
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith("crewtrace demo: error: ") and str(busy_port) in line


def test_a_usage_log_that_cannot_be_written_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    result = run_crewtrace_in_process(capsys, "demo", "--usage-log", str(tmp_path / "file" / "usage.jsonl"))
    assert result.returncode == 1
    assert one_line(result.stderr).startswith("crewtrace demo: error: ")


@pytest.mark.slow  # starts a demo run
def test_ctrl_c_ends_the_run_and_its_spans_with_exit_130(server: FakeOpenAIServer) -> None:
    server.responder = lambda body: Reply(chunks=[f"word{i} " for i in range(200)], delay=0.05)
    with OTLPGrpcReceiver() as collector:
        demo = subprocess.Popen(
            crewtrace_command(
                "demo",
                "--model",
                "openai/test-model",
                "--base-url",
                server.base_url,
                "--otlp-endpoint",
                collector.endpoint,
            ),
            env=user_env({"OPENAI_API_KEY": "sk-demo"}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(lambda: len(server.requests) == 1, timeout=60, what="the crew's first LLM request")
            demo.send_signal(signal.SIGINT)
            out, err = demo.communicate(timeout=60)
        finally:
            demo.kill()
        assert demo.returncode == 130
        assert one_line(err) == "crewtrace demo: interrupted"
        assert "\ninterrupted (Ctrl-C): what ran until then" in out and "\nResearcher  research_topic  1      1 " in out
        (chat,) = [line for line in out.splitlines() if line.startswith("      chat test-model ")]
        bar = chat.split("|")[1]  # where in the bar the call starts depends on the machine's pace: not asserted
        assert "░" in bar and out.count("✗ cancelled") == 4, "the trace so far, its call waiting for a first chunk"
        spans = collector.wait_for_spans(lambda spans: any(s.name.startswith("invoke_workflow") for s in spans))
    ended = {span.name: span for span in spans}
    assert {"invoke_workflow demo-crew", "execute_task research_topic", "invoke_agent Researcher"} <= set(ended)
    assert ended["chat test-model"].attributes.get("error.type") == "cancelled"
