"""`crewtrace demo` on a hostile endpoint and a poor terminal: ASCII only, 50 columns, escapes in the model's text."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from tests.cli.running import run_crewtrace
from tests.support.openai_server import FakeOpenAIServer, Fault, Reply, ToolCallReply

HOSTILE_TEXT = [
    "Findings\x1b[2J\x1b]0;owned\x07: ",
    "a\x9b31m ",
    "long ",
    "answer ",
    "that … ",
    "wraps ",
    "inside ",
    "fifty ",
    "columns ",
    "of ",
    "terminal ",
    "width ",
    "without ",
    "breaking ",
    "words.",
]


def hostile(body: dict[str, Any]) -> Reply:
    if "Writer" in json.dumps(body["messages"][0]):
        return Reply(chunks=["x"], fault=Fault.STATUS_500)
    if body["messages"][-1]["role"] == "tool":
        return Reply(chunks=HOSTILE_TEXT)
    return Reply(tool_calls=[ToolCallReply("c1", "\x1b]0;owned\x07search", '{"query": "\x1b[2J"}')])


@pytest.mark.slow  # a whole demo run
def test_an_ascii_terminal_50_columns_wide_gets_every_control_shown_and_nothing_crashes(
    server: FakeOpenAIServer,
) -> None:
    server.responder = hostile
    result = run_crewtrace(
        "demo",
        "--model",
        "openai/test-model",
        "--base-url",
        server.base_url,
        env={"OPENAI_API_KEY": "sk-demo", "PYTHONIOENCODING": "ascii", "COLUMNS": "50"},
    )
    out, err = result.stdout, result.stderr
    assert result.returncode == 1, err
    assert out.isascii() and err.isascii()
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out + err), "no control character reaches the terminal"
    assert '\n  calls \\x1b]0;owned\\x07search {"query": "\\x1b[2J"' in out
    assert "[Researcher | research_topic]" in out and "Findings\\x1b[2J\\x1b]0;owned\\x07: a\\x9b31m long" in out
    assert "that \\u2026 wraps" in out, "a character the terminal cannot print, shown as an escape"
    live = out[out.index("[Researcher") : out.index("\nagent ")]
    assert all(len(line) <= 50 for line in live.splitlines()), live
    words = " ".join(live.split())
    assert "long answer that \\u2026 wraps inside fifty columns of terminal width without breaking words." in words

    table = {line.split()[0]: line.split() for line in out[out.index("\nagent ") + 1 :].splitlines()[2:4]}
    assert table["Writer"][2:4] == ["1", "1"] and table["Writer"][-1] == "none", "a failed call: no ttfc"
    assert re.search(r"^total: \d+ tokens in, \d+ out, cost unknown for 2 calls \(litellm has no price", out, re.M)
    chat = [line for line in out.splitlines() if line.startswith("      chat test-model")]
    assert chat[-1].endswith("x InternalServerError") and "#" in chat[0], "ASCII glyphs in the trace picture"
    assert err.lstrip().startswith("crew failed: openai/test-model: InternalServerError: ")
