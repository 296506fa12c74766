"""``instrument_crewai()``: listen on CrewAI's event bus and re-emit its runs as crewtrace events.

It also puts crewtrace at CrewAI's LLM entry point (``_entry``), so that each call's
request is made in the context crewtrace's listeners give it.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import threading
import time
from typing import Any

import crewai.events.types as crewai_event_types
from crewai.events import crewai_event_bus
from crewai.events.base_events import BaseEvent as CrewAIEvent
from crewai.events.event_context import SCOPE_ENDING_EVENTS, SCOPE_STARTING_EVENTS
from crewai.events.types.llm_events import LLMStreamChunkEvent

from crewtrace.events import EventBus, crewtrace_event_bus, pricing
from crewtrace.integrations.crewai import _entry
from crewtrace.integrations.crewai._order import Reorderer
from crewtrace.integrations.crewai._translate import Item, Translator
from crewtrace.integrations.crewai._usage import UsageCounters

__all__ = ["CrewAIInstrumentation", "instrument_crewai"]

_logger = logging.getLogger("crewtrace.integrations.crewai")
_active: dict[int, CrewAIInstrumentation] = {}
_active_lock = threading.Lock()
_EXPIRY_CHECK_S = 0.1
_GRACE_S = 0.25  # longest an event waits for an id that never comes, or a scope's end for its parts


def instrument_crewai(bus: EventBus | None = None) -> CrewAIInstrumentation:
    """Re-emit every CrewAI run on ``bus`` (default ``crewtrace_event_bus``) as crewtrace events.

    Calling it again for the same bus returns the instrumentation already
    active, so no event is translated twice.
    """
    target = crewtrace_event_bus if bus is None else bus
    with _active_lock:
        existing = _active.get(id(target))
        if existing is not None:
            return existing
        instrumentation = CrewAIInstrumentation(target)
        _active[id(target)] = instrumentation
        return instrumentation


def _event_classes() -> list[type[CrewAIEvent]]:
    """Every CrewAI event class: all of ``crewai.events.types`` imported, then BaseEvent's subclasses."""
    for module in pkgutil.iter_modules(crewai_event_types.__path__):
        try:
            importlib.import_module(f"{crewai_event_types.__name__}.{module.name}")
        except Exception:  # an optional family whose dependency is missing: its events cannot occur
            _logger.debug("CrewAI event module %s not importable", module.name, exc_info=True)
    found: list[type[CrewAIEvent]] = []
    pending = [CrewAIEvent]
    while pending:
        for subclass in pending.pop().__subclasses__():
            if subclass not in found:
                found.append(subclass)
                pending.append(subclass)
    return found


class CrewAIInstrumentation:
    """The live link from CrewAI's bus to a crewtrace bus; :meth:`close` ends it.

    Handlers are registered for every CrewAI event class, so that each event's
    predecessors are known (see ``_order``); classes crewtrace does not
    translate only pass their attribution on. A handler never raises into
    CrewAI: a failure is logged on the ``crewtrace.integrations.crewai`` logger.
    """

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._lock = threading.RLock()
        self._translator = Translator(bus, SCOPE_STARTING_EVENTS, SCOPE_ENDING_EVENTS)
        self._usage = UsageCounters(self._translator.usage)
        self._reorderer = Reorderer(self._release, grace_s=_GRACE_S)
        self._ending = SCOPE_ENDING_EVENTS
        self._closed = False
        self._timer: threading.Timer | None = None
        self._classes = _event_classes()
        pricing.load_pricer()  # now, not in the first call: loading litellm's price list takes a second
        self._entry = _entry.Site(bus, _entry.Released())
        _entry.attach(self._entry)
        for event_class in self._classes:
            crewai_event_bus.on(event_class)(self._on_event)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop listening; end whatever is still open so no span is left open. Safe to call twice."""
        with _active_lock:
            if _active.get(id(self.bus)) is self:
                del _active[id(self.bus)]
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            for event_class in self._classes:
                crewai_event_bus.off(event_class, self._on_event)
            _entry.detach(self._entry)
            try:
                self._reorderer.drain()
                self._translator.close_all(time.time_ns())
            except Exception:
                _logger.exception("crewtrace could not end what CrewAI left open")

    def _on_event(self, source: Any, event: Any) -> None:
        """CrewAI's handler for every event: inline for text chunks, on CrewAI's thread pool for the rest."""
        try:
            if event.__class__ is LLMStreamChunkEvent:  # the hot path: in the emitting thread, once per chunk
                arrived = time.time_ns()  # inline: the moment CrewAI emitted it (its own timestamp costs more to read)
                with self._lock:
                    if not self._closed:
                        item = (source, event, arrived)
                        scope, previous = event.parent_event_id, event.previous_event_id
                        released = self._reorderer.arrive(event.event_id, scope, previous, item, streamed=True)
                        if not released and self._timer is None:  # its call's start may never come
                            self._schedule_expiry()
                return
            kind = event.type
            scope = event.started_event_id if kind in self._ending else event.parent_event_id
            # An event outside any scope starts a tree of its own (a kickoff, a flow): what its thread emitted
            # before (the last kickoff's end, maybe before instrumentation) does not order it.
            previous = event.previous_event_id if scope is not None else None
            with self._lock:
                if self._closed:
                    return
                # CrewAI's own usage count, read as the call's events arrive (see ``_usage``).
                if kind == "llm_call_started":
                    self._usage.started(event.call_id, source)
                elif kind == "llm_call_completed" and not event.usage:
                    self._usage.completed(event.call_id, source)
                self._reorderer.arrive(event.event_id, scope, previous, (source, event, 0))
                if self._timer is None and (self._reorderer.pending() or self._translator.pending()):
                    self._schedule_expiry()
        except Exception:
            _logger.exception("crewtrace could not translate CrewAI's %s event", getattr(event, "type", "?"))

    def _schedule_expiry(self) -> None:
        self._timer = threading.Timer(_EXPIRY_CHECK_S, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        """Timer thread: release events held for an id that never came, and ends waiting for parts that never end."""
        try:
            with self._lock:
                self._timer = None
                if self._closed:
                    return
                self._reorderer.expire()
                self._translator.expire(_GRACE_S)
                if self._reorderer.pending() or self._translator.pending():
                    self._schedule_expiry()
        except Exception:
            _logger.exception("crewtrace could not release held CrewAI events")

    def _release(self, item: Item) -> None:
        try:
            self._translator.release(item)
            if item[1].type == "llm_call_started":  # its chat span is open: the request may go
                self._entry.released.mark(item[1].call_id)
        except Exception:
            _logger.exception("crewtrace could not translate CrewAI's %s event", getattr(item[1], "type", "?"))
