"""`crewtrace stack DIR` writes the repository's stack files, byte for byte, and they pass the stack checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from tests.cli.running import one_line, run_crewtrace
from tests.support.prometheus import require_prometheus
from tests.support.stack_checks import check_compose_schema, check_promtool_config

from crewtrace.cli.stack import STACK_FILES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def written(tmp_path: Path) -> Path:
    target = tmp_path / "my stack"
    result = run_crewtrace("stack", str(target), cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:4] == [
        "next:",
        f"  docker compose -f '{target}/docker-compose.yml' up -d",
        "  crewtrace demo --otlp-endpoint http://localhost:4317",
    ]
    return target


def test_writes_the_repository_files_byte_for_byte(written: Path) -> None:
    files = sorted(str(path.relative_to(written)) for path in written.rglob("*") if path.is_file())
    assert files == sorted(STACK_FILES)
    for name in STACK_FILES:
        assert (written / name).read_bytes() == (ROOT / name).read_bytes(), name


def test_writes_everything_docker_compose_mounts(written: Path) -> None:
    compose = yaml.safe_load((written / "docker-compose.yml").read_text())
    sources = [volume.split(":")[0] for service in compose["services"].values() for volume in service["volumes"]]
    for source in sources:
        assert (written / source).exists(), f"docker-compose.yml mounts {source}, which was not written"


def test_the_written_stack_passes_the_stack_checks(written: Path) -> None:
    check_compose_schema(written)
    require_prometheus()
    promtool = shutil.which("promtool")
    assert promtool is not None
    check_promtool_config(promtool, written, "prometheus.yml")


def test_refuses_to_overwrite_without_force(written: Path) -> None:
    (written / "prometheus.yml").write_text("# edited\n")
    result = run_crewtrace("stack", str(written))
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith(f"crewtrace stack: error: {written}/docker-compose.yml already exists")
    assert "--force" in line
    assert (written / "prometheus.yml").read_text() == "# edited\n"
    result = run_crewtrace("stack", str(written), "--force")
    assert result.returncode == 0, result.stderr
    assert (written / "prometheus.yml").read_bytes() == (ROOT / "prometheus.yml").read_bytes()
