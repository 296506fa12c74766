"""crewtrace at CrewAI's LLM entry point: each call's request made in the context crewtrace's listeners give.

The adapter learns everything from CrewAI's events, but CrewAI hands every event
except a chunk to a thread pool, where nothing can be set for the thread that makes
the request. So, for the duration of each ``call``/``acall`` of every ``BaseLLM``
subclass (CrewAI's native providers and its litellm fallback alike):

- a stream sink (CrewAI's per-context hook that sees each event inline, as it is
  emitted) learns the call's id from its started event, notes the exception behind its
  failed event (CrewAI passes only its text: :func:`raised_error_type`), and leaves the
  request context when the call's completed or failed event is emitted (the tools CrewAI
  may run inside a call run outside it);
- right before the request (after CrewAI's own before-call hooks) it waits, at most
  :data:`WAIT_S`, until the adapter has delivered the call's started event to each
  instrumented crewtrace bus (the bridge has opened the chat span), then enters
  :meth:`crewtrace.events.EventBus.request_context` of each: the chat span current, the
  nested GenAI instrumentations standing down;
- the request carries that context's headers (W3C trace context) as ``extra_headers``
  on the OpenAI SDK path and the litellm path.

The patches go in with the first :func:`attach` (``instrument_crewai()``) and come out
with the last :func:`detach` (``close()``). They are CrewAI's module-level retry runner
(``crewai.llms.base_llm.run_with_rate_limit_retry``, which CrewAI wraps around every
subclass's ``call``, including subclasses defined later), ``BaseLLM._invoke_before_llm_call_hooks``
and the two ``_prepare_completion_params``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import crewai.llms.base_llm as base_llm
from crewai.events.stream_context import add_stream_sink, reset_stream_sinks
from crewai.llm import LLM as LiteLLMFallback
from crewai.llms.base_llm import BaseLLM
from crewai.llms.providers.openai.completion import OpenAICompletion

from crewtrace.errors import llm_error_type
from crewtrace.events import EventBus

__all__ = ["WAIT_S", "Released", "Site", "attach", "detach", "raised_error_type"]

_logger = logging.getLogger("crewtrace.integrations.crewai")

T = TypeVar("T")

WAIT_S: Final = 0.5
"""Longest a request waits for its started event to reach crewtrace (CrewAI's pool is busy); then it goes
without crewtrace's context: its chat span is still recorded, but other instrumentations may record it too."""
_REMEMBERED = 4096  # call ids kept (released started events, raised error types) before the oldest go


class _Recent:
    """A bounded, thread-safe map of the latest call ids to a value (the oldest go first)."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Condition()

    def put(self, call_id: str, value: Any) -> None:
        with self._lock:
            self._items[call_id] = value
            if len(self._items) > _REMEMBERED:
                self._items.popitem(last=False)
            self._lock.notify_all()

    def take(self, call_id: str, timeout: float) -> Any:
        """Wait up to ``timeout`` for ``call_id``'s value, and remove it."""
        with self._lock:
            self._lock.wait_for(lambda: call_id in self._items, timeout)
            return self._items.pop(call_id, None)

    def get(self, call_id: str) -> Any:
        """``call_id``'s value, left for other readers (each instrumentation reads it)."""
        with self._lock:
            return self._items.get(call_id)


class Released:
    """The calls whose started event an instrumentation has delivered to its crewtrace bus."""

    def __init__(self) -> None:
        self._recent = _Recent()

    def mark(self, call_id: str) -> None:
        self._recent.put(call_id, True)

    def wait(self, call_id: str, timeout: float) -> bool:
        return self._recent.take(call_id, timeout) is not None


@dataclass(frozen=True, slots=True)
class Site:
    """One instrumentation: its crewtrace bus and what it has delivered."""

    bus: EventBus
    released: Released


_raised = _Recent()


def raised_error_type(call_id: str) -> str | None:
    """The error type of the exception that ended call ``call_id``, if the hook saw it."""
    error_type: str | None = _raised.get(call_id)
    return error_type


@dataclass(slots=True)
class _Call:
    """One ``call``/``acall`` in progress: its current call id and the request contexts entered for it."""

    call_id: str | None = None
    contexts: ExitStack = field(default_factory=ExitStack)
    headers: dict[str, str] = field(default_factory=dict)

    def leave(self) -> None:
        self.contexts.close()
        self.headers = {}


_current: ContextVar[_Call | None] = ContextVar("crewtrace_crewai_call", default=None)
_lock = threading.Lock()
_sites: tuple[Site, ...] = ()
_originals: dict[tuple[Any, str], Any] = {}


def attach(site: Site) -> None:
    """Start serving ``site`` (installing the patches with the first)."""
    global _sites
    with _lock:
        if not _sites:
            _install()
        _sites = (*_sites, site)


def detach(site: Site) -> None:
    """Stop serving ``site`` (removing the patches with the last)."""
    global _sites
    with _lock:
        if site not in _sites:
            return
        _sites = tuple(s for s in _sites if s is not site)
        if not _sites:
            _uninstall()


def _install() -> None:
    patches: tuple[tuple[Any, str, Callable[[Any], Any]], ...] = (
        (base_llm, "run_with_rate_limit_retry", _wrap_run),
        (base_llm, "arun_with_rate_limit_retry", _wrap_arun),
        (BaseLLM, "_invoke_before_llm_call_hooks", _wrap_before),
        (LiteLLMFallback, "_prepare_completion_params", _wrap_params),
        (OpenAICompletion, "_prepare_completion_params", _wrap_params),
    )
    for owner, name, wrap in patches:
        original = vars(owner).get(name)
        if original is None:  # a CrewAI release that moved it: that part goes without crewtrace's context
            _logger.warning("this CrewAI has no %s.%s: its LLM requests go without crewtrace's context", owner, name)
            continue
        _originals[(owner, name)] = original
        setattr(owner, name, wrap(original))


def _uninstall() -> None:
    for (owner, name), original in _originals.items():
        setattr(owner, name, original)
    _originals.clear()


# -- a call's scope ------------------------------------------------------------------


def _wrap_run(run: Callable[..., T]) -> Callable[..., T]:
    def run_call(operation: Callable[[], T], **kwargs: Any) -> T:
        call = _Call()
        token, sinks = _current.set(call), add_stream_sink(_sink_for(call))
        try:
            return run(operation, **kwargs)
        finally:
            call.leave()
            reset_stream_sinks(sinks)
            _current.reset(token)

    return run_call


def _wrap_arun(arun: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    async def arun_call(operation: Callable[[], Awaitable[T]], **kwargs: Any) -> T:
        call = _Call()
        token, sinks = _current.set(call), add_stream_sink(_sink_for(call))
        try:
            return await arun(operation, **kwargs)
        finally:
            call.leave()
            reset_stream_sinks(sinks)
            _current.reset(token)

    return arun_call


def _sink_for(call: _Call) -> Callable[[Any, Any], None]:
    """CrewAI's stream sink for one call: every event emitted in its context, inline (chunks return at once)."""

    def sink(source: Any, event: Any) -> None:
        kind = event.type
        if kind == "llm_stream_chunk" or _current.get() is not call:  # an inner call's events are its own
            return
        try:
            if kind == "llm_call_started":
                call.leave()  # a retry: the attempt before it is over
                call.call_id = event.call_id
            elif kind in ("llm_call_completed", "llm_call_failed") and event.call_id == call.call_id:
                raised = sys.exc_info()[1]
                if kind == "llm_call_failed" and raised is not None:
                    _raised.put(event.call_id, llm_error_type(raised))
                call.leave()
        except Exception:
            _logger.exception("crewtrace's hook failed on CrewAI's %s event", kind)

    return sink


# -- the request ---------------------------------------------------------------------


def _wrap_before(before: Callable[..., Any]) -> Callable[..., Any]:
    def invoke_before_llm_call_hooks(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = before(self, *args, **kwargs)
        call = _current.get()
        if call is not None and call.call_id is not None:
            _enter(call, call.call_id)
        return result

    return invoke_before_llm_call_hooks


def _enter(call: _Call, call_id: str) -> None:
    """Enter every instrumented bus's request context for ``call_id``, once its started event reached that bus."""
    deadline = time.monotonic() + WAIT_S
    for site in _sites:
        if not site.bus.has_request_hooks():
            continue
        if not site.released.wait(call_id, max(0.0, deadline - time.monotonic())):
            _logger.debug("call %s: its started event did not reach crewtrace in time; no request context", call_id)
            continue
        try:
            call.headers.update(call.contexts.enter_context(site.bus.request_context(call_id)))
        except Exception:
            _logger.exception("crewtrace could not enter the request context of call %s", call_id)


def _wrap_params(prepare: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def prepare_completion_params(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        params = prepare(self, *args, **kwargs)
        call = _current.get()
        if call is not None and call.headers:
            params["extra_headers"] = {**(params.get("extra_headers") or {}), **call.headers}
        return params

    return prepare_completion_params
