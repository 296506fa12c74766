"""``{placeholder}`` templates in roles, goals, backstories, descriptions and outputs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from string import Formatter
from typing import Any

from crewtrace.errors import ConfigurationError, MissingInputError

_LABEL_WORDS = 6
_LABEL_CHARS = 48


def placeholders(template: str) -> list[str]:
    """Names used as ``{name}`` in ``template``, in order of appearance."""
    try:
        return [name for _, name, _, _ in Formatter().parse(template) if name]
    except ValueError as exc:
        raise ConfigurationError(f"malformed template {template!r}: {exc} (write '{{{{' for a literal brace)") from exc


def fill(template: str, inputs: Mapping[str, Any], where: str) -> str:
    """Substitute every placeholder; a missing one raises :class:`MissingInputError`."""
    for name in placeholders(template):
        if name not in inputs:
            raise MissingInputError(name, where)
    return template.format_map(inputs)


def label(template: str) -> str:
    """A short, stable label from a template's first words, placeholders kept as written.

    Telemetry uses it as the task's name when none is given: low cardinality,
    because it never contains the values filled in at kickoff.
    """
    words = re.findall(r"\{[^{}]*\}|[\w'-]+", template)[:_LABEL_WORDS]
    return " ".join(words)[:_LABEL_CHARS] or "task"
