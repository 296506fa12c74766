"""examples/stream_sse.py as a real process on 127.0.0.1, read with a real HTTP client (http.client).

The example's crew talks to the suite's OpenAI-compatible server; the test reads the
server-sent events as a browser would, and hangs up mid-run to check that the run stops.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.llms import API_KEY
from tests.support.openai_server import FakeOpenAIServer, Reply, chop, numbered_chunks
from tests.support.polling import wait_until

import crewtrace

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stream_sse.py"
_SERVING = re.compile(r"serving on http://127\.0\.0\.1:(\d+)/")


class Example:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port

    def get(self, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.request("GET", path)
        return connection, connection.getresponse()


@pytest.fixture
def example(server: FakeOpenAIServer) -> Iterator[Example]:
    """The example, pointed at the fake server, on a port it picked itself (no race for a free one)."""
    env = {
        **os.environ,
        "OPENAI_API_KEY": API_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHONPATH": os.pathsep.join([str(Path(crewtrace.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0", "--model", "openai/test-model", "--base-url", server.base_url],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = _SERVING.search(line)
        assert match, f"the example did not start: {line!r}"
        yield Example(process, int(match.group(1)))
    finally:
        process.terminate()
        process.wait(10)


def events(response: http.client.HTTPResponse) -> Iterator[tuple[str, Any]]:
    """Parse ``event:`` / ``data:`` blocks as they arrive."""
    name, data = "", ""
    while line := response.readline().decode():
        if line.startswith("event: "):
            name = line[len("event: ") :].strip()
        elif line.startswith("data: "):
            data = line[len("data: ") :].strip()
        elif line == "\n" and name:
            yield name, json.loads(data)
            name, data = "", ""


def test_the_example_streams_every_chunk_then_the_result(server: FakeOpenAIServer, example: Example) -> None:
    server.responder = lambda body: Reply(chunks=chop("Answer to: " + body["messages"][1]["content"].split("\n")[0]))
    connection, response = example.get("/run?topic=tracing")
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    received = list(events(response))
    connection.close()

    *chunks, (kind, result) = received
    assert kind == "result" and {name for name, _ in chunks} == {"chunk"}
    assert [c["task_index"] for _, c in chunks] == sorted(c["task_index"] for _, c in chunks)
    by_task = {(c["task_index"], c["task_name"], c["agent_role"]) for _, c in chunks}
    assert by_task == {(0, "research", "Researcher"), (1, "write", "Writer")}
    assert {c["run_id"] for _, c in chunks} == {result["run_id"]}
    written = "".join(c["content"] for _, c in chunks if c["task_name"] == "write")
    assert written == result["raw"] == "Answer to: Write one paragraph about tracing."


def test_a_client_that_hangs_up_stops_the_run(server: FakeOpenAIServer, example: Example) -> None:
    server.responder = lambda body: Reply(chunks=numbered_chunks(200), delay=0.02)
    connection, response = example.get("/run?topic=hang-up")
    stream = events(response)
    for _ in range(3):
        assert next(stream)[0] == "chunk"
    response.close()  # the browser tab closed: the socket goes (the response holds it, not just the connection)
    connection.close()

    wait_until(lambda: not server.open_connections, what="the example closed the LLM stream of the abandoned run")
    assert len(server.requests) == 1, "the second task never started"
    assert example.process.poll() is None, "the example still serves"

    server.responder = lambda body: Reply(chunks=["fine"])
    connection, response = example.get("/run?topic=again")
    assert [name for name, _ in events(response)][-1] == "result"
    connection.close()
