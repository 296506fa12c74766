"""The streaming LLM layer over litellm."""

from crewtrace.llm._recorder import CallResult
from crewtrace.llm.client import LLM, Messages

__all__ = ["LLM", "CallResult", "Messages"]
