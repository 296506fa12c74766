"""``crewtrace stack DIR``: the repository's local observability stack, from an installed package.

The files are the repository's own (``docker-compose.yml`` and what it mounts, and the Prometheus
configuration for use without Docker): the wheel carries them under ``crewtrace/_stack/`` (hatch
``force-include`` in pyproject.toml), and a source checkout reads them from the repository root, so
there is one copy of each. Nothing is written through a symbolic link, even with ``--force``: a link
inside DIR could send a file anywhere.
"""

from __future__ import annotations

import os
import shlex
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from crewtrace.cli._errors import CommandFailed
from crewtrace.cli.terminal import visible

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

__all__ = ["STACK_FILES", "compose_up_command", "stack_sources", "write_stack"]

# Everything docker-compose.yml mounts, relative to it, and Prometheus's configuration without Docker
# (docs/deployment.md). pyproject.toml packages these paths.
STACK_FILES = (
    "docker-compose.yml",
    "otel-collector.yaml",
    "prometheus.yml",
    "deploy/jaeger.yaml",
    "deploy/prometheus-local.yml",
    "dashboards/provisioning/datasources/datasources.yaml",
    "dashboards/provisioning/dashboards/dashboards.yaml",
    "dashboards/json/crewtrace-agents.json",
    "dashboards/json/crewtrace-tasks.json",
    "dashboards/json/crewtrace-debugging.json",
)
_PACKAGED = "_stack"
_SOURCE_ROOT = Path(__file__).resolve().parents[3]  # src/crewtrace/cli/stack.py -> the repository


def stack_sources() -> Traversable | Path:
    """The directory holding the stack files: packaged in the wheel, else the source checkout's root."""
    packaged = resources.files("crewtrace") / _PACKAGED
    if packaged.joinpath(STACK_FILES[0]).is_file():
        return packaged
    if (_SOURCE_ROOT / STACK_FILES[0]).is_file():
        return _SOURCE_ROOT
    raise FileNotFoundError("this crewtrace installation has no stack files: reinstall crewtrace from its wheel")


def compose_up_command(directory: str | Path) -> str:
    """The command that starts a stack written to ``directory``."""
    return f"docker compose -f {shlex.quote(str(Path(directory) / STACK_FILES[0]))} up -d"


def write_stack(directory: str, *, force: bool = False) -> int:
    """Write the stack into ``directory``; refuse to overwrite a file unless ``force``. Returns 0.

    Raises :class:`CommandFailed` for a file where a directory must be, a symbolic link on the way
    (with or without ``force``), or files that exist (without ``force``); nothing is written then.
    """
    target = Path(directory)
    _check_paths(target)
    existing = [name for name in STACK_FILES if os.path.lexists(target / name)]
    if existing and not force:
        raise CommandFailed(
            f"{_shown(target / existing[0])} already exists ({len(existing)} of the stack's files are there): "
            "pass --force to overwrite them, or choose another directory"
        )
    source = stack_sources()
    for name in STACK_FILES:
        _write(target, name, source.joinpath(*name.split("/")).read_bytes())
    print(f"wrote the crewtrace stack ({len(STACK_FILES)} files) to {_shown(target)}/")
    print("next:")
    print(f"  {visible(compose_up_command(target))}")
    print("  crewtrace demo --otlp-endpoint http://localhost:4317")
    print("then open Jaeger at http://localhost:16686 and Grafana at http://localhost:3000")
    return 0


def _check_paths(target: Path) -> None:
    """Refuse, before writing anything, a file where a directory goes and any link below ``target``."""
    for parent in (target, *target.parents):
        if parent.is_symlink() and not parent.exists():
            raise CommandFailed(f"{_shown(parent)} is a symbolic link to nothing: name a directory for the stack")
        if parent.exists() and not parent.is_dir():
            raise CommandFailed(
                f"{_shown(parent)} is a file, not a directory: name a directory for the stack "
                "(it is created if missing)"
            )
    for name in STACK_FILES:
        path = target
        parts = name.split("/")
        for depth, part in enumerate(parts, start=1):
            path = path / part
            if path.is_symlink():
                raise CommandFailed(
                    f"{_shown(path)} is a symbolic link: crewtrace stack never writes through one, even with --force; "
                    "remove it or choose another directory"
                )
            if depth < len(parts) and path.exists() and not path.is_dir():
                raise CommandFailed(
                    f"{_shown(path)} is a file, not a directory: move it away or choose another directory"
                )
            if depth == len(parts) and path.is_dir():
                raise CommandFailed(f"{_shown(path)} is a directory, where the stack writes a file: move it away")


def _write(target: Path, name: str, data: bytes) -> None:
    path = target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_NOFOLLOW: a link planted after the checks still fails the open (ELOOP) instead of being followed.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags, 0o644)
    except OSError as exc:
        raise CommandFailed(f"{_shown(path)}: cannot write it ({exc.strerror or exc})") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _shown(path: Path) -> str:
    return visible(str(path))
