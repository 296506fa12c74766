"""Wait for a condition with a deadline instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


def _attempts(condition: Callable[[], T], timeout: float, what: str) -> Iterator[T]:
    """Yields ``condition()`` until the caller stops at a truthy one; fails with ``what`` after ``timeout``.

    The value is not looked at again after the caller resumes: a list that was empty when polled may have
    been filled since, and must not end the polling without being returned.
    """
    deadline = time.monotonic() + timeout
    while True:
        yield condition()
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {what or condition}")


def wait_until(
    condition: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, interval: float = 0.005, what: str = ""
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that."""
    for value in _attempts(condition, timeout, what):
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("unreachable")


async def await_until(
    condition: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, interval: float = 0.005, what: str = ""
) -> T:
    """Async form of :func:`wait_until`: yields to the event loop between polls."""
    for value in _attempts(condition, timeout, what):
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError("unreachable")
