"""Events of one guardrail check of a task's (or an agent's) output.

A rejection sends the work back to the agent: the next check has ``attempt`` one higher.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from crewtrace.events.base import BaseEvent, FailureMixin

__all__ = ["GuardrailCompletedEvent", "GuardrailFailedEvent", "GuardrailStartedEvent"]


class GuardrailStartedEvent(BaseEvent):
    type: Literal["guardrail_started"] = "guardrail_started"
    guardrail_name: str = Field(description="A label: the function's name, or the first words of its description.")
    guardrail_type: str | None = Field(default=None, description="``function``, ``llm``, ``hallucination``.")
    attempt: int = Field(default=0, description="Checks of this output before this one (retries), from 0.")


class GuardrailCompletedEvent(BaseEvent):
    type: Literal["guardrail_completed"] = "guardrail_completed"
    duration_s: float
    passed: bool
    attempt: int = 0
    feedback: str = Field(default="", description="Why it rejected the output (content).")


class GuardrailFailedEvent(BaseEvent, FailureMixin):
    """The check itself could not run (not a rejection)."""

    type: Literal["guardrail_failed"] = "guardrail_failed"
    duration_s: float
