"""``crewtrace stack DIR``: the repository's local observability stack, from an installed package.

The files are the repository's own top-level ones (``docker-compose.yml`` and what it mounts):
the wheel carries them under ``crewtrace/_stack/`` (hatch ``force-include`` in pyproject.toml),
and a source checkout reads them from the repository root, so there is one copy of each.
"""

from __future__ import annotations

import shlex
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

__all__ = ["STACK_FILES", "compose_up_command", "stack_sources", "write_stack"]

# Everything docker-compose.yml mounts, relative to it. pyproject.toml packages these paths.
STACK_FILES = (
    "docker-compose.yml",
    "otel-collector.yaml",
    "prometheus.yml",
    "deploy/jaeger.yaml",
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
    """Write the stack into ``directory``; refuse to overwrite a file unless ``force``. Returns 0."""
    target = Path(directory)
    existing = [name for name in STACK_FILES if (target / name).exists()]
    if existing and not force:
        raise FileExistsError(
            f"{target / existing[0]} already exists ({len(existing)} of the stack's files are there): "
            "pass --force to overwrite them, or choose another directory"
        )
    source = stack_sources()
    for name in STACK_FILES:
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source.joinpath(*name.split("/")).read_bytes())
    print(f"wrote the crewtrace stack ({len(STACK_FILES)} files) to {target}/")
    print("next:")
    print(f"  {compose_up_command(target)}")
    print("  crewtrace demo --otlp-endpoint http://localhost:4317")
    print("then open Jaeger at http://localhost:16686 and Grafana at http://localhost:3000")
    return 0
