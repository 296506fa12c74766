"""The one error tree of crewtrace.

    CrewtraceError
    ├── LLMError                  an LLM call failed
    │   ├── LLMCallError          ... before the first chunk (bad model, auth, 429, 500, timeout)
    │   └── LLMStreamError        ... after chunks arrived; carries the partial text
    ├── ConfigurationError        a Crew, Task or Agent that cannot run as built
    ├── MaxIterationsError        an agent's tool loop ran out of iterations without an answer
    ├── MetricsServerError        the Prometheus endpoint could not listen (also an OSError)
    └── MissingInputError         a {placeholder} that kickoff(inputs=...) did not fill

Catch ``CrewtraceError`` for everything, or a leaf for one cause. The original
exception (usually litellm's) is always chained as ``__cause__``.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "CrewtraceError",
    "LLMCallError",
    "LLMError",
    "LLMStreamError",
    "MaxIterationsError",
    "MetricsServerError",
    "MissingInputError",
]


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


class ConfigurationError(CrewtraceError):
    """A crew, task or agent was built in a way that cannot run."""


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
