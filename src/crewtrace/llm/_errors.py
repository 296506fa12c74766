"""Turn whatever a call raised into crewtrace's error tree."""

from __future__ import annotations

import asyncio

from crewtrace.errors import LLMCallError, LLMError, LLMStreamError

CANCELLED = "cancelled"
"""``error_type`` of a call the consumer abandoned, closed or cancelled."""


def is_cancellation(exc: BaseException) -> bool:
    return isinstance(exc, (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt))


def error_type_of(exc: BaseException) -> str:
    """A short, low-cardinality cause: litellm's exception class name, or ``cancelled``.

    litellm wraps every mid-stream failure in ``MidStreamFallbackError``; the
    wrapped exception (``APIConnectionError``, ``Timeout``...) is the cause.
    """
    if is_cancellation(exc):
        return CANCELLED
    if isinstance(exc, LLMError):
        return exc.error_type
    original = getattr(exc, "original_exception", None)
    if type(exc).__name__ == "MidStreamFallbackError" and isinstance(original, BaseException):
        return type(original).__name__
    return type(exc).__name__


def redact(text: str, secret: str | None) -> str:
    """Keep an API key out of messages that end up in events, logs and spans."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text


def to_llm_error(
    exc: BaseException, *, model: str, message: str, partial_text: str, chunks_received: int
) -> LLMError:
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
