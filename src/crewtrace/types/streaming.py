"""The names CrewAI keeps in ``crewai.types.streaming``: crew streaming's output and chunks."""

from crewtrace.crew.outputs import StreamChunk, StreamChunkType, ToolCallChunk
from crewtrace.crew.streaming import CrewStreamingOutput

__all__ = ["CrewStreamingOutput", "StreamChunk", "StreamChunkType", "ToolCallChunk"]
