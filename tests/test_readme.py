"""The README's examples run as written (against the local server, as a user's endpoint), and its commands exist."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.demo_output import TREE
from tests.support.openai_server import FakeOpenAIServer, Reply, ToolCallReply

from crewtrace.cli import _parsers

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def python_blocks() -> list[str]:
    """The runnable examples: every Python block but the CrewAI one (run by the CrewAI integration's tests)."""
    return [block for block in blocks("python") if "crewtrace.integrations.crewai" not in block]


def run(code: str, server: FakeOpenAIServer) -> str:
    env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-readme"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_has_the_examples_this_file_runs() -> None:
    assert len(python_blocks()) == 4


def test_the_crewai_section_shows_the_three_lines() -> None:
    (crewai,) = (block for block in blocks("python") if "crewtrace.integrations.crewai" in block)
    compile(crewai, "README.md", "exec")
    assert "instrumentation = instrument_crewai()" in crewai and "setup_telemetry(" in crewai


def test_streaming_example_prints_the_researchers_chunks(server: FakeOpenAIServer) -> None:
    out = run(python_blocks()[0], server)
    chunk_lines = [line for line in out.splitlines() if line.startswith("[About User / Answer this question about")]
    assert len(chunk_lines) > 1 and "#0]" in chunk_lines[0]
    assert "prompt_tokens=" in out.splitlines()[-1] and "successful_requests=1" in out.splitlines()[-1]
    assert server.requests[0].body["model"] == "gpt-4o-mini", "the provider prefix is litellm's, not the server's"


def test_crew_streaming_example_prints_every_chunk_with_its_task_and_agent(server: FakeOpenAIServer) -> None:
    server.responder = lambda body: Reply(chunks=["Tracing ", "follows ", "a request."])
    lines = run(python_blocks()[1], server).splitlines()
    assert lines == [
        "[task 0 Explain {topic} in two sentences | Writer] 'Tracing '",
        "[task 0 Explain {topic} in two sentences | Writer] 'follows '",
        "[task 0 Explain {topic} in two sentences | Writer] 'a request.'",
        "Tracing follows a request.",
    ]


def test_tools_example_runs_the_tool_loop(server: FakeOpenAIServer) -> None:
    def respond(body: dict[str, Any]) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply(chunks=["There are ", body["messages"][-1]["content"], " words."])
        return Reply(tool_calls=[ToolCallReply("c1", "word_count", '{"text": "one two three"}')])

    server.responder = respond
    assert run(python_blocks()[2], server).strip() == "There are 3 words."
    assert [t["function"]["name"] for t in server.requests[0].body["tools"]] == ["word_count", "fetch_title"]


def test_telemetry_example_sets_up_and_shuts_down(server: FakeOpenAIServer) -> None:
    run(python_blocks()[3], server)


def shell_commands() -> list[list[str]]:
    commands = []
    for block in blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and "=" in words[0]:  # VAR=value in front
                words = words[1:]
            if words:
                commands.append(words)
    return commands


def test_every_crewtrace_command_in_the_readme_parses() -> None:
    parser, _ = _parsers()
    commands = [words[1:] for words in shell_commands() if words[0] == "crewtrace"]
    assert len(commands) >= 8
    for args in commands:
        parsed, extras = parser.parse_known_args(args)
        assert parsed.command in ("demo", "stack", "watch") and extras == [], args


def test_the_first_screen_shows_crewtrace_watch() -> None:
    first_screen = README.read_text(encoding="utf-8").splitlines()[:40]
    assert any(line.startswith("crewtrace watch ") for line in first_screen)


def test_every_make_target_in_the_readme_exists() -> None:
    targets = {
        line.split(":")[0] for line in (ROOT / "Makefile").read_text().splitlines() if re.match(r"^[\w-]+:", line)
    }
    used = {words[1] for words in shell_commands() if words[0] == "make"}
    assert used and used <= targets
    assert "make test" in (ROOT / ".ci" / "run").read_text(), "the README's test command is the one CI runs"


def test_the_sample_output_shows_the_demos_span_tree() -> None:
    (sample,) = blocks("text")
    labels = [line.split(" |")[0].rstrip() for line in sample.splitlines() if " |" in line]
    assert labels == TREE
    assert max(len(line) for line in sample.splitlines()) <= 80
