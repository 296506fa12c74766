"""Reading CrewAI's event fields: times, ids, names, keys, tools, usage and error causes, as crewtrace wants them."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from crewai.llms.base_llm import BaseLLM
from crewai.utilities.string_utils import sanitize_tool_name

from crewtrace.errors import ErrorType, error_type_of, llm_error_type
from crewtrace.events import TokenUsage
from crewtrace.events.labels import OTHER
from crewtrace.redaction import error_message, provider_key, register_secrets, secrets_in_url

_logger = logging.getLogger("crewtrace.integrations.crewai")

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


def model_of(model: str | None, source: Any) -> tuple[str, str | None]:
    """The model as its provider names it, and the provider, as crewtrace's own LLMs report them.

    CrewAI's native providers hold the provider's name already (``gpt-4o-mini``, provider
    ``openai``); its litellm fallback holds litellm's ``openai/gpt-4o-mini``, split as litellm does.
    """
    name = model or getattr(source, "model", None) or "unknown"
    if "/" in name and getattr(source, "llm_type", None) == "litellm":
        provider, _, name = name.partition("/")
        return name, provider
    provider = getattr(source, "provider", None)
    if isinstance(provider, str) and provider:
        return name, provider
    return name, name.split("/", 1)[0] if "/" in name else None


def agent_model_of(agent: Any) -> tuple[str | None, str | None]:
    """An agent's model and provider (:func:`model_of` of its LLM), if it has one."""
    llm = getattr(agent, "llm", None)
    model = getattr(llm, "model", None)
    return model_of(model, llm) if isinstance(model, str) else (None, None)


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


def usage_of(usage: Any, model: str) -> TokenUsage | None:
    """CrewAI's usage dict (OpenAI or Anthropic key names) as TokenUsage; None when it sent none.

    Counts that are not token counts (odd provider data) leave the usage out, with a warning.
    """
    if not usage or not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    if prompt is None and completion is None:
        return None
    reported = TokenUsage.reported(prompt, completion)
    if reported is None:
        _logger.warning(
            "%s: the provider's usage has token counts that are not whole numbers (%s, %s): usage left out",
            model,
            type(prompt).__name__,
            type(completion).__name__,
        )
    return reported


def text_of(value: Any) -> str:
    """A response or output as text: strings as they are, CrewAI outputs by their ``raw``, anything else by str().

    A value with no text form (its ``__str__`` raises, or recurses too deep) is described by its type.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raw = getattr(value, "raw", None)
    if isinstance(raw, str):
        return raw
    try:
        return str(value)
    except Exception as exc:
        return f"<a {type(value).__name__} with no text form ({type(exc).__name__})>"


def arguments_of(tool_args: Any) -> str:
    if isinstance(tool_args, str):
        return tool_args
    try:
        return json.dumps(tool_args, default=str)
    except Exception:  # tuple keys, a __str__ that raises, nesting too deep: the arguments as text, if they have one
        return text_of(tool_args)


def register_keys(source: Any, event: Any) -> None:
    """Register for redaction the API keys of the CrewAI LLMs an event shows crewtrace.

    CrewAI's LLM objects keep their key (given, or read from the provider's variable) in
    ``api_key``; an LLM is the source of its call's events, an agent holds its ``llm`` and
    ``function_calling_llm``, a task or an executor its ``agent``, a crew its agents. A key in
    any shape is redacted from then on, not only the ``sk-...`` ones.
    """
    register_secrets(_keys(source, getattr(source, "agent", None), getattr(event, "agent", None)))


def _keys(*holders: Any) -> Iterator[str]:
    for holder in holders:
        for agent in (holder, *(getattr(holder, "agents", None) or ())):
            for llm in (agent, getattr(agent, "llm", None), getattr(agent, "function_calling_llm", None)):
                if isinstance(llm, BaseLLM):
                    key = getattr(llm, "api_key", None)
                    if isinstance(key, str):
                        yield key
                    env_key = provider_key(getattr(llm, "provider", None))
                    if env_key:
                        yield env_key
                    yield from secrets_in_url(getattr(llm, "base_url", None) or getattr(llm, "api_base", None))


def declared_tool(name: str, source: Any, event: Any) -> bool:
    """Whether ``name`` is one of the tools CrewAI offered the model, rather than one the model made up.

    CrewAI emits a tool's events for a name it found no tool for too ("Tool not found"). The
    tools offered are those of the event's source (an agent executor, a tool-usage helper, a
    lite agent, an agent: ``tools`` and ``original_tools``) and of the event's agent; an LLM
    as the source runs only the functions it was given. Names match as CrewAI matches them
    (its ``sanitize_tool_name``).
    """
    if isinstance(source, BaseLLM):
        return True
    offered: set[str] = set()
    for holder in (source, getattr(event, "agent", None)):
        for attribute in ("tools", "original_tools"):
            for tool in getattr(holder, attribute, None) or ():
                tool_name = getattr(tool, "name", None)
                if isinstance(tool_name, str):
                    offered.add(tool_name)
    if name in offered:
        return True
    wanted = sanitize_tool_name(name)
    return any(sanitize_tool_name(tool_name) == wanted for tool_name in offered)


def call_failure_of(error: Any, raised: str | None) -> tuple[str, str]:
    """:func:`failure_of` for an LLM call, whose type is the raised exception's as crewtrace names it, if known."""
    if isinstance(error, BaseException):
        return error_message(error), llm_error_type(error)
    message, error_type = failure_of(error)
    return message, raised or error_type


def failure_of(error: Any, error_class: Any = None) -> tuple[str, str]:
    """(message, error_type) from what CrewAI passed: an exception, or only its text.

    The message is redacted and bounded by the failure event; the type comes from the exception (or
    the class CrewAI gives), else from the text: an HTTP status or an exception
    class name in it, ``timeout``, or ``_OTHER``.
    """
    if isinstance(error, BaseException):
        return error_message(error), error_type_of(error)
    text = text_of(error)  # redacted as the failure event is built (FailureMixin)
    if isinstance(error_class, type) and issubclass(error_class, BaseException):
        return text, error_class.__name__
    return text, error_type_from_text(text)


def error_type_from_text(text: str) -> str:
    if "timed out" in text.lower() or "timeout" in text.lower():
        return ErrorType.TIMEOUT
    status = _STATUS.search(text)
    if status:
        code = status.group(1)
        return _STATUS_ERRORS.get(code, "InternalServerError" if code.startswith("5") else OTHER)
    name = _CLASS_NAME.search(text)
    return name.group(2) if name else OTHER
