"""``Task``: a unit of work an agent performs within a crew run."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crewtrace.crew._template import label, placeholders
from crewtrace.crew.agent import Agent

__all__ = ["Task", "TaskOutput"]


class Task(BaseModel):
    """What to do, what a good answer looks like, and who does it.

    ``context`` lists earlier tasks whose outputs this one receives; left as
    ``None`` it receives every earlier output of the run.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

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
        """The task's name, or a short label from its description template."""
        return self.name or label(self.description)


class TaskOutput(BaseModel):
    """One task's result within a run."""

    task_id: str
    name: str
    description: str
    agent_role: str
    raw: str

    def __str__(self) -> str:
        return self.raw
