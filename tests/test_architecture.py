"""The layering rules of the package, checked by import-linter (contracts in pyproject.toml)."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest
import tomllib
from importlinter import configuration
from importlinter.application.use_cases import lint_imports

import crewtrace
from crewtrace.events import ATTRIBUTION_FIELDS, BaseEvent, ExecutionScope
from crewtrace.telemetry.names import ATTRIBUTION

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    configuration.configure()  # what the lint-imports command does first
    passed = lint_imports(cache_dir=None, no_logo=True, is_debug_mode=True)
    output = capsys.readouterr().out
    assert passed, output
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert len(declared) >= 3
    for contract in declared:
        assert f"{contract['name']} KEPT" in output, f"contract not checked: {contract['name']}"


def test_attribution_fields_have_one_home() -> None:
    """Events and scopes inherit the attribution fields from one class; the telemetry's table names each once."""
    assert tuple(ExecutionScope.model_fields) == ATTRIBUTION_FIELDS
    assert tuple(BaseEvent.model_fields)[: len(ATTRIBUTION_FIELDS)] == ATTRIBUTION_FIELDS
    assert tuple(key.field for key in ATTRIBUTION) == ATTRIBUTION_FIELDS


def test_public_api_is_exported() -> None:
    import crewtrace
    import crewtrace.events
    import crewtrace.telemetry

    for module, names in (
        (crewtrace, ["LLM", "Agent", "Task", "Crew", "CrewOutput"]),
        (
            crewtrace.events,
            [
                "BaseEventListener",
                "crewtrace_event_bus",
                "LLMCallStartedEvent",
                "LLMStreamChunkEvent",
                "LLMCallCompletedEvent",
                "LLMCallFailedEvent",
                "CrewKickoffStartedEvent",
                "CrewKickoffCompletedEvent",
                "CrewKickoffFailedEvent",
                "TaskStartedEvent",
                "TaskCompletedEvent",
                "TaskFailedEvent",
                "AgentExecutionStartedEvent",
                "AgentExecutionCompletedEvent",
                "AgentExecutionErrorEvent",
            ],
        ),
        (crewtrace.telemetry, ["OTelBridge", "setup_telemetry"]),
    ):
        for name in names:
            assert name in module.__all__ and getattr(module, name) is not None
        assert sorted(module.__all__) == sorted(set(module.__all__))


def test_every_top_level_name_resolves_and_lazy_ones_are_their_modules_public_names() -> None:
    """``crewtrace`` lists its lazy names three times (for type checkers, the loader, ``__all__``): keep them one."""
    for name in crewtrace.__all__:
        assert getattr(crewtrace, name) is not None, name
    for name, module in crewtrace._LAZY.items():
        assert name in crewtrace.__all__ and name in importlib.import_module(module).__all__, name


def test_each_public_name_is_one_class() -> None:
    """A name exported by two public modules is the same class in both (one meaning per name)."""
    found: dict[str, set[str]] = {}
    for info in pkgutil.walk_packages(crewtrace.__path__, "crewtrace."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        if info.name.startswith("crewtrace.integrations.") and importlib.util.find_spec("crewai") is None:
            continue  # an adapter whose framework is not installed here (its own environment checks it)
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if isinstance(value, type):
                found.setdefault(name, set()).add(f"{value.__module__}.{value.__qualname__}")
    assert len(found) > 40
    assert {name: classes for name, classes in found.items() if len(classes) > 1} == {}
