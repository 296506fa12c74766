"""Events, the bus that delivers them, and the listener base class."""

from crewtrace.events.base import BaseEvent, TokenUsage
from crewtrace.events.bus import EventBus, crewtrace_event_bus
from crewtrace.events.listener import BaseEventListener
from crewtrace.events.scope import ExecutionScope, current_scope, use_scope
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
from crewtrace.events.types.llm import (
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
    LLMEvent,
    LLMStreamChunkEvent,
    ToolCall,
    ToolCallChunk,
)
from crewtrace.events.types.task import TaskCompletedEvent, TaskFailedEvent, TaskStartedEvent
from crewtrace.events.types.tool import (
    ToolUsageErrorEvent,
    ToolUsageEvent,
    ToolUsageFinishedEvent,
    ToolUsageStartedEvent,
)

__all__ = [
    "AgentExecutionCompletedEvent",
    "AgentExecutionErrorEvent",
    "AgentExecutionStartedEvent",
    "BaseEvent",
    "BaseEventListener",
    "CrewKickoffCompletedEvent",
    "CrewKickoffFailedEvent",
    "CrewKickoffStartedEvent",
    "EventBus",
    "ExecutionScope",
    "LLMCallCompletedEvent",
    "LLMCallFailedEvent",
    "LLMCallStartedEvent",
    "LLMEvent",
    "LLMStreamChunkEvent",
    "TaskCompletedEvent",
    "TaskFailedEvent",
    "TaskStartedEvent",
    "TokenUsage",
    "ToolCall",
    "ToolCallChunk",
    "ToolUsageErrorEvent",
    "ToolUsageEvent",
    "ToolUsageFinishedEvent",
    "ToolUsageStartedEvent",
    "crewtrace_event_bus",
    "current_scope",
    "use_scope",
]
