"""Events, the bus that delivers them, the listener base class, and the vocabulary they share.

The shared vocabulary: :class:`Attribution` (the flow, run, crew, task, agent and step every
event carries; :data:`ATTRIBUTION_FIELDS` names them), :mod:`crewtrace.events.labels`
(how tasks and agents are labelled) and :class:`ToolCall` (OpenAI's and CrewAI's shape).

Families: crew, task, agent, LLM and tool events (crewtrace's own crews and CrewAI's); flow,
retrieval, memory-save, guardrail and reasoning events (what CrewAI applications add).
"""

from crewtrace.events.base import ATTRIBUTION_FIELDS, Attribution, BaseEvent, FailureMixin, TokenUsage
from crewtrace.events.bus import EventBus, crewtrace_event_bus
from crewtrace.events.listener import BaseEventListener
from crewtrace.events.scope import ExecutionScope, current_scope, use_scope
from crewtrace.events.tool_calls import FunctionCall, ToolCall, ToolCallBuffer
from crewtrace.events.types.agent import (
    AgentExecutionCompletedEvent,
    AgentExecutionErrorEvent,
    AgentExecutionStartedEvent,
)
from crewtrace.events.types.crew import (
    CrewKickoffCompletedEvent,
    CrewKickoffFailedEvent,
    CrewKickoffStartedEvent,
)
from crewtrace.events.types.flow import (
    FlowCompletedEvent,
    FlowFailedEvent,
    FlowMethodCompletedEvent,
    FlowMethodFailedEvent,
    FlowMethodPausedEvent,
    FlowMethodStartedEvent,
    FlowPausedEvent,
    FlowStartedEvent,
)
from crewtrace.events.types.guardrail import GuardrailCompletedEvent, GuardrailFailedEvent, GuardrailStartedEvent
from crewtrace.events.types.llm import (
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
    LLMEvent,
    LLMStreamChunkEvent,
    StreamChunkType,
)
from crewtrace.events.types.memory import MemorySaveCompletedEvent, MemorySaveFailedEvent, MemorySaveStartedEvent
from crewtrace.events.types.reasoning import ReasoningCompletedEvent, ReasoningFailedEvent, ReasoningStartedEvent
from crewtrace.events.types.retrieval import RetrievalCompletedEvent, RetrievalFailedEvent, RetrievalStartedEvent
from crewtrace.events.types.task import TaskCompletedEvent, TaskFailedEvent, TaskStartedEvent
from crewtrace.events.types.tool import (
    ToolUsageErrorEvent,
    ToolUsageEvent,
    ToolUsageFinishedEvent,
    ToolUsageStartedEvent,
)

__all__ = [
    "ATTRIBUTION_FIELDS",
    "AgentExecutionCompletedEvent",
    "AgentExecutionErrorEvent",
    "AgentExecutionStartedEvent",
    "Attribution",
    "BaseEvent",
    "BaseEventListener",
    "CrewKickoffCompletedEvent",
    "CrewKickoffFailedEvent",
    "CrewKickoffStartedEvent",
    "EventBus",
    "ExecutionScope",
    "FailureMixin",
    "FlowCompletedEvent",
    "FlowFailedEvent",
    "FlowMethodCompletedEvent",
    "FlowMethodFailedEvent",
    "FlowMethodPausedEvent",
    "FlowMethodStartedEvent",
    "FlowPausedEvent",
    "FlowStartedEvent",
    "FunctionCall",
    "GuardrailCompletedEvent",
    "GuardrailFailedEvent",
    "GuardrailStartedEvent",
    "LLMCallCompletedEvent",
    "LLMCallFailedEvent",
    "LLMCallStartedEvent",
    "LLMEvent",
    "LLMStreamChunkEvent",
    "MemorySaveCompletedEvent",
    "MemorySaveFailedEvent",
    "MemorySaveStartedEvent",
    "ReasoningCompletedEvent",
    "ReasoningFailedEvent",
    "ReasoningStartedEvent",
    "RetrievalCompletedEvent",
    "RetrievalFailedEvent",
    "RetrievalStartedEvent",
    "StreamChunkType",
    "TaskCompletedEvent",
    "TaskFailedEvent",
    "TaskStartedEvent",
    "TokenUsage",
    "ToolCall",
    "ToolCallBuffer",
    "ToolUsageErrorEvent",
    "ToolUsageEvent",
    "ToolUsageFinishedEvent",
    "ToolUsageStartedEvent",
    "crewtrace_event_bus",
    "current_scope",
    "use_scope",
]
