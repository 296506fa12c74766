"""The layering rules of the package, checked by import-linter (contracts in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is a test dependency: pip install -e '.[test]'"
    result = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


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
