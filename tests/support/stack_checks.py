"""Checks a set of stack files must pass, wherever they were written: the repository or `crewtrace stack DIR`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def check_compose_schema(directory: Path) -> None:
    """docker-compose.yml in ``directory`` matches the Compose specification's schema (check-jsonschema)."""
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
        cwd=directory,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def check_promtool_config(promtool: str, directory: Path, config: str) -> None:
    """Prometheus' own ``promtool check config`` accepts ``config`` (a path relative to ``directory``)."""
    result = subprocess.run([promtool, "check", "config", config], cwd=directory, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
