"""Keeping secrets and content out of what crewtrace records.

One path for every error crewtrace records or raises (LLM, tool, task, agent,
crew): :func:`error_message` gives the ``Type: message`` text with every known
secret and key-shaped token replaced and its length bounded. Known secrets are
the API keys an ``LLM`` was given or read from the provider's variable, the
secret-looking arguments it was given, the credentials in its base URL, and
the keys of the CrewAI LLMs the adapter sees; they are registered here once,
process-wide, so that layers which never saw the key (a tool's error, a task's
failure) redact it too.

URLs are redacted by shape as well as by value: the user and password of a URL
(``https://user:password@host/v1``) and the value of each secret-looking query
parameter (``?api-key=...``) are replaced wherever a URL appears in text.

What each consumer gets of an error: events (in-process, like the prompts they
carry) hold the redacted, bounded message (their ``error`` field redacts what
it is given, whoever builds the event); telemetry holds only the error type
unless content capture is on, because a message can echo tool arguments or
the request; exceptions crewtrace raises chain a redacted stand-in, never the
provider's own exception or its traceback.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Final
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "MAX_ERROR_CHARS",
    "REDACTED",
    "bound",
    "error_message",
    "provider_key",
    "redact",
    "register_secrets",
    "secrets_in_settings",
    "secrets_in_url",
]

REDACTED: Final = "***"
MAX_ERROR_CHARS: Final = 500
"""Longest error message crewtrace records; longer ones are cut, with a marker."""
_MIN_SECRET_CHARS = 4  # shorter strings would redact ordinary words

# API keys in the common shapes (OpenAI/Anthropic "sk-...", and similar prefixed tokens).
_KEY_PATTERN = re.compile(r"\b(?:sk|pk|rk|api|key)[-_][A-Za-z0-9_-]{12,}\b")
# A name that says its value is a secret: a query parameter, a keyword argument.
_SECRET_NAME = re.compile(r"key|token|secret|passw|pwd|signature|\bsig\b|auth|credential|session", re.IGNORECASE)
# The user[:password]@ of a URL (scheme://...@host): up to the last "@" before the path, as urlsplit reads it.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
# A query parameter (?name=value or &name=value) whose name says its value is a secret.
_SECRET_PARAM = re.compile(r"(?P<name>[?&;][^=&#\s]*=)(?P<value>[^&#\s]*)")

_lock = threading.Lock()
_known: frozenset[str] = frozenset()


def register_secrets(secrets: Iterable[str | None]) -> None:
    """Remember secrets to redact from everything recorded from now on (empty and short ones are ignored)."""
    global _known
    new = {s for s in secrets if isinstance(s, str) and len(s) >= _MIN_SECRET_CHARS}
    if new - _known:
        with _lock:
            _known = _known | new


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the registered secrets, ``secrets``, key-shaped tokens and URL credentials replaced by ``***``."""
    # Longest first, so a key that contains another is replaced whole.
    for secret in sorted({*_known, *secrets}, key=len, reverse=True):
        if len(secret) >= _MIN_SECRET_CHARS and secret in text:
            text = text.replace(secret, REDACTED)
    if "://" in text:
        text = _USERINFO.sub(rf"\g<scheme>{REDACTED}@", text)
    if "=" in text:
        text = _SECRET_PARAM.sub(_secret_param, text)
    return _KEY_PATTERN.sub(REDACTED, text)


def _secret_param(match: re.Match[str]) -> str:
    name = match.group("name")
    return f"{name}{REDACTED}" if _SECRET_NAME.search(name) and match.group("value") else match.group(0)


def secrets_in_url(url: str | None) -> Iterator[str]:
    """The password of a URL and the values of its secret-looking query parameters.

    Not the user name: often an ordinary word, it would be redacted from every message; in a URL the
    whole user information is replaced by shape (:func:`redact`).
    """
    if not url:
        return
    try:
        parts = urlsplit(url)
        if parts.password:
            yield parts.password
        yield from (value for name, value in parse_qsl(parts.query) if _SECRET_NAME.search(name) and value)
    except ValueError:  # not a URL that parses: nothing to take from it
        return


def secrets_in_settings(settings: Mapping[str, object]) -> Iterator[str]:
    """The string values of settings whose name says they are secret (``aws_secret_access_key=``, ``token=``).

    Mappings among the settings (``extra_headers={"api-key": ...}``) are searched too.
    """
    for name, value in settings.items():
        if isinstance(value, str) and _SECRET_NAME.search(str(name)):
            yield value
        elif isinstance(value, Mapping):
            yield from secrets_in_settings(value)


def provider_key(provider: str | None) -> str | None:
    """The provider's key from its conventional variable (``OPENAI_API_KEY`` for ``openai``), if set."""
    return os.environ.get(f"{provider.upper()}_API_KEY") if provider else None


def bound(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


def error_message(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """``Type: message`` of ``exc``, redacted and bounded: the one way an error becomes recorded text."""
    try:
        text = str(exc)
    except Exception:  # an exception whose __str__ fails still gets recorded, by its type
        text = "<message could not be read>"
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return bound(redact(described, secrets))
