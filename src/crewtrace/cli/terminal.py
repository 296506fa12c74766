"""Foreign text on a terminal: control characters made visible, widths measured, streams that never crash.

Whatever a model generated (streamed text, tool names it made up) or a user or another program named
(agents, tasks, spans, paths) reaches the terminal through :func:`visible` or :func:`clip`. ESC, OSC
and the other C0 and C1 controls, DEL and the bidirectional overrides are printed as escapes
(``\\x1b``, ``\\x9b``, ``\\u202e``), so no text can clear the screen, set the window title, plant a
hyperlink or reorder what is shown. Clipping works on the visible form, so an escape is never cut
in half.
"""

from __future__ import annotations

import io
import shutil
import sys
import unicodedata
from typing import Final

__all__ = ["DEFAULT_WIDTH", "clip", "prepare_streams", "terminal_width", "text_width", "visible"]

DEFAULT_WIDTH: Final = 80
"""The width assumed when the output is not a terminal and ``COLUMNS`` is not set."""
_MIN_WIDTH: Final = 20
# Bidirectional embeddings, overrides and isolates: they reorder what follows them on screen.
_BIDI: Final = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0, DEL and C1 (Unicode's Cc), the bidi controls, and lone surrogates (which no encoding prints).
_ESCAPES: Final = {code: _escape(code) for code in (*range(0x20), *range(0x7F, 0xA0), *_BIDI, *range(0xD800, 0xE000))}


def visible(text: str) -> str:
    """``text`` with every control character written as an escape; everything else unchanged."""
    return text.translate(_ESCAPES)


def _cells(char: str) -> int:
    """Columns one character takes: 2 for wide East Asian forms, 0 for combining marks."""
    if unicodedata.combining(char) or unicodedata.category(char) in ("Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def text_width(text: str) -> int:
    """Columns that ``text`` (already visible) takes on a terminal."""
    return len(text) if text.isascii() else sum(_cells(char) for char in text)


def clip(text: str, width: int, ellipsis: str = "…") -> str:
    """``visible(text)`` cut to ``width`` columns, ending in ``ellipsis`` when cut; escapes stay whole."""
    shown = visible(text)
    if text_width(shown) <= width:
        return shown
    room = width - text_width(ellipsis)
    pieces: list[str] = []
    used = 0
    for char in text:
        piece = _ESCAPES.get(ord(char), char)
        cells = text_width(piece)
        if used + cells > room:
            break
        pieces.append(piece)
        used += cells
    return "".join(pieces) + ellipsis


def terminal_width() -> int:
    """The terminal's width in columns (``COLUMNS`` first, then the terminal, else 80)."""
    return max(shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns, _MIN_WIDTH)


def prepare_streams() -> None:
    """Let stdout and stderr print any text: what their encoding lacks becomes an escape, not a crash.

    A terminal set to ASCII, Latin-1 or cp437 (``PYTHONIOENCODING``, an old console) cannot print
    every character a model may stream; ``backslashreplace`` prints those as ``\\u2026`` instead of
    raising ``UnicodeEncodeError`` halfway through a run.
    """
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")
