"""The README's Python examples run as written (against the local server, as a user's endpoint)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.openai_server import FakeOpenAIServer, Reply, ToolCallReply

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def run(code: str, server: FakeOpenAIServer) -> str:
    env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-readme"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_has_the_examples_this_file_runs() -> None:
    assert len(python_blocks()) == 3


def test_streaming_example_prints_the_researchers_chunks(server: FakeOpenAIServer) -> None:
    out = run(python_blocks()[0], server)
    chunk_lines = [line for line in out.splitlines() if line.startswith("[About User / Answer this question about")]
    assert len(chunk_lines) > 1 and "#0]" in chunk_lines[0]
    assert "input_tokens=" in out.splitlines()[-1]


def test_tools_example_runs_the_tool_loop(server: FakeOpenAIServer) -> None:
    def respond(body: dict[str, Any]) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply(chunks=["There are ", body["messages"][-1]["content"], " words."])
        return Reply(tool_calls=[ToolCallReply("c1", "word_count", '{"text": "one two three"}')])

    server.responder = respond
    assert run(python_blocks()[1], server).strip() == "There are 3 words."
    assert [t["function"]["name"] for t in server.requests[0].body["tools"]] == ["word_count", "fetch_title"]


def test_telemetry_example_sets_up_and_shuts_down(server: FakeOpenAIServer) -> None:
    run(python_blocks()[2], server)
