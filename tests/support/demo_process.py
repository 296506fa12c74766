"""``crewtrace demo`` as a subprocess, for tests that need the real CLI running (metrics, keep-alive).

Usage::

    with run_demo("--metrics-port", str(port), "--keep-alive") as demo:
        demo.port                                  # parsed from the "metrics: http://HOST:PORT/metrics" line
        demo.wait_for_output(r"keeping telemetry alive")
        ...                                        # scrape demo.metrics_url, start Prometheus, ...
        exit_code = demo.stop()                    # SIGTERM, then wait (kill after a timeout)
    demo.stdout_text()                             # still readable after the block

API:

- ``run_demo(*args, env=None, log_dir=None, startup_timeout=STARTUP_TIMEOUT)``: context manager that starts
  ``python -m crewtrace demo *args`` (``LITELLM_LOCAL_MODEL_COST_MAP=True`` and unbuffered output are
  set for it; ``env`` adds or overrides variables). When ``--metrics-port`` is among ``args`` it waits
  until the demo prints its metrics line, so the endpoint is up when the block starts. On leaving the
  block the demo is stopped if it still runs. Raises :class:`DemoError` (with the output's tail) if the
  demo exits or stays silent first.
- :class:`DemoProcess`: ``.port`` / ``.metrics_url`` (``None`` without ``--metrics-port``),
  ``.process`` (the ``Popen``), ``.returncode``, ``stdout_text()`` / ``stderr_text()`` (at any time,
  also after exit), ``wait_for_output(pattern, timeout)`` (regex on stdout, returns the match),
  ``wait(timeout)`` (exit code) and ``stop(timeout=10.0)`` (SIGTERM; idempotent; returns the exit code;
  ``crewtrace demo --keep-alive`` exits 0 on SIGTERM once it printed "keeping telemetry alive").

Output goes to files (in ``log_dir`` if given, else a temporary directory removed after the block), so
a chatty demo can never block on a full pipe.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["DemoError", "DemoProcess", "run_demo"]

# A deadline, not a wait: generous, because a cold start on a loaded machine (litellm's import, bytecode
# compiled on first use in a fresh environment) can take a minute.
STARTUP_TIMEOUT = 180.0

_METRICS_LINE = re.compile(r"^metrics: (http://(\[[^\]]+\]|[^:/\s]+):(\d+)/metrics)$", re.MULTILINE)


class DemoError(RuntimeError):
    """The demo exited, or did not print what was awaited, in time."""


class DemoProcess:
    """A running (or finished) ``crewtrace demo``; made by :func:`run_demo`."""

    def __init__(self, args: tuple[str, ...], env: Mapping[str, str] | None, log_dir: Path) -> None:
        self.args = args
        self.port: int | None = None
        self.metrics_url: str | None = None
        self._stdout_path = log_dir / "demo.stdout"
        self._stderr_path = log_dir / "demo.stderr"
        self._cached: tuple[str, str] | None = None
        full_env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONUNBUFFERED": "1", **(env or {})}
        with self._stdout_path.open("wb") as out, self._stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "crewtrace", "demo", *args], stdout=out, stderr=err, env=full_env
            )

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def stdout_text(self) -> str:
        return self._cached[0] if self._cached else self._stdout_path.read_text(errors="replace")

    def stderr_text(self) -> str:
        return self._cached[1] if self._cached else self._stderr_path.read_text(errors="replace")

    def wait_for_output(self, pattern: str, timeout: float = STARTUP_TIMEOUT) -> re.Match[str]:
        """Wait until stdout matches ``pattern`` (a regex, multiline); raise DemoError if it exits first."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.stdout_text())
            if match:
                return match
            if self.process.poll() is not None:
                match = regex.search(self.stdout_text())  # output written just before exiting
                if match:
                    return match
                code = self.process.returncode
                raise DemoError(f"demo exited with {code} before printing {pattern!r}\n{self._tail()}")
            if time.monotonic() > deadline:
                raise DemoError(f"demo did not print {pattern!r} within {timeout} s\n{self._tail()}")
            time.sleep(0.05)

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout`` s (then SIGKILL); return the exit code. Safe to call again."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def _await_metrics_line(self, timeout: float) -> None:
        match = self.wait_for_output(_METRICS_LINE.pattern, timeout)
        self.metrics_url = match.group(1)
        self.port = int(match.group(3))

    def _freeze(self) -> None:
        """Keep the output in memory, so it stays readable once the log files are gone."""
        if self._cached is None:
            self._cached = (self.stdout_text(), self.stderr_text())

    def _tail(self, chars: int = 4000) -> str:
        return f"--- stdout ---\n{self.stdout_text()[-chars:]}\n--- stderr ---\n{self.stderr_text()[-chars:]}"


@contextmanager
def run_demo(
    *args: str,
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> Iterator[DemoProcess]:
    """Start ``crewtrace demo *args``; stop it on leaving the block (see the module docstring)."""
    own_dir = log_dir is None
    directory = Path(tempfile.mkdtemp(prefix="crewtrace-demo-")) if log_dir is None else Path(log_dir)
    demo = DemoProcess(tuple(args), env, directory)
    try:
        if any(a == "--metrics-port" or a.startswith("--metrics-port=") for a in args):
            demo._await_metrics_line(startup_timeout)
        yield demo
    finally:
        demo.stop()
        demo._freeze()
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)
