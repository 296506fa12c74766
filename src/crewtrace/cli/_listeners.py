"""The demo's two listeners: chunks printed as they stream, and totals per agent and task."""

from __future__ import annotations

import re
import sys
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, TextIO

from crewtrace.cli.waterfall import format_seconds
from crewtrace.crew import StreamChunk
from crewtrace.events import (
    BaseEventListener,
    EventBus,
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    ToolUsageErrorEvent,
    ToolUsageFinishedEvent,
)

__all__ = ["LiveChunkPrinter", "SummaryCollector"]

_INDENT = "  "
_WIDTH = 80
_WORDS = re.compile(r"\s+|\S+")


class _Lines:
    """Writes streamed text wrapped at word boundaries to 80 columns, never leaving spaces at a line end."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._column = 0
        self._space = ""  # whitespace held back until the next word shows it is not at a line end

    def newline(self, text: str = "") -> None:
        """Start a new indented line with ``text`` on it unwrapped (clipped to the width)."""
        line = f"{_INDENT}{text}"
        if len(line) > _WIDTH:
            line = line[: _WIDTH - 1] + "…"
        stripped = line.rstrip()
        self._out.write(f"\n{stripped}")
        self._column = len(stripped)
        self._space = line[len(stripped) :]  # the indent, or a trailing space, until a word follows

    def header(self, text: str) -> None:
        self._space = ""
        self._out.write(f"\n\n{text}")
        self._column = len(text)
        self._space = " "

    def write(self, text: str) -> None:
        for piece in _WORDS.findall(text):
            if piece.isspace():
                if "\n" in piece:
                    self.newline()
                else:
                    self._space += piece
                continue
            if self._column + len(self._space) + len(piece) > _WIDTH and self._column >= len(_INDENT):
                self._out.write(f"\n{_INDENT}")
                self._column, self._space = len(_INDENT), ""
            self._out.write(self._space + piece)
            self._column += len(self._space) + len(piece)
            self._space = ""

    def flush(self) -> None:
        self._out.flush()


class LiveChunkPrinter(BaseEventListener):
    """Prints a streaming crew's chunks (:class:`~crewtrace.crew.StreamChunk`) and the tool results between them.

    A header comes whenever the agent or task changes; text follows on the same line, wrapped to 80 columns.
    Each tool call and tool result gets an indented line of its own, and text after them starts on a fresh
    indented line. Tool results are events, not chunks: they are held until the next LLM call's first chunk
    (or :meth:`finish`), so they print where they happened even when the reader lags behind the run.
    """

    def __init__(self, bus: EventBus | None = None, out: TextIO = sys.stdout) -> None:
        self._lines = _Lines(out)
        self._last: tuple[str, str] | None = None
        self._call_id = ""
        self._tool_call: tuple[str, int] | None = None
        self._text_needs_line = False
        self._results: deque[str] = deque()  # appended on the run's thread, printed on the reader's
        super().__init__(bus)

    def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
        @crewtrace_event_bus.on(ToolUsageFinishedEvent)
        @crewtrace_event_bus.on(ToolUsageErrorEvent)
        def on_tool_result(source: Any, event: ToolUsageFinishedEvent | ToolUsageErrorEvent) -> None:
            result = event.output if isinstance(event, ToolUsageFinishedEvent) else f"error: {event.error}"
            self._results.append(f"{event.tool_name} -> {result.splitlines()[0] if result else ''}")

    def show(self, chunk: StreamChunk) -> None:
        if chunk.call_id != self._call_id:
            self._call_id = chunk.call_id
            self._print_results()
        who = (chunk.agent_role, chunk.task_name)
        if who != self._last:
            self._last = who
            self._lines.header(f"[{chunk.agent_role} | {chunk.task_name}]")
            self._text_needs_line = False
        if chunk.tool_call is not None:
            tool_call = (chunk.call_id, chunk.tool_call.index)
            if tool_call != self._tool_call:  # its first fragment
                self._tool_call = tool_call
                self._lines.newline(f"calls {chunk.tool_call.tool_name} ")
            self._lines.write(chunk.content)
            self._text_needs_line = True
        elif chunk.content:
            if self._text_needs_line:
                self._lines.newline()
                self._text_needs_line = False
            self._lines.write(chunk.content)
        self._lines.flush()

    def finish(self) -> None:
        """Print the tool results no chunk followed (the run ended, or failed, after them)."""
        self._print_results()
        self._lines.flush()

    def _print_results(self) -> None:
        while self._results:
            self._lines.newline(self._results.popleft())
            self._text_needs_line = True


@dataclass
class _Row:
    calls: int = 0
    failed: int = 0
    tool_calls: int = 0
    chunks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    first_chunk_s: float = 0.0
    duration_s: float = 0.0


class SummaryCollector(BaseEventListener):
    """Totals per agent and task, from the completed and failed events alone."""

    def __init__(self, bus: EventBus | None = None) -> None:
        self.rows: dict[tuple[str, str], _Row] = {}
        self._lock = threading.Lock()
        super().__init__(bus)

    def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
        @crewtrace_event_bus.on(LLMCallCompletedEvent)
        @crewtrace_event_bus.on(LLMCallFailedEvent)
        def on_end(source: Any, event: LLMCallCompletedEvent | LLMCallFailedEvent) -> None:
            key = (event.agent_role or "-", event.task_name or "-")
            with self._lock:
                row = self.rows.setdefault(key, _Row())
                row.calls += 1
                row.chunks += event.chunk_count
                row.duration_s += event.duration_s
                row.first_chunk_s += event.time_to_first_chunk_s or 0.0
                if isinstance(event, LLMCallFailedEvent):
                    row.failed += 1
                    return
                if event.usage is not None:
                    row.input_tokens += event.usage.input_tokens
                    row.output_tokens += event.usage.output_tokens
                row.cost_usd += event.cost_usd or 0.0

        @crewtrace_event_bus.on(ToolUsageFinishedEvent)
        @crewtrace_event_bus.on(ToolUsageErrorEvent)
        def on_tool(source: Any, event: ToolUsageFinishedEvent | ToolUsageErrorEvent) -> None:
            with self._lock:
                self.rows.setdefault((event.agent_role or "-", event.task_name or "-"), _Row()).tool_calls += 1

    def table(self) -> str:
        """Totals per agent and task and the mean time to first chunk per call; fits 80 columns.

        Columns are found by their heading (tests and scripts parse them); notes follow a blank line.
        """
        header = ("agent", "task", "calls", "failed", "chunks", "tokens in", "tokens out", "ttfc")
        lines = [header]
        for (agent, task), row in sorted(self.rows.items()):
            lines.append(
                (
                    agent,
                    task,
                    str(row.calls),
                    str(row.failed),
                    str(row.chunks),
                    str(row.input_tokens),
                    str(row.output_tokens),
                    format_seconds(row.first_chunk_s / max(row.calls, 1)),
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        rendered = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
        rendered.insert(1, "  ".join("-" * w for w in widths))
        rows = self.rows.values()
        rendered += [
            "",
            f"ttfc: mean time to first chunk per call; tool calls: {sum(r.tool_calls for r in rows)}",
            f"total: {sum(r.input_tokens for r in rows)} tokens in, {sum(r.output_tokens for r in rows)} out, "
            f"cost ${sum(r.cost_usd for r in rows):.6f} (litellm's prices)",
        ]
        return "\n".join(rendered)
