"""An event recorder for assertions on what a bus delivered."""

from __future__ import annotations

from typing import Any

from crewtrace.events import BaseEvent, EventBus


class Recorder:
    """Collects every event a bus delivers, in delivery order."""

    def __init__(self, bus: EventBus) -> None:
        self.events: list[BaseEvent] = []
        bus.register_handler(BaseEvent, self._on_event)

    def _on_event(self, source: Any, event: BaseEvent) -> None:
        self.events.append(event)

    def of(self, event_type: type[BaseEvent]) -> list[Any]:
        return [event for event in self.events if isinstance(event, event_type)]

    def types(self) -> list[str]:
        return [event.type for event in self.events]
