"""crewtrace: observability for LLM agent crews, built on OpenTelemetry.

The crew layer below mirrors CrewAI's API: ``LLM``, ``Agent``, ``Task``,
``Crew``. Events live in :mod:`crewtrace.events`; the OpenTelemetry bridge in
:mod:`crewtrace.telemetry`.
"""

from crewtrace._version import __version__
from crewtrace.crew import Agent, Crew, CrewOutput, Task, TaskOutput, Tool, tool
from crewtrace.errors import (
    ConfigurationError,
    CrewtraceError,
    LLMCallError,
    LLMError,
    LLMStreamError,
    MaxIterationsError,
    MissingInputError,
)
from crewtrace.llm import LLM

__all__ = [
    "LLM",
    "Agent",
    "ConfigurationError",
    "Crew",
    "CrewOutput",
    "CrewtraceError",
    "LLMCallError",
    "LLMError",
    "LLMStreamError",
    "MaxIterationsError",
    "MissingInputError",
    "Task",
    "TaskOutput",
    "Tool",
    "__version__",
    "tool",
]
