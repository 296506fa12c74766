"""LLMs that stream from the suite's fake OpenAI-compatible server over litellm's real HTTP path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.openai_server import FakeOpenAIServer

from crewtrace import LLM
from crewtrace.events import EventBus

API_KEY = "sk-test-4f1c9a2b7e"  # a fake key the suite looks for wherever it must never appear
MODEL = "openai/test-model"

MakeLLM = Callable[..., LLM]
"""The ``make_llm`` fixture: keyword arguments go to :class:`crewtrace.LLM`."""


def server_llm(server: FakeOpenAIServer, bus: EventBus, model: str = MODEL, **kwargs: Any) -> LLM:
    """A streaming LLM on ``bus`` that talks to ``server`` with :data:`API_KEY` (10 s timeout unless given)."""
    kwargs.setdefault("stream", True)
    kwargs.setdefault("timeout", 10)
    return LLM(model, base_url=server.base_url, api_key=API_KEY, bus=bus, **kwargs)
