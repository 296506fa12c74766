"""Orchestration: agents, tasks and crews. Gives every LLM call its run, task and agent."""

from crewtrace.crew.agent import Agent
from crewtrace.crew.crew import Crew, CrewOutput
from crewtrace.crew.streaming import CrewStreamingOutput, StreamChunk, StreamChunkType, ToolCallChunk
from crewtrace.crew.task import Task, TaskOutput
from crewtrace.crew.tool import Tool, tool

__all__ = [
    "Agent",
    "Crew",
    "CrewOutput",
    "CrewStreamingOutput",
    "StreamChunk",
    "StreamChunkType",
    "Task",
    "TaskOutput",
    "Tool",
    "ToolCallChunk",
    "tool",
]
