"""An OpenAI SDK stream's chunks, read from its server-sent events without building a model per text chunk.

The OpenAI SDK turns every event into a ``ChatCompletionChunk`` through its generic,
type-introspecting constructor: about 270 Python calls and 100 µs per chunk, most of what
a streamed chunk costs end to end. Nearly every chunk of a reply is a text delta, of which
the recorder reads only the text. So the events are read here from the stream's HTTP
response, each parsed with ``json.loads``, and:

- a text delta (one choice, a delta with text and no tool calls, no finish reason, no
  usage), after the first chunk, is handed over as its text (``str``);
- any other chunk becomes the SDK's own ``ChatCompletionChunk``, built as the SDK
  builds it (``construct``), and is read as before.

What the SDK's stream does around the events is done the same way: ``[DONE]`` ends the
stream (the rest of the body is still read, so the connection can be reused), data with
an ``error`` raises ``openai.APIError`` with the server's message, and the response is
closed at the end, however the iteration ends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
from openai.types.chat import ChatCompletionChunk

__all__ = ["Chunk", "achunks", "chunks"]

Chunk = str | ChatCompletionChunk
"""A text delta's text, or any other chunk as the SDK's model."""
_GENERIC_ERROR = "An error occurred during streaming"


class _Reader:
    """One stream's lines into chunks: server-sent events (``field: value`` lines, a blank line ends one)."""

    __slots__ = ("_data", "_first", "_request", "done")

    def __init__(self, request: Any) -> None:
        self._request = request
        self._data: list[str] = []
        self._first = True
        self.done = False
        """``[DONE]`` came: the stream has no more chunks."""

    def line(self, line: str) -> Chunk | None:
        """Take one line; the chunk, when it ends an event that carries one."""
        if line:
            name, _, value = line.partition(":")
            if name == "data":  # comments (":..."), "event", "id" and "retry": a chunk or an error is in the data
                self._data.append(value[1:] if value[:1] == " " else value)
            return None
        if not self._data:
            return None
        data = "\n".join(self._data)
        self._data = []
        if data.startswith("[DONE]"):
            self.done = True
            return None
        parsed = json.loads(data)
        if isinstance(parsed, dict) and parsed.get("error"):
            error = parsed["error"]
            message = error.get("message") if isinstance(error, dict) else None
            raise openai.APIError(
                message=message if isinstance(message, str) and message else _GENERIC_ERROR,
                request=self._request,
                body=error,
            )
        if self._first:
            self._first = False
        else:
            text = _text_delta(parsed)
            if text is not None:
                return text
        if isinstance(parsed, dict):
            return ChatCompletionChunk.construct(**parsed)
        return parsed  # type: ignore[no-any-return]  # as the SDK hands it on: not a chunk, the recorder says so


def _text_delta(chunk: Any) -> str | None:
    """The text of a chunk that carries nothing but a text delta, else None."""
    if not isinstance(chunk, dict) or chunk.get("usage") is not None:
        return None
    choices = chunk.get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        return None
    choice = choices[0]
    if not isinstance(choice, dict) or choice.get("finish_reason") is not None:
        return None
    delta = choice.get("delta")
    if not isinstance(delta, dict) or delta.get("tool_calls") is not None:
        return None
    text = delta.get("content")
    return text if isinstance(text, str) else None


def chunks(stream: openai.Stream[Any]) -> Iterator[Chunk]:
    """The chunks of a sync OpenAI SDK stream."""
    response = stream.response
    reader = _Reader(response.request)
    try:
        lines = response.iter_lines()
        for line in lines:
            chunk = reader.line(line)
            if chunk is not None:
                yield chunk
            elif reader.done:
                for _ in lines:  # the rest of the body, so the connection can be reused
                    pass
                return
    finally:
        response.close()


async def achunks(stream: openai.AsyncStream[Any]) -> AsyncIterator[Chunk]:
    """The chunks of an async OpenAI SDK stream."""
    response = stream.response
    reader = _Reader(response.request)
    try:
        lines = response.aiter_lines()
        async for line in lines:
            chunk = reader.line(line)
            if chunk is not None:
                yield chunk
            elif reader.done:
                async for _ in lines:  # the rest of the body, so the connection can be reused
                    pass
                return
    finally:
        await response.aclose()
