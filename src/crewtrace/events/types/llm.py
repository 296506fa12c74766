"""Events of one LLM call: started, one per streamed chunk, then completed or failed.

All events of a call share its ``call_id``. Completed and failed events carry
the call's timings and chunk count, measured once by the LLM layer, so
listeners never have to reconstruct them.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import Field

from crewtrace.events.base import BaseEvent, FailureMixin, TokenUsage
from crewtrace.events.tool_calls import ToolCall

__all__ = [
    "LLMCallCompletedEvent",
    "LLMCallFailedEvent",
    "LLMCallStartedEvent",
    "LLMEvent",
    "LLMStreamChunkEvent",
    "StreamChunkType",
]


class StreamChunkType(str, Enum):
    """What a streamed chunk carries: generated text, a fragment of a tool call's arguments, or reasoning.

    ``REASONING`` is a model's thinking streamed before its answer (CrewAI's thinking chunks); it
    counts as a chunk, as the GenAI conventions count reasoning deltas.
    """

    TEXT = "text"
    TOOL_CALL = "tool_call"
    REASONING = "reasoning"


class LLMEvent(BaseEvent):
    """Base of every LLM event; subscribe to it to see them all."""

    call_id: str
    model: str
    provider: str | None = Field(default=None, description="litellm's provider name, e.g. 'openai'.")


class LLMCallStartedEvent(LLMEvent):
    type: Literal["llm_call_started"] = "llm_call_started"
    messages: list[dict[str, Any]] = Field(description="The prompt. Content: telemetry records it only on opt-in.")
    stream: bool
    temperature: float | None = None
    max_tokens: int | None = None
    server_address: str | None = None
    server_port: int | None = None


class LLMStreamChunkEvent(LLMEvent):
    type: Literal["llm_stream_chunk"] = "llm_stream_chunk"
    chunk: str = Field(description="The text, a tool-call chunk's argument fragment, or a reasoning chunk's text.")
    chunk_index: int = Field(description="0-based and contiguous within the call, over text and tool-call chunks.")
    response_id: str | None = None
    chunk_type: StreamChunkType = StreamChunkType.TEXT
    tool_call: ToolCall | None = Field(
        default=None,
        description="For a tool-call chunk: its call as far as it has arrived (id, name, arguments so far).",
    )


class _LLMCallEnded(LLMEvent):
    chunk_count: int = Field(description="Chunks that arrived, in total.")
    duration_s: float = Field(description="From the request to the end of the call, monotonic clock.")
    time_to_first_chunk_s: float | None = None


class LLMCallCompletedEvent(_LLMCallEnded):
    type: Literal["llm_call_completed"] = "llm_call_completed"
    response: str
    usage: TokenUsage | None = Field(
        default=None, description="From the stream's own usage chunk; None if it sent none."
    )
    finish_reason: str | None = None
    response_id: str | None = None
    response_model: str | None = None
    cost_usd: float | None = Field(default=None, description="litellm's price for the usage, where it knows the model.")
    tool_calls: list[ToolCall] = Field(default_factory=list, description="Tool calls the model asked for.")


class LLMCallFailedEvent(_LLMCallEnded, FailureMixin):
    type: Literal["llm_call_failed"] = "llm_call_failed"
    partial_response: str = ""
