"""`crewtrace demo`: offline by default, or on a real OpenAI-compatible endpoint."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.openai_server import FakeOpenAIServer, Fault, Reply


def crewtrace(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crewtrace", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_offline_demo_streams_labelled_chunks_and_prints_a_summary() -> None:
    result = crewtrace("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '[Researcher | research_topic] \n  calls search_notes {"query": "streaming"}' in out
    assert "search_notes -> Every streamed chunk carries its agent and task" in out
    assert "Key findings:" in out
    assert "[Writer | write_summary] Summary:" in out
    table = out[out.index("\nagent ") + 1 :].splitlines()
    assert table[0].split() == (
        [
            "agent",
            "task",
            "calls",
            "failed",
            "tools",
            "chunks",
            "tokens",
            "in",
            "tokens",
            "out",
            "first",
            "chunk",
            "duration",
        ]
    )
    rows = {line.split()[0]: line.split() for line in table[2:4]}
    assert rows["Researcher"][1:5] == ["research_topic", "2", "0", "2"], "a tool round, then the answer"
    assert rows["Writer"][1:5] == ["write_summary", "1", "0", "0"]
    assert int(rows["Researcher"][5]) > 10, "many chunks, not one blob"


def test_demo_runs_on_a_real_endpoint(server: FakeOpenAIServer) -> None:
    result = crewtrace(
        "demo", "--model", "openai/test-model", "--base-url", server.base_url, env={"OPENAI_API_KEY": "sk-demo"}
    )
    assert result.returncode == 0, result.stderr
    assert "[Researcher | research_topic] Answer for: Research observability" in result.stdout
    assert len(server.requests) == 2
    assert server.requests[0].headers["authorization"] == "Bearer sk-demo"


def test_demo_reports_a_failing_endpoint_and_exits_1(server: FakeOpenAIServer) -> None:
    server.responder = lambda body: Reply(chunks=["x"], fault=Fault.STATUS_500)
    result = crewtrace(
        "demo", "--model", "openai/test-model", "--base-url", server.base_url, env={"OPENAI_API_KEY": "k"}
    )
    assert result.returncode == 1
    assert "crew failed" in result.stderr and "InternalServerError" in result.stderr


def test_demo_rejects_bad_arguments_with_usage_errors() -> None:
    result = crewtrace("demo", "--base-url", "http://127.0.0.1:1/v1")
    assert result.returncode == 2 and "--base-url needs --model" in result.stderr
    result = crewtrace("demo", "--metrics-port", "70000")
    assert result.returncode == 2 and "--metrics-port" in result.stderr
