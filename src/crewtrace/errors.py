"""The one error tree of crewtrace.

    CrewtraceError
    ├── LLMError                  an LLM call failed
    │   ├── LLMCallError          ... before the first chunk (bad model, auth, 429, 500, timeout)
    │   └── LLMStreamError        ... after chunks arrived; carries the partial text
    ├── ConfigurationError        an argument or setting that cannot work (also a ValueError)
    ├── StreamError               a stream used in a way it cannot be (also a RuntimeError)
    │   ├── StreamConsumed        ... iterated a second time
    │   ├── StreamClosed          ... closed before its run finished: there is no result
    │   └── ResultNotReady        ... its result read before the run finished
    ├── MaxIterationsError        an agent's tool loop ran out of iterations without an answer
    ├── MetricsServerError        the Prometheus endpoint could not listen (also an OSError)
    └── MissingInputError         a {placeholder} that kickoff(inputs=...) did not fill (also a KeyError)

Catch ``CrewtraceError`` for everything, or a leaf for one cause. The errors that are
also a builtin exception are so that code written for the builtin keeps working.

:class:`ErrorType` is the one vocabulary of ``error_type`` values (``error.type``
in telemetry): crewtrace's own words for its own causes, otherwise the
exception's class name.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Final

__all__ = [
    "ConfigurationError",
    "CrewtraceError",
    "ErrorType",
    "LLMCallError",
    "LLMError",
    "LLMStreamError",
    "MaxIterationsError",
    "MetricsServerError",
    "MissingInputError",
    "ResultNotReady",
    "StreamClosed",
    "StreamConsumed",
    "StreamError",
    "error_type_of",
    "is_cancellation",
    "llm_error_type",
]


class ErrorType:
    """The ``error_type`` values crewtrace assigns itself; any other value is an exception's class name."""

    CANCELLED: Final = "cancelled"
    """The consumer abandoned, closed or cancelled the work (break, ``close()``, GC, Ctrl-C, task cancel)."""
    TIMEOUT: Final = "timeout"
    """An LLM call or a tool ran out of time (before or during a stream)."""
    UNKNOWN_TOOL: Final = "unknown_tool"
    """The model asked for a tool the agent does not have."""
    INVALID_ARGUMENTS: Final = "invalid_arguments"
    """The model's tool arguments were not JSON or did not match the tool's schema."""
    INVALID_RESULT: Final = "invalid_result"
    """A tool returned something that cannot be sent back to the model as text."""
    BRIDGE_CLOSED: Final = "bridge_closed"
    """The telemetry bridge was closed while the span was still open."""
    CONNECTION: Final = "APIConnectionError"
    """An LLM call could not reach its server, or lost it (the OpenAI SDK's name, whichever client failed)."""
    AUTHENTICATION: Final = "AuthenticationError"
    """An LLM call had no API key, or the server refused it (the OpenAI SDK's name, whichever client failed)."""


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` means the work was stopped from outside rather than failed."""
    return isinstance(exc, (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt))


def error_type_of(exc: BaseException) -> str:
    """A short, low-cardinality cause: an :class:`ErrorType` value, or the exception's class name.

    litellm wraps every mid-stream failure in ``MidStreamFallbackError`` around an
    ``APIConnectionError``; the cause chain tells a timeout from a broken connection.
    """
    if is_cancellation(exc):
        return ErrorType.CANCELLED
    if isinstance(exc, LLMError):
        return exc.error_type
    original = getattr(exc, "original_exception", None)
    if type(exc).__name__ == "MidStreamFallbackError" and isinstance(original, BaseException):
        return ErrorType.TIMEOUT if _timed_out(original) else type(original).__name__
    if _is_timeout(exc):
        return ErrorType.TIMEOUT
    return type(exc).__name__


# A missing API key as the clients say it: the OpenAI SDK ("Missing credentials", "The api_key client option
# must be set"), CrewAI's native providers ("OPENAI_API_KEY is required") and litellm, which wraps them.
_MISSING_KEY = re.compile(r"missing credentials|api[_ ]key\b.{0,30}\b(?:must be set|is required)", re.IGNORECASE)


def llm_error_type(exc: BaseException) -> str:
    """:func:`error_type_of` for an LLM call: the same cause gets the same name whichever client failed.

    litellm reports a refused connection and a missing key as ``InternalServerError``, CrewAI's native
    providers as ``APIConnectionError`` and ``ValueError``, its litellm path as a bare ``Exception``
    around litellm's: each becomes :attr:`ErrorType.CONNECTION` or :attr:`ErrorType.AUTHENTICATION`,
    and a bare ``Exception`` is named by what it wraps.
    """
    if is_cancellation(exc) or isinstance(exc, LLMError):
        return error_type_of(exc)
    chain = list(_chain(exc))
    if any(_is_timeout(cause) for cause in chain):
        return ErrorType.TIMEOUT
    if any(is_connection_failure(cause) for cause in chain):
        return ErrorType.CONNECTION
    if any(_MISSING_KEY.search(str(cause)) for cause in chain):
        return ErrorType.AUTHENTICATION
    return error_type_of(next((cause for cause in chain if type(cause) is not Exception), exc))


def is_connection_failure(exc: BaseException) -> bool:
    """Whether ``exc`` itself is a failure to connect (builtin, httpx, httpcore, aiohttp, OpenAI SDK or litellm)."""
    return isinstance(exc, ConnectionError) or "Connect" in type(exc).__name__


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes (httpx, aiohttp, litellm, futures or builtin), each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        cause = current.__cause__ or current.__context__ or getattr(current, "original_exception", None)
        current = cause if isinstance(cause, BaseException) else None


def _timed_out(exc: BaseException) -> bool:
    """Whether a timeout is anywhere in the cause chain."""
    return any(_is_timeout(cause) for cause in _chain(exc))


class CrewtraceError(Exception):
    """Base class of every error crewtrace raises."""


class LLMError(CrewtraceError):
    """An LLM call failed; ``error_type`` is the short, low-cardinality cause."""

    def __init__(self, message: str, *, model: str, error_type: str) -> None:
        super().__init__(message)
        self.model = model
        self.error_type = error_type


class LLMCallError(LLMError):
    """The call failed before any chunk arrived."""


class LLMStreamError(LLMError):
    """The stream broke after some chunks arrived; nothing received is lost."""

    def __init__(self, message: str, *, model: str, error_type: str, partial_text: str, chunks_received: int) -> None:
        super().__init__(message, model=model, error_type=error_type)
        self.partial_text = partial_text
        self.chunks_received = chunks_received


class ConfigurationError(CrewtraceError, ValueError):
    """An argument or setting that cannot work: the message names it and what to change."""


class StreamError(CrewtraceError, RuntimeError):
    """A stream was used in a way it cannot be (read with the wrong kind of loop, say)."""


class StreamConsumed(StreamError):
    """A stream can be iterated once."""


class StreamClosed(StreamError):
    """The stream was closed before its run finished: there is no result."""


class ResultNotReady(StreamError):
    """The result was read before the run finished: iterate over every chunk first."""


class MissingInputError(CrewtraceError, KeyError):
    """A ``{placeholder}`` has no value in ``kickoff(inputs=...)``."""

    def __init__(self, placeholder: str, where: str) -> None:
        super().__init__(placeholder)
        self.placeholder = placeholder
        self.where = where

    def __str__(self) -> str:
        return (
            f"missing input {self.placeholder!r} used in {self.where}: "
            f"pass it as kickoff(inputs={{{self.placeholder!r}: ...}})"
        )


class MetricsServerError(CrewtraceError, OSError):
    """The metrics endpoint could not listen (``errno`` kept, e.g. ``EADDRINUSE``)."""


class MaxIterationsError(CrewtraceError):
    """An agent kept calling tools for ``max_iterations`` rounds without a final answer."""

    def __init__(self, agent_role: str, max_iterations: int) -> None:
        super().__init__(
            f"agent {agent_role!r} reached max_iterations={max_iterations} without a final answer: "
            "raise Agent(max_iterations=...) or check what its tools return"
        )
        self.agent_role = agent_role
        self.max_iterations = max_iterations
