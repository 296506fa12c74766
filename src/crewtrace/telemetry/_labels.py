"""Caps on distinct metric label values, so a crew with generated names cannot blow up Prometheus."""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable

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
