"""``Task``: a unit of work an agent performs within a crew run."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, model_validator

from crewtrace.crew._model import StrictModel
from crewtrace.crew._template import placeholders
from crewtrace.crew.agent import Agent
from crewtrace.events.labels import label

__all__ = ["Task"]


class Task(StrictModel):
    """What to do, what a good answer looks like, and who does it.

    ``context`` lists earlier tasks whose outputs this one receives; left as
    ``None`` it receives every earlier output of the run.
    """

    unsupported: ClassVar[Mapping[str, str]] = {
        "async_execution": "tasks run one after another; run several crews concurrently instead",
        "output_json": "ask for JSON in expected_output and parse TaskOutput.raw",
        "output_pydantic": "ask for JSON in expected_output and validate TaskOutput.raw",
        "output_file": "write TaskOutput.raw to the file yourself",
        "human_input": "there is no human-in-the-loop step",
        "callback": "listen to TaskCompletedEvent with a BaseEventListener",
        "guardrail": "check TaskOutput.raw after the run",
        "tools": "give the tools to the task's agent: Agent(tools=[...])",
    }

    description: str
    expected_output: str
    agent: Agent | None = None
    name: str | None = None
    context: list[Task] | None = None
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))

    @model_validator(mode="after")
    def _check_templates(self) -> Task:
        placeholders(self.description)
        placeholders(self.expected_output)
        return self

    @property
    def label(self) -> str:
        """The task in telemetry: its name, or the first words of its description as written."""
        return label(self.name, self.description)
