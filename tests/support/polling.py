"""Wait for a condition with a deadline instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


def wait_until(
    condition: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, interval: float = 0.005, what: str = ""
) -> T:
    """Poll ``condition`` until it returns something truthy; return it. Fails with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {what or condition}")
        time.sleep(interval)


async def await_until(
    condition: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, interval: float = 0.005, what: str = ""
) -> T:
    """Async form of :func:`wait_until`: yields to the loop between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {what or condition}")
        await asyncio.sleep(interval)
