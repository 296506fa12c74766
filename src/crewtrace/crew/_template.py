"""``{placeholder}`` templates in roles, goals, backstories, descriptions and outputs.

A template names each input it uses (``{topic}``, also ``{topic!r}``, ``{n:>{width}}``
with nested fields, ``{user.name}``). Positional fields (``{}``, ``{0}``) and broken
braces are refused when the agent or task is built, not at kickoff.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from string import Formatter
from typing import Any

from crewtrace.errors import ConfigurationError, MissingInputError

_FIELD_BASE = re.compile(r"[^.\[]*")  # "user" of "user.name" or "items[0]"
_FORMATTER = Formatter()


def placeholders(template: str) -> list[str]:
    """Input names used in ``template`` (nested format fields included), in order of appearance.

    Raises :class:`ConfigurationError` for a malformed template or a positional field.
    """
    try:
        names = list(_names(template))
    except ValueError as exc:
        raise ConfigurationError(f"malformed template {template!r}: {exc} (write '{{{{' for a literal brace)") from exc
    return list(dict.fromkeys(names))


def _names(template: str) -> Iterator[str]:
    for _, field, spec, _ in _FORMATTER.parse(template):
        if field is None:
            continue
        name = _FIELD_BASE.match(field)
        base = name.group(0) if name else ""
        if not base.isidentifier():
            raise ValueError(f"field {{{field}}} has no input name; name it, as in {{topic}}")
        yield base
        if spec:
            yield from _names(spec)


def fill(template: str, inputs: Mapping[str, Any], where: str) -> str:
    """Substitute every placeholder; a missing one raises :class:`MissingInputError`."""
    for name in placeholders(template):
        if name not in inputs:
            raise MissingInputError(name, where)
    try:
        return template.format_map(inputs)
    except (ValueError, TypeError, AttributeError, LookupError) as exc:  # e.g. {n:d} given a string
        raise ConfigurationError(
            f"{where} cannot be filled with the inputs given: {type(exc).__name__}: {exc}"
        ) from None  # the inputs are content: not chained
