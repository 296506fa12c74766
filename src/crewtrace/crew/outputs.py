"""What a crew run gives back: its output, each task's, token usage, and its streamed chunks.

CrewAI's names and fields (``CrewOutput``, ``TaskOutput``, ``UsageMetrics``,
``StreamChunk``, ``StreamChunkType``, ``ToolCallChunk``), so code written
against CrewAI reads them unchanged. Plain data: this module imports nothing
of the crew layer, and the run, its streaming engine and ``Crew`` all import it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from crewtrace.events.base import TokenUsage
from crewtrace.events.types.llm import StreamChunkType

__all__ = ["CrewOutput", "StreamChunk", "StreamChunkType", "TaskOutput", "ToolCallChunk", "UsageMetrics"]


class UsageMetrics(BaseModel):
    """A run's token usage and LLM requests, under CrewAI's names.

    ``cached_prompt_tokens`` is kept for CrewAI code that reads it; crewtrace does not
    count cached tokens, so it is 0.
    """

    total_tokens: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    successful_requests: int = Field(default=0, description="LLM calls of the run's agents that completed.")

    @classmethod
    def of(cls, usage: TokenUsage, requests: int) -> UsageMetrics:
        """From summed event usage (the GenAI names) and the number of completed calls."""
        return cls(
            total_tokens=usage.total_tokens,
            prompt_tokens=usage.input_tokens,
            completion_tokens=usage.output_tokens,
            successful_requests=requests,
        )


class TaskOutput(BaseModel):
    """One task's result within a run."""

    task_id: str
    name: str
    description: str = Field(description="As the agent received it: inputs filled in.")
    expected_output: str
    agent: str = Field(description="The role of the agent that did the task, inputs filled in (as in CrewAI).")
    raw: str

    def __str__(self) -> str:
        return self.raw


class CrewOutput(BaseModel):
    """A run's result: the last task's answer, every task's output, and the run's token usage."""

    raw: str
    tasks_output: list[TaskOutput]
    token_usage: UsageMetrics
    run_id: str

    def __str__(self) -> str:
        return self.raw


class ToolCallChunk(BaseModel):
    """A tool call as far as it has streamed; ``tool_id`` and ``tool_name`` are filled on every fragment."""

    tool_id: str | None = None
    tool_name: str | None = None
    arguments: str = Field(default="", description="The JSON arguments received so far (as in CrewAI).")
    index: int = Field(default=0, description="Which tool call of the LLM response, from 0.")


class StreamChunk(BaseModel):
    """One streamed chunk of a crew run, with the task, agent and LLM call it belongs to."""

    content: str = Field(description="The text, or for a tool-call chunk its argument fragment.")
    chunk_type: StreamChunkType = StreamChunkType.TEXT
    task_index: int = Field(default=0, description="0-based position of the task in the crew.")
    task_name: str = ""
    task_id: str = ""
    agent_role: str = ""
    agent_id: str = ""
    tool_call: ToolCallChunk | None = None
    call_id: str = Field(default="", description="The LLM call: tells two calls of one agent and task apart.")
    chunk_index: int = Field(default=0, description="0-based and contiguous within the call.")
    run_id: str = ""

    def __str__(self) -> str:
        return self.content
