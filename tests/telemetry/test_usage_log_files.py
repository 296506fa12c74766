"""Usage log files: each gets the calls of its own telemetry, once, and leaves the application's logging alone.

Real calls through litellm to the fake OpenAI server, real ``setup_telemetry``; the
files are read back as the JSON lines they are.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.llms import API_KEY
from tests.support.openai_server import FakeOpenAIServer

from crewtrace import LLM
from crewtrace.events import EventBus, LLMCallCompletedEvent
from crewtrace.telemetry import Telemetry, setup_telemetry

USAGE_LOGGER = "crewtrace.usage"


@pytest.fixture
def made() -> Iterator[list[Telemetry]]:
    telemetries: list[Telemetry] = []
    yield telemetries
    for telemetry in telemetries:
        telemetry.shutdown()


def call(bus: EventBus, server: FakeOpenAIServer, prompt: str) -> str:
    """One real call on ``bus``; its call id."""
    ids: list[str] = []

    def completed(source: object, event: LLMCallCompletedEvent) -> None:
        ids.append(event.call_id)

    bus.register_handler(LLMCallCompletedEvent, completed)
    try:
        LLM("openai/test-model", base_url=server.base_url, api_key=API_KEY, bus=bus, stream=True).call(prompt)
    finally:
        bus.off(LLMCallCompletedEvent, completed)
    (call_id,) = ids
    return call_id


def call_ids(path: Path) -> list[str]:
    return [json.loads(line)["call_id"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_two_telemetries_on_separate_buses_each_log_only_their_own_calls(
    tmp_path: Path, server: FakeOpenAIServer, made: list[Telemetry]
) -> None:
    first_bus, second_bus = EventBus(), EventBus()
    made.append(setup_telemetry("first", usage_log=tmp_path / "first.jsonl", set_global=False, bus=first_bus))
    made.append(setup_telemetry("second", usage_log=tmp_path / "second.jsonl", set_global=False, bus=second_bus))
    first = [call(first_bus, server, f"first {i}") for i in range(2)]
    second = [call(second_bus, server, "second")]
    for telemetry in made:
        telemetry.shutdown()

    assert call_ids(tmp_path / "first.jsonl") == first
    assert call_ids(tmp_path / "second.jsonl") == second


@pytest.mark.parametrize("buses", ["one bus", "two buses"])
def test_the_same_file_set_up_twice_gets_each_call_once(
    tmp_path: Path, server: FakeOpenAIServer, made: list[Telemetry], buses: str
) -> None:
    path = tmp_path / "usage.jsonl"
    first_bus = EventBus()
    second_bus = first_bus if buses == "one bus" else EventBus()
    made.append(setup_telemetry("first", usage_log=path, set_global=False, bus=first_bus))
    made.append(setup_telemetry("again", usage_log=tmp_path / "." / "usage.jsonl", set_global=False, bus=second_bus))
    calls = [call(first_bus, server, "on the first bus"), call(second_bus, server, "on the second bus")]
    made[0].shutdown()  # the other one still writes
    calls.append(call(second_bus, server, "after the first shut down"))
    made[1].shutdown()
    call(second_bus, server, "after both shut down")

    assert call_ids(path) == calls


def test_a_usage_file_prints_nothing_on_an_application_console_that_shows_warnings(
    tmp_path: Path, server: FakeOpenAIServer, made: list[Telemetry], bus: EventBus
) -> None:
    console: list[logging.LogRecord] = []

    class Console(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            console.append(record)

    root = logging.getLogger()
    handler, saved = Console(), root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # what logging.basicConfig() gives an application
    try:
        made.append(setup_telemetry("quiet", usage_log=tmp_path / "usage.jsonl", set_global=False, bus=bus))
        call_id = call(bus, server, "hello")
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)

    assert call_ids(tmp_path / "usage.jsonl") == [call_id]
    assert [r for r in console if r.name == USAGE_LOGGER] == []
