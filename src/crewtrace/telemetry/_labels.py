"""Caps on distinct metric label values, so a crew with generated names cannot blow up Prometheus."""

from __future__ import annotations

import logging
import threading

from crewtrace.telemetry.names import OVERFLOW_VALUE

_logger = logging.getLogger("crewtrace.telemetry")


class LabelLimiter:
    """Admits the first ``limit`` distinct values of one attribute; later ones become ``_OTHER``."""

    __slots__ = ("_key", "_limit", "_lock", "_seen", "_warned")

    def __init__(self, key: str, limit: int) -> None:
        self._key = key
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._warned = False

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
            if not self._warned:
                self._warned = True
                _logger.warning(
                    "more than %d distinct values of %s: further values are reported as %r "
                    "(name your tasks and agents, or raise max_label_values)",
                    self._limit,
                    self._key,
                    OVERFLOW_VALUE,
                )
        return OVERFLOW_VALUE


class CombinationLimiter:
    """Admits the first ``limit`` distinct (agent, task) pairs: capping each label alone still lets them multiply."""

    __slots__ = ("_limit", "_lock", "_seen", "_warned")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[tuple[str | None, str | None]] = set()
        self._lock = threading.Lock()
        self._warned = False

    def __call__(self, pair: tuple[str | None, str | None]) -> bool:
        if pair in self._seen:
            return True
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(pair)
                return True
            if not self._warned:
                self._warned = True
                _logger.warning(
                    "more than %d distinct agent/task pairs: further ones are reported as %r "
                    "(name your tasks and agents, or raise max_label_values)",
                    self._limit,
                    OVERFLOW_VALUE,
                )
        return False
