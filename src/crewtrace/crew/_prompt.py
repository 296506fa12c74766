"""The chat messages an agent sends for a task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def task_messages(
    *, role: str, goal: str, backstory: str, description: str, expected_output: str, context: Sequence[str]
) -> list[dict[str, Any]]:
    system = f"You are {role}. {backstory}\nYour personal goal is: {goal}"
    user = f"{description}\n\nThis is the expected criteria for your final answer: {expected_output}"
    if context:
        joined = "\n\n----------\n\n".join(context)
        user += f"\n\nThis is the context you're working with:\n{joined}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
