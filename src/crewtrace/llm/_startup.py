"""litellm's one-time start-up, paid before the first call's clock starts, not inside it.

litellm imports most of its request pipeline lazily, on the first call of a process: seconds on
a cold machine, which that call's time to first chunk and duration would report as the
provider's. So before the first call of a process starts its clock, crewtrace runs litellm
once with ``mock_response`` (nothing is sent, nothing reported to litellm's callbacks). It runs
in the calling thread, not in the background: a background thread holding litellm's import
locks or thread pools would deadlock a process forked meanwhile (``gunicorn --preload``).
"""

from __future__ import annotations

import asyncio
import logging
import threading

import openai

from crewtrace.llm._litellm import litellm

__all__ = ["await_started", "wait_started"]

_logger = logging.getLogger("crewtrace.llm")
_REQUEST = {
    "model": "openai/gpt-4o-mini",  # priced: litellm's cost and token counting start up too
    "messages": [{"role": "user", "content": "start-up"}],
    "stream": True,
    "stream_options": {"include_usage": True},
    "mock_response": "ok",
    "api_key": "start-up",
    "no-log": True,
}

_lock = threading.Lock()
_done = False


def wait_started() -> None:
    """Run litellm's start-up if this process has not yet (once; other callers wait for it)."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        try:
            import httpcore  # noqa: F401  (the OpenAI SDK's transport, imported by its first client)

            for _ in litellm.completion(**_REQUEST):
                pass
            # The OpenAI SDK imports its resources when a client first uses them (openai 2.x: ~200 modules).
            with openai.OpenAI(api_key="start-up", base_url="http://127.0.0.1:9/v1") as client:
                client.chat.completions  # noqa: B018
        except Exception:  # the first real call then pays what is left, and reports any real problem
            _logger.debug("litellm's start-up failed", exc_info=True)
        _done = True


async def await_started() -> None:
    """:func:`wait_started` without blocking the event loop."""
    if not _done:
        await asyncio.to_thread(wait_started)
