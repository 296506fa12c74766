"""The event bus: in-process publish/subscribe keyed by event class.

Synchronous handlers run inline, in the emitting thread, in registration
order. That is what keeps the events of one LLM call in emission order for
every handler, and what lets a handler read the emitter's context (an
OpenTelemetry parent span, say). The price: a slow synchronous handler slows
the stream it listens to. Coroutine handlers are the way off the hot path:
they run on the bus's own event-loop thread, in order per handler, and
``flush()`` waits for them.

Every handler gets every event, whatever another handler raises: an
interrupted handler (Ctrl-C) must not keep the end of a call from the
telemetry bridge registered after it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
import os
import sys
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from crewtrace.errors import ConfigurationError
from crewtrace.events.base import BaseEvent
from crewtrace.events.requests import RequestHook, request_context

__all__ = ["EventBus", "Handler", "crewtrace_event_bus"]

_logger = logging.getLogger("crewtrace.events")

_LOOP_THREAD = "crewtrace-async-handlers"

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


def _is_coroutine_handler(handler: Handler) -> bool:
    """``inspect.iscoroutinefunction``, extended to objects (and partials of them) whose ``__call__`` is async.

    The ``__call__`` looked up is the type's, as a call does: a class is not a coroutine handler.
    """
    while isinstance(handler, functools.partial):
        handler = handler.func
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__)


class _FailureCounts:
    """How often each handler failed with each exception type, for the most recent handlers.

    Keyed by the registration's identity; the entry holds the registration, so its id is not reused
    while counted. Bounded: the least recently failing entries are forgotten first.
    """

    _MAX_ENTRIES = 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: OrderedDict[tuple[int, type[BaseException]], tuple[_Registration, int]] = OrderedDict()

    def count(self, registration: _Registration, kind: type[BaseException]) -> int:
        """Count one more failure; returns how many there were, this one included."""
        key = (id(registration), kind)
        with self._lock:
            _, failures = self._counts.pop(key, (registration, 0))
            self._counts[key] = (registration, failures + 1)
            if len(self._counts) > self._MAX_ENTRIES:
                self._counts.popitem(last=False)
        return failures + 1


_failure_counts = _FailureCounts()


def _log_failure(registration: _Registration, event: BaseEvent) -> None:
    """Call in an except block: the handler's name, the event's type and the traceback.

    A handler that raises an ``Exception`` usually raises it on every event (every chunk): its first
    failure of each exception type is logged with the traceback, then only a count, at the second
    failure and at 10, 100, 1000, ... Anything else (an interrupt it swallowed) is logged every time.
    """
    kind = sys.exc_info()[0] or BaseException
    if not issubclass(kind, Exception):
        _logger.exception("event handler %s failed on %s", registration.name, event.type)
        return
    failures = _failure_counts.count(registration, kind)
    if failures == 1:
        _logger.exception("event handler %s failed on %s", registration.name, event.type)
    elif failures == 2 or _is_power_of_ten(failures):
        _logger.error(
            "event handler %s has failed %d times with %s (the first traceback is logged above); later failures "
            "are counted, and the count logged at 10, 100, 1000, ...; the last was on %s",
            registration.name,
            failures,
            kind.__name__,
            event.type,
        )


def _is_power_of_ten(number: int) -> bool:
    while number % 10 == 0 and number > 1:
        number //= 10
    return number == 1


def _check_event_type(event_type: object) -> None:
    if not (isinstance(event_type, type) and issubclass(event_type, BaseEvent)):
        raise ConfigurationError(f"event_type must be a BaseEvent subclass, got {event_type!r}")


class EventBus:
    """Delivers each emitted event to the handlers of its class and its bases.

    ``generation`` changes on every registration change (``register_handler``/``on``,
    ``off``, entering and leaving ``scoped_handlers``): an emitter that caches
    ``has_handlers(...)`` re-checks it only when ``generation`` moved, so a listener
    registered mid-stream takes effect at the next event at the cost of one int compare.
    Read ``generation`` before ``has_handlers``, so a change in between is seen next time.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._seq = itertools.count()
        self._generation = 0
        self._registrations: list[_Registration] = []
        # Per concrete event class, the handlers that apply, in registration
        # order. Rebuilt lazily after any change so emit stays a dict lookup.
        self._resolved: dict[type[BaseEvent], tuple[_Registration, ...]] = {}
        self._request_hooks: tuple[RequestHook, ...] = ()
        self._async = _AsyncRunner()
        _buses.add(self)

    @property
    def generation(self) -> int:
        """A number that changes whenever the registrations change (see the class docstring)."""
        return self._generation

    def on(self, event_type: type[E]) -> Callable[[H], H]:
        """Decorator form of :meth:`register_handler`."""

        def decorator(handler: H) -> H:
            self.register_handler(event_type, handler)
            return handler

        return decorator

    def register_handler(self, event_type: type[E], handler: H) -> H:
        _check_event_type(event_type)
        if not callable(handler):
            raise ConfigurationError(f"handler must be callable as handler(source, event), got {handler!r}")
        registration = _Registration(
            seq=next(self._seq),
            event_type=event_type,
            handler=handler,
            is_async=_is_coroutine_handler(handler),
            name=_handler_name(handler),
        )
        with self._lock:
            self._registrations.append(registration)
            self._changed()
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
            self._changed()

    def has_handlers(self, event_type: type[BaseEvent]) -> bool:
        """Whether emitting ``event_type`` would reach anyone: lets emitters skip building events."""
        resolved = self._resolved.get(event_type)
        if resolved is None:
            resolved = self._resolve(event_type)
        return bool(resolved)

    def handler_count(self, event_type: type[BaseEvent] | None = None) -> int:
        """How many handlers an ``event_type`` event reaches (its class's and its bases'); all of them for None."""
        if event_type is None:
            return len(self._registrations)
        _check_event_type(event_type)
        return len(self._resolve(event_type))

    def emit(self, source: Any, event: BaseEvent) -> None:
        """Deliver ``event`` to every handler.

        A handler raising an ``Exception`` is logged and the others still run. One raising
        anything else (``KeyboardInterrupt``, ``SystemExit``, ``CancelledError``...) does not
        keep the event from the handlers after it either: that first interrupt is re-raised
        once they all ran (a later one is logged).
        """
        resolved = self._resolved.get(event.__class__)
        if resolved is None:
            resolved = self._resolve(event.__class__)
        interrupt: BaseException | None = None
        for registration in resolved:
            if registration.is_async:
                self._async.submit(registration, source, event)
                continue
            try:
                registration.handler(source, event)
            except Exception:
                _log_failure(registration, event)
            except BaseException as exc:
                if interrupt is None:
                    interrupt = exc
                else:
                    _log_failure(registration, event)
        if interrupt is not None:
            try:
                raise interrupt
            finally:
                interrupt = None  # break the frame <-> traceback cycle

    def on_request(self, hook: RequestHook) -> RequestHook:
        """Have ``hook`` give the context of every LLM call's request (see :mod:`crewtrace.events.requests`)."""
        if not callable(hook):
            raise TypeError(f"hook must be callable as hook(call_id), got {hook!r}")
        with self._lock:
            self._request_hooks = (*self._request_hooks, hook)
        return hook

    def off_request(self, hook: RequestHook) -> None:
        """Unregister a request hook; an unknown one is ignored."""
        with self._lock:
            self._request_hooks = tuple(h for h in self._request_hooks if h != hook)

    def has_request_hooks(self) -> bool:
        """Whether any listener asked to give requests their context (if not, there is nothing to wait for)."""
        return bool(self._request_hooks)

    def request_context(self, call_id: str) -> AbstractContextManager[dict[str, str]]:
        """The context to make call ``call_id``'s request in, as the request hooks give it; yields the headers to send.

        Enter it after emitting the call's started event, around the request only.
        """
        hooks = self._request_hooks
        return request_context(hooks, call_id) if hooks else nullcontext({})

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every coroutine handler scheduled so far has finished.

        Returns False if ``timeout`` (seconds) ran out first. Synchronous
        handlers have always finished by the time ``emit`` returns. Called from
        a coroutine handler it raises ``RuntimeError`` (it would wait for itself).
        """
        return self._async.wait_idle(timeout)

    @contextmanager
    def scoped_handlers(self) -> Iterator[EventBus]:
        """Start with no handlers and restore the previous ones on exit (for tests)."""
        with self._lock:
            saved = self._registrations
            self._registrations = []
            self._changed()
        try:
            yield self
        finally:
            with self._lock:
                self._registrations = saved
                self._changed()

    @contextmanager
    def track_registrations(self) -> Iterator[list[tuple[type[BaseEvent], Handler]]]:
        """Collect the ``(event_type, handler)`` pairs registered inside the block, in this context.

        What :class:`~crewtrace.events.BaseEventListener` uses to unregister exactly what it registered.
        """
        recorded: list[tuple[type[BaseEvent], Handler]] = []
        token = _recording.set(recorded)
        try:
            yield recorded
        finally:
            _recording.reset(token)

    def _changed(self) -> None:
        """Call with the lock held after changing the registrations."""
        self._resolved = {}
        self._generation += 1

    def _resolve(self, event_type: type[BaseEvent]) -> tuple[_Registration, ...]:
        with self._lock:
            resolved = tuple(r for r in self._registrations if issubclass(event_type, r.event_type))
            self._resolved[event_type] = resolved
            return resolved

    def _after_fork_in_child(self) -> None:
        """Keep the handlers; drop the parent's lock and loop (its thread is not in the child).

        Coroutine work pending at the fork stays the parent's: the child starts with none.
        """
        self._lock = threading.RLock()
        self._async = _AsyncRunner()


class _AsyncRunner:
    """Runs coroutine handlers on one daemon event-loop thread, in order per handler.

    Nothing a handler does stops it: whatever a handler raises (``CancelledError``,
    ``SystemExit`` and ``KeyboardInterrupt`` included) costs that handler that one event,
    logged; a drain task cancelled from outside is resumed; what a handler's own tasks let
    escape into the loop is logged and the loop runs on. So the pending count always drains
    and ``flush()`` always returns.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._queues: dict[int, deque[tuple[Any, BaseEvent]]] = {}
        self._pending = 0

    def submit(self, registration: _Registration, source: Any, event: BaseEvent) -> None:
        with self._lock:
            loop = self._loop or self._start()
            self._pending += 1
        loop.call_soon_threadsafe(self._enqueue, registration, source, event)

    def wait_idle(self, timeout: float | None) -> bool:
        if threading.current_thread() is self._thread:
            raise RuntimeError("flush() called from a coroutine handler would wait for itself; await the work instead")
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    def _start(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(loop,), name=_LOOP_THREAD, daemon=True)
        self._thread.start()
        self._loop = loop
        return loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        """Thread target: keep the loop running whatever a handler stops it with or lets escape into it."""
        while not loop.is_closed():
            try:
                loop.run_forever()
            except BaseException:
                _logger.exception("an exception escaped into the coroutine handlers' event loop; it carries on")

    def _enqueue(self, registration: _Registration, source: Any, event: BaseEvent) -> None:
        # Runs on the loop thread, like _drain and _drained: no lock needed for _queues.
        queue = self._queues.get(registration.seq)
        if queue is None:
            queue = self._queues[registration.seq] = deque()
            self._start_drain(registration, queue)
        queue.append((source, event))

    def _start_drain(self, registration: _Registration, queue: deque[tuple[Any, BaseEvent]]) -> None:
        task = asyncio.get_running_loop().create_task(self._drain(registration, queue))
        task.add_done_callback(functools.partial(self._drained, registration, queue))

    async def _drain(self, registration: _Registration, queue: deque[tuple[Any, BaseEvent]]) -> None:
        """Run one handler over its queued events in order; exit when none are left."""
        while queue:
            source, event = queue.popleft()
            try:
                await registration.handler(source, event)
            except BaseException:  # any of them, or the loop thread would die for every handler
                _log_failure(registration, event)
            finally:
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._lock.notify_all()

    def _drained(
        self, registration: _Registration, queue: deque[tuple[Any, BaseEvent]], task: asyncio.Task[None]
    ) -> None:
        """A drain ended: normally with its queue empty; if it was cancelled before it started, not."""
        if not queue:
            del self._queues[registration.seq]
            return
        _logger.warning(
            "the task running event handler %s was cancelled from outside; it resumes with %d queued events",
            registration.name,
            len(queue),
        )
        self._start_drain(registration, queue)


_buses: weakref.WeakSet[EventBus] = weakref.WeakSet()


def _reset_buses_after_fork() -> None:
    """In a forked child the parent's loop thread does not exist (and a lock may be held forever): start afresh."""
    for bus in _buses:
        bus._after_fork_in_child()


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_reset_buses_after_fork)


crewtrace_event_bus = EventBus()
"""The default bus: LLMs, crews and listeners use it unless given another."""
