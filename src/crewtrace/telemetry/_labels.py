"""Caps on distinct metric label values, so a crew with generated names cannot blow up Prometheus."""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable

from crewtrace.events import BaseEvent
from crewtrace.events.labels import OTHER
from crewtrace.telemetry import names
from crewtrace.telemetry._attributes import clean

_logger = logging.getLogger("crewtrace.telemetry")

_ATTRIBUTION_LABELS = tuple((key.field, key.metric_label) for key in names.ATTRIBUTION if key.metric_label)


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
                    "more than %d distinct values of %s: further ones are reported as %s "
                    "(name your tasks and agents, or raise max_label_values)",
                    self._limit,
                    self._what,
                    OTHER,
                )
        return False


class LabelCaps:
    """The caps of every label the bridge writes on metrics, and of the attribution labels' combinations."""

    CAPPED = (
        *(label for _, label in _ATTRIBUTION_LABELS),
        names.REQUEST_MODEL,
        names.ERROR_TYPE,
        names.TOOL_NAME,
    )
    COMBINATIONS = "attribution label combinations"

    def __init__(self, limit: int) -> None:
        self._caps = {key: ValueCap(key, limit) for key in self.CAPPED}
        # Capping each label alone still lets agents and tasks multiply: cap their combinations too.
        self._combinations = ValueCap(self.COMBINATIONS, limit)

    def capped(self, key: str, value: str) -> str:
        """``value`` (cleaned for export) while under its label's cap, else ``_OTHER``."""
        value = clean(value)
        return value if self._caps[key].admits(value) else OTHER

    def attribution(self, event: BaseEvent) -> dict[str, str]:
        """The event's attribution as metric labels (names, never ids), each capped, and their combination too."""
        labels = {
            label: self.capped(label, value)
            for field, label in _ATTRIBUTION_LABELS
            if (value := getattr(event, field)) is not None
        }
        if not self._combinations.admits(tuple(labels.items())):
            labels = dict.fromkeys(labels, OTHER)
        return labels

    def counts(self) -> dict[str, int]:
        return {**{key: cap.size for key, cap in self._caps.items()}, self.COMBINATIONS: self._combinations.size}
