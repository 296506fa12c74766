"""Fixtures of the CLI tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def no_network() -> list[str]:
    """A command prefix that runs a program in a network namespace of its own: no network at all."""
    unshare = shutil.which("unshare")
    works = unshare is not None and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0
    if not works:
        message = "`unshare -n` is not permitted here (needs root or user namespaces)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    assert unshare is not None
    return [unshare, "-n"]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]
