"""The three snippets of the CrewAI streaming document, with only the imports changed.

Each runs in a fresh interpreter against the local OpenAI-compatible server,
configured the way a user would point litellm at any endpoint: through
``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.support.openai_server import FakeOpenAIServer, Reply

BASIC_SETUP = """
from crewtrace import LLM

# Create an LLM with streaming enabled
llm = LLM(
    model="openai/gpt-4o",
    stream=True  # Enable streaming
)
"""

EVENT_HANDLING = """
from crewtrace.events import (
  LLMStreamChunkEvent
)
from crewtrace.events import BaseEventListener

class MyCustomListener(BaseEventListener):
    def setup_listeners(self, crewai_event_bus):
        @crewai_event_bus.on(LLMStreamChunkEvent)
        def on_llm_stream_chunk(self, event: LLMStreamChunkEvent):
          # Process each chunk as it arrives
          print(f"Received chunk: {event.chunk}")

my_listener = MyCustomListener()
"""

AGENT_AND_TASK_TRACKING = '''
from crewtrace import LLM, Agent, Task, Crew
from crewtrace.events import LLMStreamChunkEvent
from crewtrace.events import BaseEventListener

class MyCustomListener(BaseEventListener):
    def setup_listeners(self, crewai_event_bus):
        @crewai_event_bus.on(LLMStreamChunkEvent)
        def on_llm_stream_chunk(source, event):
            if researcher.id == event.agent_id:
                print("\\n==============\\n Got event:", event, "\\n==============\\n")

my_listener = MyCustomListener()

llm = LLM(model="gpt-4o-mini", temperature=0, stream=True)

researcher = Agent(
    role="About User",
    goal="You know everything about the user.",
    backstory="""You are a master at understanding people and their preferences.""",
    llm=llm,
)

search = Task(
    description="Answer the following questions about the user: {question}",
    expected_output="An answer to the question.",
    agent=researcher,
)

crew = Crew(agents=[researcher], tasks=[search])

result = crew.kickoff(
    inputs={"question": "..."}
)
'''


def run_snippet(server: FakeOpenAIServer, code: str) -> str:
    env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-seed-test"}
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_basic_setup_streams(server: FakeOpenAIServer) -> None:
    out = run_snippet(server, BASIC_SETUP + "\nprint(repr(llm.call('Stream me')))\n")
    assert out.strip() == repr("Answer for: Stream me")
    (request,) = server.requests
    assert request.body["stream"] is True and request.body["model"] == "gpt-4o"


def test_event_handling_prints_every_chunk(server: FakeOpenAIServer) -> None:
    out = run_snippet(server, BASIC_SETUP + EVENT_HANDLING + "\nllm.call('Hi there')\n")
    printed = [
        line.removeprefix("Received chunk: ") for line in out.splitlines() if line.startswith("Received chunk: ")
    ]
    assert "".join(printed) == "Answer for: Hi there"
    assert len(printed) > 1, "one line per streamed chunk"


def test_agent_and_task_tracking_matches_the_researchers_chunks(server: FakeOpenAIServer) -> None:
    server.queue(Reply(chunks=["The ", "user ", "likes ", "tea."]))
    out = run_snippet(server, AGENT_AND_TASK_TRACKING)
    assert out.count("Got event:") == 4, out
    for index, text in enumerate(["The ", "user ", "likes ", "tea."]):
        assert f"chunk={text!r} chunk_index={index}" in out
    assert "task_name='Answer the following questions about the'" in out
    assert "agent_role='About User'" in out
