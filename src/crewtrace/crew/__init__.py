"""Orchestration: agents, tasks and crews. Gives every LLM call its run, task and agent."""

from crewtrace.crew.agent import Agent
from crewtrace.crew.crew import Crew, Process
from crewtrace.crew.outputs import CrewOutput, StreamChunk, StreamChunkType, TaskOutput, ToolCallChunk, UsageMetrics
from crewtrace.crew.streaming import CrewStreamingOutput
from crewtrace.crew.task import Task
from crewtrace.crew.tool import Tool, tool

__all__ = [
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
    "UsageMetrics",
    "tool",
]
