"""``Agent``: a role with a goal and a backstory, answering through its LLM."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from crewtrace.crew._model import StrictModel
from crewtrace.crew._template import placeholders
from crewtrace.crew.tool import Tool
from crewtrace.errors import ConfigurationError
from crewtrace.events.labels import label
from crewtrace.llm import LLM

__all__ = ["Agent"]


class Agent(StrictModel):
    """An agent. ``llm`` takes an :class:`LLM` or a model name (``OPENAI_MODEL_NAME`` or
    ``gpt-4o-mini`` when omitted). ``id`` is a string, so ``agent.id == event.agent_id``
    holds for the agent's events. ``verbose`` logs the agent's progress (see :class:`Crew`)."""

    unsupported: ClassVar[Mapping[str, str]] = {
        "allow_delegation": "agents do not delegate; give the work its own Task",
        "memory": "agents keep no memory between tasks; pass earlier outputs with Task(context=[...])",
        "function_calling_llm": "tools are called by the agent's own llm",
        "cache": "tool results are not cached: every tool call runs",
        "max_rpm": "rate limits are the provider's: set them in litellm",
        "step_callback": "listen to events with a BaseEventListener",
        "planning": "there is no planning step; describe the steps in the task",
        "reasoning": "there is no planning step; describe the steps in the task",
        "knowledge_sources": "put the knowledge in the task description or a tool",
        "multimodal": "messages are text",
        "allow_code_execution": "give the agent a tool instead",
    }
    spellings: ClassVar[Mapping[str, str]] = {"max_iter": "max_iterations"}

    role: str
    goal: str
    backstory: str
    llm: LLM = Field(default=None, validate_default=True)
    tools: list[Tool] = Field(default_factory=list)
    max_iterations: int = Field(
        default=10, ge=1, description="LLM calls per task before giving up on tool loops (CrewAI's ``max_iter``)."
    )
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    verbose: bool = False

    @field_validator("tools", mode="before")
    @classmethod
    def _check_tools(cls, value: Any) -> Any:
        for item in value or ():
            if not isinstance(item, Tool):
                raise ConfigurationError(f"{item!r} is not a tool: decorate it with @crewtrace.tool")
        names = [item.name for item in value or ()]
        if len(names) != len(set(names)):
            raise ConfigurationError(f"tool names must be unique within an agent, got {names}")
        return value

    @field_validator("llm", mode="before")
    @classmethod
    def _coerce_llm(cls, value: Any) -> LLM:
        if value is None:
            return LLM(os.environ.get("OPENAI_MODEL_NAME", "gpt-4o-mini"))
        if isinstance(value, str):
            return LLM(value)
        if isinstance(value, LLM):
            return value
        raise ConfigurationError(f"llm must be a crewtrace.LLM or a model name string, got {type(value).__name__}")

    @property
    def label(self) -> str:
        """The agent in telemetry (``agent_role``): its role as written, shortened if long."""
        return label(self.role, fallback="agent")

    @model_validator(mode="after")
    def _check_templates(self) -> Agent:
        for template in (self.role, self.goal, self.backstory):
            placeholders(template)
        return self
