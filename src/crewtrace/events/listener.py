"""Base class for in-process listeners."""

from __future__ import annotations

from abc import ABC, abstractmethod

from crewtrace.events.base import BaseEvent
from crewtrace.events.bus import EventBus, Handler, crewtrace_event_bus

__all__ = ["BaseEventListener"]


class BaseEventListener(ABC):
    """Subclass, implement :meth:`setup_listeners`, instantiate: the handlers are live.

    The bus defaults to ``crewtrace_event_bus``; pass another to keep a
    listener apart (tests do). :meth:`close` unregisters exactly what
    ``setup_listeners`` registered.
    """

    def __init__(self, bus: EventBus | None = None) -> None:
        self.bus = crewtrace_event_bus if bus is None else bus
        with self.bus.track_registrations() as recorded:
            self.setup_listeners(self.bus)
        self._registrations: list[tuple[type[BaseEvent], Handler]] = recorded

    @abstractmethod
    def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
        """Register handlers with ``@crewtrace_event_bus.on(EventType)``."""

    def close(self) -> None:
        """Unregister this listener's handlers; safe to call twice."""
        registrations, self._registrations = self._registrations, []
        for event_type, handler in registrations:
            self.bus.off(event_type, handler)
