"""Turn whatever a call raised into crewtrace's error tree."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable

from crewtrace.errors import LLMCallError, LLMError, LLMStreamError

CANCELLED = "cancelled"
"""``error_type`` of a call the consumer abandoned, closed or cancelled."""
TIMEOUT = "Timeout"
"""``error_type`` of a call that timed out (litellm's name for it, before or during a stream)."""


def is_cancellation(exc: BaseException) -> bool:
    return isinstance(exc, (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt))


def error_type_of(exc: BaseException) -> str:
    """A short, low-cardinality cause: litellm's exception class name, ``Timeout``, or ``cancelled``.

    litellm wraps every mid-stream failure in ``MidStreamFallbackError`` around an
    ``APIConnectionError``; the cause chain tells a timeout from a broken connection.
    """
    if is_cancellation(exc):
        return CANCELLED
    if isinstance(exc, LLMError):
        return exc.error_type
    original = getattr(exc, "original_exception", None)
    if type(exc).__name__ == "MidStreamFallbackError" and isinstance(original, BaseException):
        return TIMEOUT if _timed_out(original) else type(original).__name__
    return type(exc).__name__


def _timed_out(exc: BaseException) -> bool:
    """Whether a timeout is anywhere in the cause chain (httpx, aiohttp, litellm or builtin)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError) or "Timeout" in type(current).__name__:
            return True
        current = current.__cause__ or current.__context__ or getattr(current, "original_exception", None)
    return False


# API keys in the common shapes (OpenAI/Anthropic "sk-...", and similar prefixed tokens).
_KEY_PATTERN = re.compile(r"\b(?:sk|pk|rk|api|key)[-_][A-Za-z0-9_-]{12,}\b")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Keep API keys out of messages that end up in events, logs and spans: the known ones, and key-shaped tokens."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_PATTERN.sub("***", text)


def to_llm_error(exc: BaseException, *, model: str, message: str, partial_text: str, chunks_received: int) -> LLMError:
    error_type = error_type_of(exc)
    if chunks_received == 0:
        return LLMCallError(f"{model}: {message}", model=model, error_type=error_type)
    return LLMStreamError(
        f"{model}: stream broke after {chunks_received} chunks: {message}",
        model=model,
        error_type=error_type,
        partial_text=partial_text,
        chunks_received=chunks_received,
    )
