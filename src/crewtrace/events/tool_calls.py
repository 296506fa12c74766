"""Tool calls in OpenAI's (and CrewAI's) shape, and the buffer that assembles them from streamed fragments.

A model streams a tool call as fragments that share an ``index``: the first
carries the call's id and function name, every fragment a piece of the JSON
arguments. :class:`ToolCallBuffer` is the one place such fragments are put
together, for the LLM layer, the crew stream and adapters alike.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["FunctionCall", "ToolCall", "ToolCallBuffer"]


class FunctionCall(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str | None = None
    arguments: str = ""
    """The JSON arguments: in a streamed chunk, those received so far."""


class ToolCall(BaseModel):
    """A tool call the model asked for; in a streamed chunk, the call as far as it has arrived (as in CrewAI)."""

    model_config = ConfigDict(frozen=True)

    id: str | None = None
    type: str = "function"
    function: FunctionCall
    index: int = 0
    """Which tool call of the response, from 0."""


class ToolCallBuffer:
    """Assembles streamed tool-call fragments by their index."""

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[int, tuple[str | None, str | None, str]] = {}  # index -> (id, name, arguments so far)

    def add(self, index: int, id: str | None, name: str | None, arguments: str) -> ToolCall:
        """Take one fragment; return its call as assembled so far (id and name from whichever fragment had them)."""
        known_id, known_name, so_far = self._calls.get(index, (None, None, ""))
        entry = (id or known_id, name or known_name, so_far + arguments)
        self._calls[index] = entry
        return ToolCall(id=entry[0], function=FunctionCall(name=entry[1], arguments=entry[2]), index=index)

    def calls(self) -> list[ToolCall]:
        """Every call, in index order; a call whose id never came gets ``call_{index}``."""
        return [
            ToolCall(id=id or f"call_{index}", function=FunctionCall(name=name or "", arguments=arguments), index=index)
            for index, (id, name, arguments) in sorted(self._calls.items())
        ]

    def __bool__(self) -> bool:
        return bool(self._calls)
