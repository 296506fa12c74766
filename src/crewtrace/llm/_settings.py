"""Checks of ``LLM(...)`` arguments at construction, so a bad value fails there, naming the argument.

Without them ``timeout=0`` makes every call fail as a connection error (and that
error type lands in telemetry), and ``temperature="hot"`` fails only at call time,
as a validation error about an event.
"""

from __future__ import annotations

from numbers import Real
from urllib.parse import urlsplit

from crewtrace.errors import ConfigurationError
from crewtrace.redaction import redact

MAX_TEMPERATURE = 2.0
"""The widest range a provider accepts (OpenAI's 0-2)."""


def validated(
    *,
    model: object,
    temperature: object,
    max_tokens: object,
    base_url: object,
    api_key: object,
    timeout: object,
) -> None:
    """Raise :class:`~crewtrace.errors.ConfigurationError` naming the first bad argument and a good value."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError(f"model must be a non-empty string like 'openai/gpt-4o-mini', got {model!r}")
    if timeout is not None and _number("timeout", timeout) <= 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if temperature is not None and not 0 <= _number("temperature", temperature) <= MAX_TEMPERATURE:
        raise ConfigurationError(f"temperature must be between 0 and {MAX_TEMPERATURE:g}, got {temperature!r}")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise ConfigurationError(f"max_tokens must be a positive int or None, got {max_tokens!r}")
        if max_tokens <= 0:
            raise ConfigurationError(f"max_tokens must be a positive int or None, got {max_tokens!r}")
    if api_key is not None and not isinstance(api_key, str):
        raise ConfigurationError(f"api_key must be a string or None, got a {type(api_key).__name__}")
    if base_url is not None:
        if not isinstance(base_url, str):
            raise ConfigurationError(
                f"base_url must be a string like 'http://127.0.0.1:8000/v1' or None, got a {type(base_url).__name__}"
            )
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(  # the URL as written, less any credentials in it
                f"base_url must be an http:// or https:// URL like 'http://127.0.0.1:8000/v1', got {redact(base_url)!r}"
            )


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigurationError(f"{name} must be a number, got {value!r}")
    return float(value)
