"""The one rule for task and agent labels, and the value that stands for everything past a cap.

A label names a task or an agent in span names and metric labels, so it must be
short, stable across runs and processes, and never content: it is taken from
the template as written (before kickoff inputs are filled in), never holds a
memory address (CrewAI's planner writes object reprs into descriptions), and is
at most :data:`MAX_LABEL_CHARS` characters. Crewtrace's own crews and the
CrewAI adapter both label through :func:`label`.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_LABEL_CHARS", "OTHER", "UNKNOWN", "label"]

OTHER: Final = "_OTHER"
"""The label of every value past a cardinality cap (the GenAI conventions' fallback value)."""
UNKNOWN: Final = "_UNKNOWN"
"""The label of a name that is content, not a label: a tool name the model made up."""

MAX_LABEL_CHARS: Final = 48
_MAX_WORDS = 6
_ADDRESS = re.compile(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>|\b0x[0-9a-fA-F]+\b")
_WORDS = re.compile(r"\{[^{}]*\}|[\w'-]+")
_SPACE = re.compile(r"\s+")


def label(name: str | None, template: str | None = None, *, fallback: str = "task") -> str:
    """A short, stable label: ``name`` as given when it is short and plain, else the first words of one.

    ``name`` is a name the user chose (a task's ``name``, an agent's role as written); ``template``
    is the longer text to fall back on (a task's description as written). A name of at most
    :data:`MAX_LABEL_CHARS` characters is kept as it is, with its whitespace collapsed; longer text
    gives its first six words (placeholders kept as written, memory addresses dropped), cut to
    :data:`MAX_LABEL_CHARS` characters.
    """
    for text in (name, template):
        if not text:
            continue
        plain = _SPACE.sub(" ", _ADDRESS.sub("", text)).strip()
        if plain and len(plain) <= MAX_LABEL_CHARS and text is name and plain.isprintable():
            return plain
        words = " ".join(_WORDS.findall(plain)[:_MAX_WORDS])[:MAX_LABEL_CHARS].strip()
        if words:
            return words
    return fallback
