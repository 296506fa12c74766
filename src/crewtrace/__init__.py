"""crewtrace: observability for LLM agent crews, built on OpenTelemetry.

The crew layer mirrors CrewAI's API: ``LLM``, ``Agent``, ``Task``, ``Crew``
and ``tool``. Events live in :mod:`crewtrace.events`; the OpenTelemetry bridge
in :mod:`crewtrace.telemetry`. The crew and LLM names load on first use, so
that ``crewtrace.events`` and ``crewtrace.telemetry`` never pay for importing
litellm.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from crewtrace._version import __version__
from crewtrace.errors import (
    ConfigurationError,
    CrewtraceError,
    LLMCallError,
    LLMError,
    LLMStreamError,
    MaxIterationsError,
    MetricsServerError,
    MissingInputError,
)

if TYPE_CHECKING:
    from crewtrace.crew import (
        Agent,
        Crew,
        CrewOutput,
        CrewStreamingOutput,
        Process,
        StreamChunk,
        StreamChunkType,
        Task,
        TaskOutput,
        Tool,
        ToolCallChunk,
        tool,
    )
    from crewtrace.llm import LLM

_LAZY = {
    "LLM": "crewtrace.llm",
    **dict.fromkeys(
        (
            "Agent",
            "Crew",
            "CrewOutput",
            "CrewStreamingOutput",
            "Process",
            "StreamChunk",
            "StreamChunkType",
            "Task",
            "TaskOutput",
            "Tool",
            "ToolCallChunk",
            "tool",
        ),
        "crewtrace.crew",
    ),
}

__all__ = [
    "LLM",
    "Agent",
    "ConfigurationError",
    "Crew",
    "CrewOutput",
    "CrewStreamingOutput",
    "CrewtraceError",
    "LLMCallError",
    "LLMError",
    "LLMStreamError",
    "MaxIterationsError",
    "MetricsServerError",
    "MissingInputError",
    "Process",
    "StreamChunk",
    "StreamChunkType",
    "Task",
    "TaskOutput",
    "Tool",
    "ToolCallChunk",
    "__version__",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'crewtrace' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
