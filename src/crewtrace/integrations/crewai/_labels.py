"""Agent and task labels for CrewAI's agents and tasks, by the one rule (``crewtrace.events.labels.label``).

A label comes from the agent's role or the task's name and description *as written*, which only
the agent or task object knows: CrewAI's events carry the filled-in text. So labels are taken from
the objects when an event carries one, and remembered by id for the events that carry only ids
(LLM calls, say). An id never seen with its object (a run already under way when
``instrument_crewai()`` was called) is labelled ``_OTHER``, never with the filled-in text.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from crewai.agents.agent_builder.base_agent import BaseAgent
from crewai.task import Task

from crewtrace.events.labels import OTHER, label

__all__ = ["PLANNING_TASK", "Labels"]

PLANNING_TASK = "crew planning"
"""The label of the task CrewAI's ``planning=True`` adds (its description embeds every task's)."""

_MAX_IDS = 4_096


class Labels:
    """Labels learned from agent and task objects, remembered by id (the most recent ``_MAX_IDS`` of each)."""

    def __init__(self) -> None:
        self._agents: OrderedDict[str, str] = OrderedDict()
        self._tasks: OrderedDict[str, str] = OrderedDict()

    def agent(self, agent: Any) -> str:
        """The label of a CrewAI agent: its role as written, before the kickoff inputs were filled in."""
        original = getattr(agent, "_original_role", None)
        role = original if isinstance(original, str) and original else getattr(agent, "role", None)
        text = label(role if isinstance(role, str) else None, fallback="agent")
        _remember(self._agents, str(getattr(agent, "id", "")), text)
        return text

    def task(self, task: Any) -> str:
        """The label of a CrewAI task: its name, else the first words of its description as written."""
        if _is_planning(task):
            text = PLANNING_TASK
        else:
            name = getattr(task, "name", None)
            original = getattr(task, "_original_description", None)
            description = original if isinstance(original, str) and original else getattr(task, "description", None)
            text = label(name if isinstance(name, str) else None, description if isinstance(description, str) else None)
        _remember(self._tasks, str(getattr(task, "id", "")), text)
        return text

    def agent_of(self, source: Any, agent_id: Any) -> str:
        """The label of the agent an event names: from ``source`` if it is the agent, else by id (``_OTHER``)."""
        if isinstance(source, BaseAgent):
            return self.agent(source)
        return self._agents.get(str(agent_id), OTHER)

    def task_of(self, source: Any, task_id: Any) -> str:
        """The label of the task an event names: from ``source`` if it is the task, else by id (``_OTHER``)."""
        if isinstance(source, Task):
            return self.task(source)
        return self._tasks.get(str(task_id), OTHER)


def _remember(known: OrderedDict[str, str], key: str, text: str) -> None:
    if key:
        known[key] = text
        known.move_to_end(key)
        if len(known) > _MAX_IDS:
            known.popitem(last=False)


def _is_planning(task: Any) -> bool:
    """CrewAI's planner task: the one whose output is CrewAI's plan model."""
    output = getattr(task, "output_pydantic", None)
    return isinstance(output, type) and output.__name__ == "PlannerTaskPydanticOutput"
