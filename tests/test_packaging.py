"""The wheel and sdist a user installs: licence, typing marker, metadata, the stack files, and no caches."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from crewtrace.cli.stack import STACK_FILES

pytestmark = pytest.mark.slow  # builds an sdist and a wheel in isolated environments

ROOT = Path(__file__).resolve().parents[1]
CACHES = (".import_linter_cache", ".pytest_cache", ".mypy_cache", ".ruff_cache", "__pycache__")
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", "build", "dist", *CACHES)


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """sdist and wheel built (the wheel from the sdist) from a copy of the tree with caches planted in it."""
    if importlib.util.find_spec("build") is None:
        message = "the `build` package is not installed (make test installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    tmp = tmp_path_factory.mktemp("packaging")
    tree = tmp / "tree"
    shutil.copytree(ROOT, tree, ignore=NOT_COPIED)
    for cache in (".import_linter_cache", ".pytest_cache", "src/crewtrace/__pycache__", "tests/__pycache__"):
        (tree / cache).mkdir(parents=True, exist_ok=True)
        (tree / cache / "planted").write_text("a cache file that must not ship\n")
    out = tmp / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(tree)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = out.glob("crewtrace-*.tar.gz")
    (wheel,) = out.glob("crewtrace-*.whl")
    return sdist, wheel


def wheel_metadata(wheel: Path) -> tuple[list[str], dict[str, list[str]]]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata,) = (name for name in names if name.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(metadata).decode())
    fields: dict[str, list[str]] = {}
    for key, value in message.items():
        fields.setdefault(key, []).append(value)
    return names, fields


def test_wheel_ships_the_licence_and_the_typing_marker(dists: tuple[Path, Path]) -> None:
    names, fields = wheel_metadata(dists[1])
    assert "crewtrace/py.typed" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert fields["License-Expression"] == ["Apache-2.0"]
    assert "Apache License" in (ROOT / "LICENSE").read_text().splitlines()[1]


def test_wheel_metadata_has_classifiers_keywords_and_python_versions(dists: tuple[Path, Path]) -> None:
    _, fields = wheel_metadata(dists[1])
    classifiers = fields["Classifier"]
    assert "Typing :: Typed" in classifiers and "Programming Language :: Python :: 3.10" in classifiers
    assert "opentelemetry" in fields["Keywords"][0] and "crewai" in fields["Keywords"][0]
    assert fields["Requires-Python"] == [">=3.10"]


def test_wheel_carries_the_stack_files_as_they_are_in_the_repository(dists: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(dists[1]) as archive:
        packaged = {name.removeprefix("crewtrace/_stack/") for name in archive.namelist() if "/_stack/" in name}
        assert packaged == set(STACK_FILES)
        for name in STACK_FILES:
            assert archive.read(f"crewtrace/_stack/{name}") == (ROOT / name).read_bytes(), name


def test_sdist_has_the_licence_and_sources_and_no_caches(dists: tuple[Path, Path]) -> None:
    with tarfile.open(dists[0]) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    assert {"LICENSE", "README.md", "pyproject.toml", "src/crewtrace/py.typed", *STACK_FILES} <= set(names)
    assert any(name.startswith("tests/") for name in names)
    shipped_caches = [name for name in names if any(part in CACHES for part in name.split("/"))]
    assert shipped_caches == []


def test_crewtrace_stack_works_from_the_installed_wheel_outside_the_repository(
    dists: tuple[Path, Path], tmp_path: Path
) -> None:
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(dists[1])]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import crewtrace.cli as cli; "
        "assert cli.__file__.startswith(sys.argv[1]), cli.__file__; sys.exit(cli.main(['stack', 'stack']))"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(target)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    for name in STACK_FILES:
        assert (tmp_path / "stack" / name).read_bytes() == (ROOT / name).read_bytes(), name


def test_the_wheel_installs_with_the_crewai_extra_as_docs_crewai_md_says(
    dists: tuple[Path, Path], tmp_path: Path
) -> None:
    wheel = dists[1]
    assert f"/path/to/crewtrace/dist/{wheel.name}[crewai]" in (ROOT / "docs" / "crewai.md").read_text()
    _, fields = wheel_metadata(wheel)
    assert "crewai" in fields["Provides-Extra"]
    assert any(requirement.startswith("crewai<2,>=1.15; extra ==") for requirement in fields["Requires-Dist"])
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp_path), f"{wheel}[crewai]"]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    assert (tmp_path / "crewtrace" / "integrations" / "crewai").is_dir()
