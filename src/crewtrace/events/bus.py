"""The event bus: in-process publish/subscribe keyed by event class.

Synchronous handlers run inline, in the emitting thread, in registration
order. That is what keeps the events of one LLM call in emission order for
every handler, and what lets a handler read the emitter's context (an
OpenTelemetry parent span, say). The price: a slow synchronous handler slows
the stream it listens to. Coroutine handlers are the way off the hot path:
they run on the bus's own event-loop thread, in order per handler, and
``flush()`` waits for them.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from crewtrace.events.base import BaseEvent

__all__ = ["EventBus", "Handler", "crewtrace_event_bus"]

_logger = logging.getLogger("crewtrace.events")

Handler = Callable[[Any, Any], Any]
"""Called as ``handler(source, event)``; may be a coroutine function."""

E = TypeVar("E", bound=BaseEvent)
H = TypeVar("H", bound=Handler)

_recording: ContextVar[list[tuple[type[BaseEvent], Handler]] | None] = ContextVar(
    "crewtrace_recording_registrations", default=None
)


@dataclass(frozen=True, slots=True)
class _Registration:
    seq: int
    event_type: type[BaseEvent]
    handler: Handler
    is_async: bool
    name: str


def _handler_name(handler: Handler) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


class EventBus:
    """Delivers each emitted event to the handlers of its class and its bases."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._seq = itertools.count()
        self._registrations: list[_Registration] = []
        # Per concrete event class, the handlers that apply, in registration
        # order. Rebuilt lazily after any change so emit stays a dict lookup.
        self._resolved: dict[type[BaseEvent], tuple[_Registration, ...]] = {}
        self._async = _AsyncRunner()

    def on(self, event_type: type[E]) -> Callable[[H], H]:
        """Decorator form of :meth:`register_handler`."""

        def decorator(handler: H) -> H:
            self.register_handler(event_type, handler)
            return handler

        return decorator

    def register_handler(self, event_type: type[E], handler: H) -> H:
        if not (isinstance(event_type, type) and issubclass(event_type, BaseEvent)):
            raise TypeError(f"event_type must be a BaseEvent subclass, got {event_type!r}")
        if not callable(handler):
            raise TypeError(f"handler must be callable as handler(source, event), got {handler!r}")
        registration = _Registration(
            seq=next(self._seq),
            event_type=event_type,
            handler=handler,
            is_async=inspect.iscoroutinefunction(handler),
            name=_handler_name(handler),
        )
        with self._lock:
            self._registrations.append(registration)
            self._resolved = {}
        recording = _recording.get()
        if recording is not None:
            recording.append((event_type, handler))
        return handler

    def off(self, event_type: type[BaseEvent], handler: Handler) -> None:
        """Unregister ``handler`` for ``event_type``; unknown pairs are ignored."""
        with self._lock:
            self._registrations = [
                r for r in self._registrations if not (r.event_type is event_type and r.handler == handler)
            ]
            self._resolved = {}

    def has_handlers(self, event_type: type[BaseEvent]) -> bool:
        """Whether emitting ``event_type`` would reach anyone: lets emitters skip building events."""
        resolved = self._resolved.get(event_type)
        if resolved is None:
            resolved = self._resolve(event_type)
        return bool(resolved)

    def emit(self, source: Any, event: BaseEvent) -> None:
        """Deliver ``event``; a failing handler is logged and the others still run."""
        resolved = self._resolved.get(event.__class__)
        if resolved is None:
            resolved = self._resolve(event.__class__)
        for registration in resolved:
            if registration.is_async:
                self._async.submit(registration, source, event)
                continue
            try:
                registration.handler(source, event)
            except Exception:
                _logger.exception("event handler %s failed on %s", registration.name, event.type)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every coroutine handler scheduled so far has finished.

        Returns False if ``timeout`` (seconds) ran out first. Synchronous
        handlers have always finished by the time ``emit`` returns.
        """
        return self._async.wait_idle(timeout)

    @contextmanager
    def scoped_handlers(self) -> Iterator[EventBus]:
        """Start with no handlers and restore the previous ones on exit (for tests)."""
        with self._lock:
            saved = self._registrations
            self._registrations = []
            self._resolved = {}
        try:
            yield self
        finally:
            with self._lock:
                self._registrations = saved
                self._resolved = {}

    @contextmanager
    def _record_registrations(self) -> Iterator[list[tuple[type[BaseEvent], Handler]]]:
        """Collect what gets registered inside the block (listeners use it to unregister)."""
        recorded: list[tuple[type[BaseEvent], Handler]] = []
        token = _recording.set(recorded)
        try:
            yield recorded
        finally:
            _recording.reset(token)

    def _resolve(self, event_type: type[BaseEvent]) -> tuple[_Registration, ...]:
        with self._lock:
            resolved = tuple(r for r in self._registrations if issubclass(event_type, r.event_type))
            self._resolved[event_type] = resolved
            return resolved


@dataclass
class _AsyncRunner:
    """Runs coroutine handlers on one daemon event-loop thread, in order per handler."""

    _lock: threading.Condition = field(default_factory=threading.Condition)
    _loop: asyncio.AbstractEventLoop | None = None
    _queues: dict[int, deque[tuple[Any, BaseEvent]]] = field(default_factory=dict)
    _pending: int = 0

    def submit(self, registration: _Registration, source: Any, event: BaseEvent) -> None:
        with self._lock:
            loop = self._loop or self._start()
            self._pending += 1
        loop.call_soon_threadsafe(self._enqueue, registration, source, event)

    def wait_idle(self, timeout: float | None) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    def _start(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="crewtrace-async-handlers", daemon=True).start()
        self._loop = loop
        return loop

    def _enqueue(self, registration: _Registration, source: Any, event: BaseEvent) -> None:
        # Runs on the loop thread, like _drain: no lock needed for _queues.
        queue = self._queues.get(registration.seq)
        if queue is None:
            queue = self._queues[registration.seq] = deque()
            asyncio.get_running_loop().create_task(self._drain(registration, queue))
        queue.append((source, event))

    async def _drain(self, registration: _Registration, queue: deque[tuple[Any, BaseEvent]]) -> None:
        """Run one handler over its queued events in order; exit when none are left."""
        try:
            while queue:
                source, event = queue.popleft()
                try:
                    await registration.handler(source, event)
                except Exception:
                    _logger.exception("event handler %s failed on %s", registration.name, event.type)
                finally:
                    with self._lock:
                        self._pending -= 1
                        if self._pending == 0:
                            self._lock.notify_all()
        finally:
            del self._queues[registration.seq]


crewtrace_event_bus = EventBus()
"""The default bus: LLMs, crews and listeners use it unless given another."""
