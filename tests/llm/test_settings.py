"""Bad LLM settings fail at construction naming the argument; keyless local servers and bare names."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest
from tests.support.openai_server import FakeOpenAIServer, Reply
from tests.support.recording import Recorder

from crewtrace import LLM, LLMCallError
from crewtrace.errors import ConfigurationError
from crewtrace.events import EventBus
from crewtrace.llm.client import NO_KEY


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"timeout": 0}, ConfigurationError, "timeout"),
        ({"timeout": -1}, ConfigurationError, "timeout"),
        ({"timeout": "10"}, ConfigurationError, "timeout"),
        ({"temperature": "hot"}, ConfigurationError, "temperature"),
        ({"temperature": 7}, ConfigurationError, "temperature"),
        ({"temperature": True}, ConfigurationError, "temperature"),
        ({"max_tokens": 0}, ConfigurationError, "max_tokens"),
        ({"max_tokens": 1.5}, ConfigurationError, "max_tokens"),
        ({"base_url": "localhost:8000/v1"}, ConfigurationError, "base_url"),
        ({"base_url": "ftp://host/v1"}, ConfigurationError, "base_url"),
        ({"base_url": 8000}, ConfigurationError, "base_url"),
        ({"api_key": 123}, ConfigurationError, "api_key"),
    ],
)
def test_a_bad_setting_fails_at_construction_naming_the_argument(
    kwargs: dict[str, Any], error: type[Exception], argument: str
) -> None:
    with pytest.raises(error, match=argument):
        LLM("openai/test-model", **kwargs)


@pytest.mark.parametrize("model", ["", "   ", None, 3])
def test_a_model_must_be_a_non_empty_string(model: Any) -> None:
    with pytest.raises(ValueError, match="model"):
        LLM(model)


def test_good_settings_are_accepted() -> None:
    llm = LLM("openai/m", timeout=2.5, temperature=0, max_tokens=10, base_url="https://example.test/v1", api_key="k")
    assert (llm.timeout, llm.temperature, llm.max_tokens) == (2.5, 0, 10)


def test_a_model_name_without_its_provider_is_refused_with_the_prefix_to_write() -> None:
    with pytest.raises(ValueError, match="'openai/my-model' for an OpenAI-compatible server"):
        LLM("my-model", base_url="http://127.0.0.1:8000/v1")
    assert LLM("gpt-4o-mini").provider == "openai", "names litellm knows need no prefix"


def test_an_openai_compatible_server_needs_no_key_anywhere(
    server: FakeOpenAIServer, bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.queue(Reply(chunks=["lo", "cal"]))
    assert LLM("openai/local", stream=True, base_url=server.base_url, bus=bus).call("hi") == "local"
    assert server.requests[0].headers["authorization"] == f"Bearer {NO_KEY}"


def test_a_refused_connection_names_the_url_it_tried(bus: EventBus, recorder: Recorder) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    llm = LLM("openai/local", stream=True, base_url=url, api_key="k", timeout=5, bus=bus, num_retries=0, max_retries=0)
    with pytest.raises(LLMCallError, match=r"tried http://127\.0\.0\.1:") as caught:
        llm.call("hi")
    assert url in str(caught.value)
    assert recorder.events[-1].type == "llm_call_failed"


def test_warm_up_sends_nothing_and_emits_nothing(server: FakeOpenAIServer, bus: EventBus, recorder: Recorder) -> None:
    llm = LLM("openai/test-model", stream=True, base_url=server.base_url, api_key="k", bus=bus)
    llm.warm_up()
    assert server.requests == [] and recorder.events == []
    server.queue(Reply(chunks=["af", "ter"]))
    assert llm.call("x") == "after"


FIRST_CALL = """
import sys
from crewtrace import LLM
from crewtrace.events import EventBus, LLMCallCompletedEvent, LLMCallStartedEvent

bus, imported = EventBus(), {}
bus.on(LLMCallStartedEvent)(lambda source, event: imported.setdefault("start", set(sys.modules)))
bus.on(LLMCallCompletedEvent)(lambda source, event: imported.setdefault("end", set(sys.modules)))
llm = LLM("openai/test-model", stream=True, base_url=sys.argv[1], api_key="k", bus=bus)
llm.call("first")
print(len(imported["end"] - imported["start"]))
"""


def test_the_first_call_of_a_process_does_not_time_litellms_start_up(server: FakeOpenAIServer) -> None:
    """litellm imports its request pipeline on a process's first call: that must happen before the call's clock."""
    server.queue(Reply(chunks=["one", "two"]))
    done = subprocess.run(
        [sys.executable, "-c", FIRST_CALL, server.base_url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    # Without it the first call imports a few hundred modules while its clock runs.
    assert int(done.stdout) < 20, f"{done.stdout.strip()} modules imported while the first call was timed"
