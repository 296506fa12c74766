"""Run ``crewtrace`` as a user does: a subprocess, without the variables the suite sets for itself."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

import pytest

from crewtrace.cli import main

# Set by tests/conftest.py for the suite's own process; a user's shell has none of them.
SUITE_VARIABLES = ("LITELLM_LOCAL_MODEL_COST_MAP", "GRPC_ENABLE_FORK_SUPPORT")


def user_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in SUITE_VARIABLES}
    if env.get("PYTHONPATH"):  # absolute, so that a run from another directory imports the same crewtrace
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(entry) for entry in env["PYTHONPATH"].split(os.pathsep))
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", **(extra or {})})
    return env


def crewtrace_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "crewtrace", *args]


def run_crewtrace(
    *args: str, env: Mapping[str, str] | None = None, prefix: Sequence[str] = (), cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *crewtrace_command(*args)],
        env=user_env(env),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=180,
        cwd=cwd,
    )


def run_crewtrace_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``crewtrace *args`` through ``crewtrace.cli.main`` in the test's process, output captured by ``capsys``.

    For mistakes refused before any crew runs, which need no process of their own (and no cold
    litellm import); the exit codes through a real process are checked by the subprocess tests.
    """
    # The demo holds the telemetry loggers' records for the rest of its process: not of the test's.
    loggers = [logging.getLogger(name) for name in ("opentelemetry", "crewtrace.telemetry")]
    saved = [(logger.propagate, list(logger.handlers)) for logger in loggers]
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code if isinstance(exit_.code, int) else 2
    finally:
        for logger, (propagate, handlers) in zip(loggers, saved, strict=True):
            logger.propagate, logger.handlers = propagate, handlers
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["crewtrace", *args], code, out, err)


def one_line(text: str) -> str:
    """The single line of ``text``; fails if there are more (or none)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    return lines[0]
