"""Foreign text on the terminal: controls made visible and never cut, widths, encodings that cannot print everything."""

from __future__ import annotations

import io
import sys

import pytest

from crewtrace.cli._listeners import LiveChunkPrinter
from crewtrace.cli.table import UsageTable
from crewtrace.cli.terminal import clip, prepare_streams, terminal_width, text_width, visible
from crewtrace.crew import StreamChunk, ToolCallChunk
from crewtrace.events import EventBus

HOSTILE = "\x1b[2J\x1b]0;owned\x07\x1b]8;;http://evil.example\x1b\\link\x9b31m\x7f\u202eabc\x00\r\x85"


def test_every_control_character_is_made_visible() -> None:
    shown = visible(HOSTILE)
    assert shown == (
        "\\x1b[2J\\x1b]0;owned\\x07\\x1b]8;;http://evil.example\\x1b\\link\\x9b31m\\x7f\\u202eabc\\x00\\x0d\\x85"
    )
    assert all(char.isprintable() for char in shown)
    assert visible("plain text, é, 漢字 and … stay") == "plain text, é, 漢字 and … stay"
    assert visible("\ud800") == "\\ud800", "a lone surrogate, which no encoding prints"


@pytest.mark.parametrize("width", range(1, 30))
def test_clipping_never_cuts_an_escape_in_half(width: int) -> None:
    clipped = clip("ab\x1b]0;title\x07cd", width, "~")
    assert text_width(clipped) <= width
    body = clipped.removesuffix("~")
    assert body in visible("ab\x1b]0;title\x07cd")
    assert not body.endswith(("\\", "\\x", "\\x1", "\\x0")), clipped


def test_wide_characters_count_two_columns() -> None:
    assert text_width("漢字") == 4
    assert text_width("e\u0301") == 1, "a combining accent takes no column"
    assert clip("漢字漢字", 5, "…") == "漢字…"


def test_the_width_is_the_terminals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "57")
    assert terminal_width() == 57
    monkeypatch.delenv("COLUMNS")
    assert terminal_width() == 80, "not a terminal here: the default"


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "cp437"])
def test_streams_in_a_narrow_encoding_print_anything(monkeypatch: pytest.MonkeyPatch, encoding: str) -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding=encoding)
    monkeypatch.setattr(sys, "stdout", stream)
    prepare_streams()
    print("model text: … ✓ 漢字 é")
    stream.flush()
    printed = raw.getvalue().decode(encoding)
    assert printed.startswith("model text: ") and "\\u2026" in printed


def chunk(text: str, *, tool: str | None = None, call: str = "c1") -> StreamChunk:
    tool_call = ToolCallChunk(tool_id="t1", tool_name=tool, arguments=text) if tool else None
    return StreamChunk(content=text, agent_role="Agent", task_name="task", call_id=call, tool_call=tool_call)


def test_live_text_wraps_at_the_given_width_and_shows_controls(bus: EventBus) -> None:
    out = io.StringIO()
    printer = LiveChunkPrinter(bus, out, width=30)
    printer.show(chunk("", tool="\x1b]0;evil\x07search", call="c0"))
    printer.show(chunk("{}", tool="\x1b]0;evil\x07search", call="c0"))
    text = "a stream of words that goes on\tand on \x1b[2J past the edge of a narrow terminal"
    for word in text.split(" "):
        printer.show(chunk(word + " "))
    printer.finish()
    printer.close()
    lines = out.getvalue().splitlines()
    assert "  calls \\x1b]0;evil\\x07search" in lines, "then the arguments: too wide for the same line"
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue() and "\t" not in out.getvalue()
    assert all(len(line) <= 30 for line in lines), lines
    assert "\\x1b[2J" in out.getvalue(), "the escape is shown, whole"
    assert " ".join(" ".join(lines).split()).endswith("past the edge of a narrow terminal")


def test_a_failed_calls_first_chunk_is_none_and_an_unpriced_models_cost_unknown() -> None:
    table = UsageTable()
    table.add_call("Writer", "write", failed=True, chunks=0, first_chunk_s=None)
    table.add_call("Reader", "read", failed=False, chunks=3, input_tokens=5, output_tokens=3, first_chunk_s=0.25)
    rendered = table.render()
    rows = {line.split()[0]: line.split() for line in rendered.splitlines()[2:4]}
    assert rows["Writer"][-1] == "none" and rows["Writer"][3] == "1"
    assert rows["Reader"][-2:] == ["250", "ms"]
    assert rendered.endswith("total: 5 tokens in, 3 out, cost unknown for 1 call (litellm has no price for the model)")
    table.add_call("Reader", "read", failed=False, first_chunk_s=0.05, cost_usd=0.002)
    assert table.render().endswith("cost $0.002000 + unknown for 1 call (litellm's prices)")


def test_names_in_the_table_are_visible_and_clipped() -> None:
    table = UsageTable()
    table.add_call("\x1b]0;x\x07" + "A" * 40, "task", failed=False, cost_usd=0.0)
    first_row = table.render().splitlines()[2]
    assert first_row.startswith("\\x1b]0;x\\x07" + "A" * 11 + "…  task") and "\x1b" not in first_row
