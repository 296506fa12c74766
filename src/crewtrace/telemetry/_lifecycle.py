"""Telemetry that is flushed however the process ends, not only when ``atexit`` runs.

``atexit`` covers a normal exit and Ctrl-C. Two common endings skip it:

- **SIGTERM.** With its default action the process just dies; uvicorn (and gunicorn's
  uvicorn workers) stop gracefully, then re-raise the signal with its default action.
  A handler is chained in front of whatever handled SIGTERM before (only from the main
  thread: Python allows nothing else). If that was the default action, the handler shuts
  the telemetry down, then re-raises the signal, so the process still dies of it. If it
  was a server's handler, the handler exports what was recorded so far, switches the
  telemetry to export every span as it ends (the runs the graceful stop lets finish),
  and calls the server's handler. A server that swaps handlers and restores ours before
  re-raising (uvicorn does) gets the first case at the end.
- **multiprocessing's forked workers** (``ProcessPoolExecutor``, ``Pool``) leave through
  ``os._exit`` after running multiprocessing's own finalizers: each telemetry has one
  there, in the process that set it up and in every worker forked from it. (Celery's
  prefork pool, billiard, leaves through ``os._exit`` before any finalizer: it needs
  Celery's ``worker_process_shutdown`` signal.)

Each ending waits for the export at most the shutdown bound, then gets on with it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable
from functools import partial
from multiprocessing import util as mp_util
from types import FrameType
from typing import Any, Protocol

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

_logger = logging.getLogger("crewtrace.telemetry")

SHUTDOWN_TIMEOUT = 5.0
"""Seconds an ending process waits for its telemetry (the default of ``Telemetry.shutdown``)."""
_EXIT_PRIORITY = 10  # multiprocessing runs finalizers of priority >= 0 first, before it joins child processes


class Watched(Protocol):
    """What the process's endings need from a telemetry."""

    def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> bool: ...

    def _drain(self, timeout: float) -> None: ...


_live: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
_finalizers: dict[int, mp_util.Finalize] = {}
_lock = threading.Lock()


def watch(telemetry: Watched) -> None:
    """Flush ``telemetry`` at SIGTERM and at a forked pool worker's exit, until :func:`unwatch`."""
    with _lock:
        _live[id(telemetry)] = telemetry
        _arm_worker_exit(telemetry)
    _chain_sigterm()


def unwatch(telemetry: Watched) -> None:
    with _lock:
        _live.pop(id(telemetry), None)
        finalizer = _finalizers.pop(id(telemetry), None)
    if finalizer is not None:
        finalizer.cancel()


def _arm_worker_exit(telemetry: Watched) -> None:
    """A multiprocessing finalizer: in a forked worker it runs where ``atexit`` does not (``os._exit``)."""
    _finalizers[id(telemetry)] = mp_util.Finalize(
        None, telemetry.shutdown, args=(SHUTDOWN_TIMEOUT,), exitpriority=_EXIT_PRIORITY
    )


def _arm_in_worker(telemetry: Watched) -> None:
    """In a worker multiprocessing forked (whose finalizers it cleared): arm again, unless shut down."""
    if _live.get(id(telemetry)) is telemetry:
        _arm_worker_exit(telemetry)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it when the process forked
    # multiprocessing clears its finalizers as its worker starts, then runs the callbacks registered here.
    for telemetry in list(_live.values()):
        mp_util.register_after_fork(telemetry, _arm_in_worker)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _chain_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        _logger.debug("telemetry set up outside the main thread: SIGTERM cannot be watched from here")
        return
    current = signal.getsignal(signal.SIGTERM)
    if isinstance(current, _SigtermHandler) or current in (signal.SIG_IGN, None):
        return  # already chained; or SIGTERM is ignored, or handled outside Python: left as it is
    signal.signal(signal.SIGTERM, _SigtermHandler(current))


class _SigtermHandler:
    """Flushes every live telemetry, then hands the signal on to the handler it replaced."""

    def __init__(self, previous: Callable[[int, FrameType | None], Any] | int) -> None:
        self.previous = previous

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        with _lock:
            telemetries: list[Watched] = list(_live.values())
        previous = self.previous
        if not callable(previous):  # the default action: the process ends now, so the telemetry does too
            _aside([partial(t.shutdown, SHUTDOWN_TIMEOUT) for t in telemetries], SHUTDOWN_TIMEOUT + 1.0)
            signal.signal(signum, previous)
            signal.raise_signal(signum)
            return
        _aside([partial(t._drain, SHUTDOWN_TIMEOUT) for t in telemetries], SHUTDOWN_TIMEOUT + 1.0)
        previous(signum, frame)


class ExportOnEnd(SpanProcessor):
    """Exports at each span's end, while a server lets its last runs finish before the process dies.

    Stops at the first export that fails or runs out of time: a collector that is down
    must not hold every remaining run for the whole bound.
    """

    def __init__(self, export: Callable[[float], bool], timeout: float) -> None:
        self._export = export
        self._timeout = timeout
        self._given_up = False

    def on_end(self, span: ReadableSpan) -> None:
        if not self._given_up and not self._export(self._timeout):
            self._given_up = True


def _aside(calls: list[Callable[[], object]], timeout: float) -> None:
    """Run ``calls`` on threads of their own and wait for them, at most ``timeout`` seconds.

    A signal handler runs in the main thread wherever it was interrupted, possibly holding a
    lock the telemetry needs: waiting aside, bounded, can never deadlock the process.
    """
    threads = [threading.Thread(target=call, name="crewtrace-telemetry-exit", daemon=True) for call in calls]
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
