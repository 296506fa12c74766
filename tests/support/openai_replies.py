"""Scripted replies for the fake OpenAI server and their wire encoding.

Kept apart from the HTTP plumbing so tests can build replies (and benchmarks can
pre-build chunk lists) without reading server code.
"""

from __future__ import annotations

import enum
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal


class Fault(enum.Enum):
    """Failure modes a Reply can inject."""

    STATUS_429 = "status_429"  # OpenAI-style rate-limit error before any chunk
    STATUS_500 = "status_500"  # OpenAI-style server error before any chunk
    RESET = "reset"  # TCP reset after `fault_after` chunks, no terminator
    MALFORMED = "malformed"  # a `data: {not json` event after `fault_after` chunks
    STALL = "stall"  # `fault_after` chunks, then silence until stop() or 30 s
    EMPTY = "empty"  # a 200 stream with no role/content chunk: finish + [DONE]
    ERROR_EVENT = "error_event"  # an OpenAI-style error in the stream, `data: {"error": ...}`, after `fault_after`


@dataclass(frozen=True)
class ToolCallReply:
    """One tool call the fake model makes; `arguments` is the JSON text."""

    id: str
    name: str
    arguments: str


@dataclass
class Reply:
    """What the server answers to one request.

    ``usage="auto"`` derives (prompt words, completion chunks) from the request;
    ``None`` sends no usage at all; a dict is sent as written (odd provider data: counts
    that are not integers, a ``cost`` that is not a number).  ``finish_reason=None`` means "stop", or
    "tool_calls" when ``tool_calls`` is non-empty.  ``fault_after`` counts the
    content/tool-call chunks sent (after the role chunk) before a mid-stream fault.
    ``delay`` is slept between SSE events, so streams can be paced or made slow.
    ``reasoning`` pieces stream first, as ``reasoning_content`` deltas (as reasoning models'
    OpenAI-compatible servers send a model's thinking), and count as completion tokens.
    ``framing`` writes the events as other servers and proxies do: ``crlf`` line ends, or
    ``decorated`` (a keep-alive comment, ``id:`` and ``retry:`` lines, the data over two lines).
    """

    chunks: list[str] = field(default_factory=list)
    usage: tuple[int, int] | dict[str, Any] | Literal["auto"] | None = "auto"
    finish_reason: str | None = None
    delay: float = 0.0
    model: str | None = None
    fault: Fault | None = None
    fault_after: int = 0
    tool_calls: list[ToolCallReply] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    framing: Literal["lf", "crlf", "decorated"] = "lf"

    def __post_init__(self) -> None:
        if self.finish_reason is None:
            self.finish_reason = "tool_calls" if self.tool_calls else "stop"


Responder = Callable[[dict[str, Any]], Reply]

EMBEDDING_DIMENSIONS = 16
"""Length of the server's embedding vectors unless a request asks for ``dimensions``."""


def embedding(text: Any, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A unit vector derived from the text: the same text always embeds the same, different texts differ."""
    digest = hashlib.sha256(str(text).encode()).digest()
    raw = [digest[i % len(digest)] - 127.5 + i for i in range(dimensions)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [v / norm for v in raw]


def chop(text: str, size: int = 4) -> list[str]:
    """Split text into `size`-character pieces (the last may be shorter)."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def numbered_chunks(n: int) -> list[str]:
    """n distinct chunks: litellm aborts a stream repeating one chunk 100 times."""
    return [f"w{i} " for i in range(n)]


def last_user_text(body: dict[str, Any]) -> str:
    """Text of the last user message (text parts joined for multi-part content)."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content or "")
    return ""


def default_responder(body: dict[str, Any]) -> Reply:
    """Deterministic reply naming the request, so concurrent tests can tell answers apart."""
    return Reply(chunks=chop(f"Answer for: {last_user_text(body)}"[:200]))


def prompt_tokens(body: dict[str, Any]) -> int:
    """Word count of all messages: cheap, deterministic and different per request."""
    words = sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or [])
    return max(1, words)


def resolve_usage(reply: Reply, body: dict[str, Any]) -> tuple[int, int] | dict[str, Any] | None:
    """(prompt, completion) tokens to report, or a usage object as written; "auto" counts words and chunks."""
    if reply.usage == "auto":
        return prompt_tokens(body), len(reply.reasoning) + len(reply.chunks) + len(reply.tool_calls)
    return reply.usage


def usage_json(usage: tuple[int, int] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(usage, dict):
        return usage
    prompt, completion = usage
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def framed(event: bytes, framing: str, number: int) -> bytes:
    """One SSE event (``data: ...\\n\\n``) in a reply's ``framing``."""
    if framing == "crlf":
        return event.replace(b"\n", b"\r\n")
    if framing == "decorated":
        data = event[len(b"data: ") : -2]
        head, comma, rest = data.partition(b", ")  # JSON allows a line break between tokens
        lines = b"data: " + head + comma + (b"\ndata: " + rest if comma else b"")
        return b": keep-alive\nid: %d\nretry: 1000\n%s\n\n" % (number, lines)
    return event


class ChunkEncoder:
    """Pre-serialised SSE events for one response; content chunks are a byte template."""

    def __init__(self, model: str) -> None:
        self._base: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": None,
        }
        head = json.dumps(self._base)[:-1].encode()
        self._prefix = b"data: " + head + b', "choices": [{"index": 0, "delta": {"content": '
        self._suffix = b'}, "logprobs": null, "finish_reason": null}]}\n\n'

    def content(self, text: str) -> bytes:
        return self._prefix + json.dumps(text).encode() + self._suffix

    def event(self, **fields: Any) -> bytes:
        return b"data: " + json.dumps({**self._base, **fields}).encode() + b"\n\n"

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self.event(choices=[choice])

    def tool_calls(self, calls: list[ToolCallReply]) -> Iterator[bytes]:
        """OpenAI delta format: id/name first, then the arguments in several pieces."""
        for index, call in enumerate(calls):
            head = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
            yield self.delta({"tool_calls": [head]})
            for piece in chop(call.arguments, 8):
                yield self.delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
