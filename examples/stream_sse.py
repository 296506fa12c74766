"""Serve a crew's run as server-sent events, with nothing but the standard library.

    python examples/stream_sse.py                       # gpt-4o-mini with OPENAI_API_KEY
    python examples/stream_sse.py --model openai/my-model --base-url http://127.0.0.1:8000/v1
    curl -N 'http://127.0.0.1:8080/run?topic=tracing'

Each chunk of the run is one ``chunk`` event (the ``StreamChunk`` as JSON: text or tool-call
fragment, with its task, agent and LLM call), then comes one ``result`` event with the final
answer, or one ``error`` event. A client that hangs up stops the run: the crew's LLM stream is
closed and no further task starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from crewtrace import LLM, Agent, Crew, CrewtraceError, Task
from crewtrace.crew import CrewStreamingOutput

Send = Callable[[str, str], None]


def build_crew(model: str, base_url: str | None) -> Crew:
    """A researcher and a writer; one crew serves every request (runs do not share state)."""
    llm = LLM(model, base_url=base_url, stream=True, temperature=0)
    researcher = Agent(role="Researcher", goal="Find the key facts.", backstory="Thorough and brief.", llm=llm)
    writer = Agent(role="Writer", goal="Explain clearly.", backstory="Writes for busy readers.", llm=llm)
    return Crew(
        name="sse-crew",
        agents=[researcher, writer],
        tasks=[
            Task(
                name="research",
                description="List three facts about {topic}.",
                expected_output="3 bullets.",
                agent=researcher,
            ),
            Task(
                name="write",
                description="Write one paragraph about {topic}.",
                expected_output="A paragraph.",
                agent=writer,
            ),
        ],
        stream=True,
    )


def stream_run(crew: Crew, inputs: Mapping[str, Any], send: Send) -> None:
    """The loop: one event per chunk, then the result; leaving it early (send fails) stops the run."""
    output = crew.kickoff(inputs=inputs)
    assert isinstance(output, CrewStreamingOutput)  # Crew(stream=True)
    with output:
        try:
            for chunk in output:
                send("chunk", chunk.model_dump_json())
        except CrewtraceError as exc:
            send("error", json.dumps({"error": type(exc).__name__, "message": str(exc)}))
            return
        send("result", json.dumps({"raw": output.result.raw, "run_id": output.run_id}))


class SSEHandler(BaseHTTPRequestHandler):
    """``GET /run?topic=...`` streams one run; HTTP/1.0, so the body ends when the connection closes."""

    server: CrewServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/run":
            self.send_error(404, "try /run?topic=...")
            return
        topic = (parse_qs(url.query).get("topic") or ["OpenTelemetry"])[0]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client left: the run was stopped
            stream_run(self.server.crew, {"topic": topic}, self._send)

    def _send(self, event: str, data: str) -> None:
        self.wfile.write(f"event: {event}\ndata: {data}\n\n".encode())
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per request would interleave with the example's own output."""


class CrewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, crew: Crew) -> None:
        super().__init__(("127.0.0.1", port), SSEHandler)
        self.crew = crew


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL_NAME", "gpt-4o-mini"))
    parser.add_argument("--base-url", default=None, help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    args = parser.parse_args(argv)
    server = CrewServer(args.port, build_crew(args.model, args.base_url))
    print(f"serving on http://127.0.0.1:{server.server_address[1]}/run?topic=...", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
