"""The demo's two listeners: chunks printed as they stream, and totals per agent and task."""

from __future__ import annotations

import re
import sys
from collections import deque
from typing import TYPE_CHECKING, Any, TextIO

from crewtrace.cli.table import UsageTable
from crewtrace.cli.terminal import clip, terminal_width, text_width, visible
from crewtrace.events import (
    BaseEventListener,
    EventBus,
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    ToolUsageErrorEvent,
    ToolUsageFinishedEvent,
)

if TYPE_CHECKING:
    from crewtrace.crew import StreamChunk

__all__ = ["LiveChunkPrinter", "SummaryCollector"]

_INDENT = "  "
_WORDS = re.compile(r"[ \n]+|[^ \n]+")  # other whitespace is a control character, made visible in a word


class _Lines:
    """Writes streamed text wrapped at word boundaries to the width, never leaving spaces at a line end.

    Text is printed with its control characters made visible; only spaces and newlines lay it out.
    """

    def __init__(self, out: TextIO, width: int, ellipsis: str) -> None:
        self._out = out
        self._width = width
        self._ellipsis = ellipsis
        self._column = 0
        self._space = ""  # spaces held back until the next word shows they are not at a line end

    def newline(self, text: str = "") -> None:
        """Start a new indented line with ``text`` on it unwrapped (clipped to the width)."""
        line = _INDENT + clip(text, self._width - len(_INDENT), self._ellipsis)
        stripped = line.rstrip(" ")
        self._out.write(f"\n{stripped}")
        self._column = text_width(stripped)
        self._space = line[len(stripped) :]  # the indent, or a trailing space, until a word follows

    def header(self, text: str) -> None:
        shown = clip(text, self._width, self._ellipsis)
        self._out.write(f"\n\n{shown}")
        self._column = text_width(shown)
        self._space = " "

    def write(self, text: str) -> None:
        for piece in _WORDS.findall(text.replace("\r\n", "\n").replace("\t", " ")):
            if piece[0] in " \n":
                if "\n" in piece:
                    self.newline()
                else:
                    self._space += piece
                continue
            word = visible(piece)
            cells = text_width(word)
            if self._column + len(self._space) + cells > self._width and self._column >= len(_INDENT):
                self._out.write(f"\n{_INDENT}")
                self._column, self._space = len(_INDENT), ""
            self._out.write(self._space + word)
            self._column += len(self._space) + cells
            self._space = ""

    def flush(self) -> None:
        self._out.flush()


class LiveChunkPrinter(BaseEventListener):
    """Prints a streaming crew's chunks (:class:`~crewtrace.crew.StreamChunk`) and the tool results between them.

    A header comes whenever the agent or task changes; text follows on the same line, wrapped to the
    terminal's width (:func:`~crewtrace.cli.terminal.terminal_width` unless ``width`` is given), with
    control characters made visible.
    Each tool call and tool result gets an indented line of its own, and text after them starts on a fresh
    indented line. Tool results are events, not chunks: they are held until the next LLM call's first chunk
    (or :meth:`finish`), so they print where they happened even when the reader lags behind the run.
    """

    def __init__(
        self, bus: EventBus | None = None, out: TextIO = sys.stdout, *, width: int | None = None, ellipsis: str = "…"
    ) -> None:
        self._lines = _Lines(out, width or terminal_width(), ellipsis)
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


class SummaryCollector(BaseEventListener):
    """Totals per agent and task (:class:`~crewtrace.cli.table.UsageTable`), from the completed and failed events."""

    def __init__(self, bus: EventBus | None = None) -> None:
        self.table = UsageTable()
        super().__init__(bus)

    def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
        @crewtrace_event_bus.on(LLMCallCompletedEvent)
        @crewtrace_event_bus.on(LLMCallFailedEvent)
        def on_end(source: Any, event: LLMCallCompletedEvent | LLMCallFailedEvent) -> None:
            completed = event if isinstance(event, LLMCallCompletedEvent) else None
            usage = completed.usage if completed is not None else None
            self.table.add_call(
                event.agent_role,
                event.task_name,
                failed=completed is None,
                chunks=event.chunk_count,
                input_tokens=usage.input_tokens if usage is not None else 0,
                output_tokens=usage.output_tokens if usage is not None else 0,
                first_chunk_s=event.time_to_first_chunk_s,
                cost_usd=completed.cost_usd if completed is not None else None,
            )

        @crewtrace_event_bus.on(ToolUsageFinishedEvent)
        @crewtrace_event_bus.on(ToolUsageErrorEvent)
        def on_tool(source: Any, event: ToolUsageFinishedEvent | ToolUsageErrorEvent) -> None:
            self.table.add_tool_call(event.agent_role, event.task_name)
