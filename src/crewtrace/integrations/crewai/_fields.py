"""Reading CrewAI's event fields: times, ids, names, usage and error causes, as crewtrace wants them."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from crewtrace.errors import ErrorType, error_type_of
from crewtrace.events import TokenUsage
from crewtrace.events.labels import OTHER
from crewtrace.redaction import bound, error_message, redact

# CrewAI hands failures over as text only (LLMCallFailedEvent.error is str(exception)).
# The OpenAI SDK writes "Error code: 429 - ..."; these are the SDK's own class names for them.
_STATUS_ERRORS = {
    "400": "BadRequestError",
    "401": "AuthenticationError",
    "403": "PermissionDeniedError",
    "404": "NotFoundError",
    "409": "ConflictError",
    "422": "UnprocessableEntityError",
    "429": "RateLimitError",
}
_STATUS = re.compile(r"\b(?:Error code|status(?: code)?)[: ]+(\d{3})\b", re.IGNORECASE)
_CLASS_NAME = re.compile(r"\b((?:litellm\.|openai\.)?([A-Z][A-Za-z]*(?:Error|Exception|Timeout)))\b")


def timestamp_ns(moment: datetime) -> int:
    """An aware datetime as ns since the epoch, exact to the microsecond (no float rounding)."""
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def seconds_between(start_ns: int, end_ns: int) -> float:
    return max(0, end_ns - start_ns) / 1e9


def provider_of(model: str | None, source: Any) -> str | None:
    """The provider: the litellm-style prefix of the model name, else what CrewAI's LLM object says."""
    if model and "/" in model:
        return model.split("/", 1)[0]
    provider = getattr(source, "provider", None)
    return provider if isinstance(provider, str) and provider else None


def server_of(source: Any) -> tuple[str | None, int | None]:
    """Host and port of the endpoint CrewAI's LLM object talks to, if it has one set."""
    url = getattr(source, "base_url", None) or getattr(source, "api_base", None)
    if not isinstance(url, str) or not url:
        return None, None
    parts = urlsplit(url)
    try:
        return parts.hostname, parts.port
    except ValueError:
        return parts.hostname, None


def usage_of(usage: dict[str, Any] | None) -> TokenUsage | None:
    """CrewAI's usage dict (OpenAI or Anthropic key names) as TokenUsage; None when it sent none."""
    if not usage:
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    if prompt is None and completion is None:
        return None
    return TokenUsage(input_tokens=int(prompt or 0), output_tokens=int(completion or 0))


def text_of(value: Any) -> str:
    """A response or output as text: strings as they are, CrewAI outputs by their ``raw``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raw = getattr(value, "raw", None)
    return raw if isinstance(raw, str) else str(value)


def arguments_of(tool_args: Any) -> str:
    if isinstance(tool_args, str):
        return tool_args
    try:
        return json.dumps(tool_args, default=str)
    except (TypeError, ValueError):
        return str(tool_args)


def failure_of(error: Any, error_class: Any = None) -> tuple[str, str]:
    """(message, error_type) from what CrewAI passed: an exception, or only its text.

    The message is redacted and bounded; the type comes from the exception (or
    the class CrewAI gives), else from the text: an HTTP status or an exception
    class name in it, ``timeout``, or ``_OTHER``.
    """
    if isinstance(error, BaseException):
        return error_message(error), error_type_of(error)
    text = "" if error is None else str(error)
    message = bound(redact(text))
    if isinstance(error_class, type) and issubclass(error_class, BaseException):
        return message, error_class.__name__
    return message, error_type_from_text(text)


def error_type_from_text(text: str) -> str:
    if "timed out" in text.lower() or "timeout" in text.lower():
        return ErrorType.TIMEOUT
    status = _STATUS.search(text)
    if status:
        code = status.group(1)
        return _STATUS_ERRORS.get(code, "InternalServerError" if code.startswith("5") else OTHER)
    name = _CLASS_NAME.search(text)
    return name.group(2) if name else OTHER
