"""Caps on distinct metric label values, so a crew with generated names cannot blow up Prometheus."""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable

from crewtrace.telemetry import names

_logger = logging.getLogger("crewtrace.telemetry")


class ValueCap:
    """Admits the first ``limit`` distinct values of one label (or label combination); warns once after."""

    __slots__ = ("_limit", "_lock", "_seen", "_warned", "_what")

    def __init__(self, what: str, limit: int) -> None:
        self._what = what
        self._limit = limit
        self._seen: set[Hashable] = set()
        self._lock = threading.Lock()
        self._warned = False

    @property
    def size(self) -> int:
        """Distinct values admitted so far (never more than the limit)."""
        return len(self._seen)

    def admits(self, value: Hashable) -> bool:
        if value in self._seen:
            return True
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return True
            if not self._warned:
                self._warned = True
                _logger.warning(
                    "more than %d distinct values of %s: further ones are reported as _OTHER "
                    "(name your tasks and agents, or raise max_label_values)",
                    self._limit,
                    self._what,
                )
        return False


class LabelCaps:
    """The caps of every label the bridge writes on metrics, and of agent/task pairs."""

    CAPPED = (names.AGENT_NAME, names.TASK_NAME, names.REQUEST_MODEL, names.ERROR_TYPE, names.TOOL_NAME)
    PAIRS = "agent/task pairs"

    def __init__(self, limit: int) -> None:
        self._caps = {key: ValueCap(key, limit) for key in self.CAPPED}
        # Capping each label alone still lets agents and tasks multiply: cap their pairs too.
        self._pairs = ValueCap(self.PAIRS, limit)

    def capped(self, key: str, value: str) -> str:
        return value if self._caps[key].admits(value) else names.OVERFLOW_VALUE

    def agent_and_task(self, agent_role: str | None, task_name: str | None) -> dict[str, str | None]:
        """Metric labels for the agent and task, each capped, and their pairs capped too."""
        agent = None if agent_role is None else self.capped(names.AGENT_NAME, agent_role)
        task = None if task_name is None else self.capped(names.TASK_NAME, task_name)
        if not self._pairs.admits((agent, task)):
            agent = task = names.OVERFLOW_VALUE
        return {names.AGENT_NAME: agent, names.TASK_NAME: task}

    def counts(self) -> dict[str, int]:
        return {**{key: cap.size for key, cap in self._caps.items()}, self.PAIRS: self._pairs.size}
