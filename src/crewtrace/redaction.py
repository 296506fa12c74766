"""Keeping secrets and content out of what crewtrace records.

One path for every error crewtrace records or raises (LLM, tool, task, agent,
crew): :func:`error_message` gives the ``Type: message`` text with every known
secret and key-shaped token replaced and its length bounded. Known secrets are
the API keys an ``LLM`` was given or read from the provider's variable; they
are registered here once, process-wide, so that layers which never saw the
key (a tool's error, a task's failure) redact it too.

What each consumer gets of an error: events (in-process, like the prompts they
carry) hold the redacted, bounded message; telemetry holds only the error type
unless content capture is on, because a message can echo tool arguments or
the request; exceptions crewtrace raises chain a redacted stand-in, never the
provider's own exception text.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Final

__all__ = ["MAX_ERROR_CHARS", "REDACTED", "error_message", "redact", "register_secrets"]

REDACTED: Final = "***"
MAX_ERROR_CHARS: Final = 500
"""Longest error message crewtrace records; longer ones are cut, with a marker."""
_MIN_SECRET_CHARS = 4  # shorter strings would redact ordinary words

# API keys in the common shapes (OpenAI/Anthropic "sk-...", and similar prefixed tokens).
_KEY_PATTERN = re.compile(r"\b(?:sk|pk|rk|api|key)[-_][A-Za-z0-9_-]{12,}\b")

_lock = threading.Lock()
_known: frozenset[str] = frozenset()


def register_secrets(secrets: Iterable[str | None]) -> None:
    """Remember secrets to redact from everything recorded from now on (empty and short ones are ignored)."""
    global _known
    new = {s for s in secrets if s and len(s) >= _MIN_SECRET_CHARS}
    if new - _known:
        with _lock:
            _known = _known | new


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the registered secrets, ``secrets``, and key-shaped tokens replaced by ``***``."""
    # Longest first, so a key that contains another is replaced whole.
    for secret in sorted({*_known, *secrets}, key=len, reverse=True):
        if len(secret) >= _MIN_SECRET_CHARS and secret in text:
            text = text.replace(secret, REDACTED)
    return _KEY_PATTERN.sub(REDACTED, text)


def bound(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


def error_message(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """``Type: message`` of ``exc``, redacted and bounded: the one way an error becomes recorded text."""
    text = str(exc)
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return bound(redact(described, secrets))
