"""A real CrewAI crew under instrument_crewai(), exporting over OTLP, drawn by a `crewtrace watch` subprocess."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

if os.environ.get("CI") != "true":  # under CI the test extra has installed CrewAI: a missing one fails there
    pytest.importorskip("crewai", reason="needs CrewAI: pip install -e '.[test,crewai]' (make test uses .venv-crewai)")
from tests.cli.watching import WatchProcess
from tests.integrations.crewai_crews import two_agent_crewai_crew
from tests.support.openai_server import FakeOpenAIServer, Reply, last_user_text
from tests.support.polling import wait_until
from tests.support.recording import Recorder

from crewtrace.events import CrewKickoffCompletedEvent, EventBus
from crewtrace.telemetry import setup_telemetry


def final_answers(body: dict[str, Any]) -> Reply:
    return Reply(chunks=["Final Answer: ", *[f"{last_user_text(body)[:10]}-{i} " for i in range(4)]])


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_crewai_run_is_drawn_with_its_agents_and_tasks(
    server: FakeOpenAIServer, bus: EventBus, instrumentation: Any, protocol: str
) -> None:
    server.responder = final_answers
    with WatchProcess() as watch:
        endpoint = watch.grpc_endpoint if protocol == "grpc" else watch.http_endpoint
        telemetry = setup_telemetry(
            "crewai-app", otlp_endpoint=endpoint, otlp_protocol=protocol, set_global=False, bus=bus
        )
        ended = Recorder(bus)
        try:
            two_agent_crewai_crew(server, name="watched-team").kickoff(inputs={"topic": "tracing"})
            # CrewAI hands its non-chunk events to a thread pool: the run's end may still be on its way.
            wait_until(lambda: ended.of(CrewKickoffCompletedEvent), what="CrewAI's end of the run")
        finally:
            assert telemetry.shutdown(), "delivered to crewtrace watch"
        out = watch.wait_for_output(r"^run watched-team")
    drawn = out[out.index("\nrun watched-team") + 1 :]
    assert re.match(r"run watched-team \(crewai-app\): ok in [\d.]+ m?s; \d+ spans, 2 LLM calls \(0 failed\)", drawn)
    labels = [line.split(" |")[0].rstrip() for line in drawn.splitlines() if " |" in line]
    assert labels == [
        "invoke_workflow watched-team",
        "  execute_task research",
        "    invoke_agent Researcher of {…",  # clipped to the label column
        "      chat test-model",
        "  execute_task write",
        "    invoke_agent Writer",
        "      chat test-model",
    ]
    assert all(re.search(r"ttfc \d+ms \d+ ch$", line) for line in drawn.splitlines() if "  chat " in line)
    rows = {line.split("  ")[0] for line in drawn.splitlines() if re.match(r"^\S.*  \d+  +0  ", line)}
    assert rows == {"Researcher of {topic}", "Writer"}, "the table per agent and task"
