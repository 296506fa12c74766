"""The API key never leaves the process, and content only on opt-in.

A key in the environment (``OPENAI_API_KEY``) or passed as ``LLM(api_key=...)``, content
capture on and off. Everything crewtrace can emit is collected and searched for the key:
every OTLP export request as received by a real receiver (span attributes, span events,
status descriptions, resource, metric labels: the raw protobuf bytes), ``/metrics`` in
both formats, the usage log file, every log record of every logger at DEBUG (litellm's
included), stdout/stderr, the events on the bus and the exceptions the application sees.

With capture off, distinctive prompt inputs and replies must appear in none of the
telemetry outputs (the same places minus litellm's own DEBUG log, which logs requests;
that is litellm's, outside crewtrace's telemetry).

A provider error whose message echoes the key is the hard case. Two keys are used: one in
the common ``sk-...`` shape and one in no recognisable shape, which only knowing the key
(given as an argument, or read from the provider's variable) can redact. crewtrace's own
outputs stay clean with both, and so does litellm's own DEBUG log (crewtrace filters it).
"""

from __future__ import annotations

import json
import logging
import traceback
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.openai_server import FakeOpenAIServer, Reply, last_user_text
from tests.support.otlp_receiver import OTLPHttpReceiver
from tests.support.recording import Recorder

from crewtrace import LLM, Agent, Crew, CrewtraceError, Task
from crewtrace.events import BaseEvent, EventBus
from crewtrace.telemetry import setup_telemetry

# Two keys: one in the common "sk-..." shape, one in no recognisable shape (only knowing it can redact it).
SHAPED_KEY = "sk-reliability-5eCr3t-9f8e7d6c5b4a3210"
PLAIN_KEY = "zz9PluralZAlpha0000reliability"
PROMPT_MARK = "PROMPT-MARK-quetzal"  # only ever in filled-in inputs and direct prompts
REPLY_MARK = "REPLY-MARK-axolotl"  # only ever in the server's replies
FAIL_MARK = "please-fail-now"


def responder_for(key: str) -> Callable[[dict[str, Any]], Reply]:
    def responder(body: dict[str, Any]) -> Reply:
        if FAIL_MARK in last_user_text(body):
            # The server's error message echoes the key (as a misconfigured proxy might).
            raise RuntimeError(f"upstream refused the credentials {key}")
        return Reply(chunks=[f"{REPLY_MARK}-{i} " for i in range(4)])

    return responder


@dataclass
class Outputs:
    """Every place telemetry, logs or errors could carry text to, as collected by one scenario."""

    otlp: bytes
    metrics_text: str
    metrics_openmetrics: str
    usage_log: str
    log_text: str
    crewtrace_log_text: str
    stdio: str
    events: str
    errors: str

    def telemetry(self) -> dict[str, str | bytes]:
        return {
            "OTLP export requests": self.otlp,
            "/metrics (text)": self.metrics_text,
            "/metrics (OpenMetrics)": self.metrics_openmetrics,
            "usage log file": self.usage_log,
            "crewtrace.* log records": self.crewtrace_log_text,
        }

    def everywhere(self) -> dict[str, str | bytes]:
        return {
            **self.telemetry(),
            "log records of every logger (DEBUG)": self.log_text,
            "stdout/stderr": self.stdio,
            "events on the bus": self.events,
            "exception messages": self.errors,
        }


def absent(needle: str, where: dict[str, str | bytes]) -> list[str]:
    """Names of the places that contain ``needle``."""
    return [name for name, text in where.items() if (needle.encode() if isinstance(text, bytes) else needle) in text]


@pytest.fixture(params=[PLAIN_KEY, SHAPED_KEY], ids=["plain-key", "sk-key"])
def key(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def key_source(request: pytest.FixtureRequest, key: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "env":
        monkeypatch.setenv("OPENAI_API_KEY", key)
    else:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return request.param


def run_scenario(
    *,
    key: str,
    key_source: str,
    capture: bool,
    fail: bool,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> Outputs:
    bus = EventBus()
    recorder = Recorder(bus)
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    usage_path = tmp_path / "usage.jsonl"
    with FakeOpenAIServer(responder_for(key)) as server, OTLPHttpReceiver() as receiver:
        telemetry = setup_telemetry(
            "svc-secrets",
            otlp_endpoint=receiver.endpoint,
            otlp_protocol="http/protobuf",
            prometheus_port=0,
            usage_log=usage_path,
            capture_content=capture,
            set_global=False,
            bus=bus,
        )
        try:
            llm = LLM(
                "openai/test-model",
                stream=True,
                base_url=server.base_url,
                api_key=key if key_source == "arg" else None,
                bus=bus,
                num_retries=0,
            )
            agent = Agent(role="Keeper", goal="Guard {question}.", backstory="Discreet.", llm=llm)
            crew = Crew(
                name="secrets",
                agents=[agent],
                tasks=[
                    Task(name="answer", description="Answer: {question}", expected_output="Short.", agent=agent),
                    # No name: labelled by its description *template*, never by the filled-in input.
                    Task(description="Check {question} again", expected_output="Short.", agent=agent),
                ],
                bus=bus,
            )
            crew.kickoff(inputs={"question": f"{PROMPT_MARK} what is it?"})
            assert llm.call(f"{PROMPT_MARK} direct").startswith(REPLY_MARK)
            assert "".join(llm.stream(f"{PROMPT_MARK} streamed")).startswith(REPLY_MARK)
            if fail:
                for attempt in (
                    lambda: llm.call(f"{PROMPT_MARK} {FAIL_MARK}"),
                    lambda: crew.kickoff(inputs={"question": f"{PROMPT_MARK} {FAIL_MARK}"}),
                ):
                    with pytest.raises(CrewtraceError) as caught:
                        attempt()
                    errors.append(f"{caught.value}")
            assert telemetry.metrics_url is not None
            with urllib.request.urlopen(telemetry.metrics_url, timeout=10) as response:
                metrics_text = response.read().decode()
            request = urllib.request.Request(telemetry.metrics_url, headers={"Accept": "application/openmetrics-text"})
            with urllib.request.urlopen(request, timeout=10) as response:
                metrics_openmetrics = response.read().decode()
        finally:
            assert telemetry.shutdown(timeout=10.0) is True, "the receiver is up: everything is delivered"
        otlp = b"".join(r.SerializeToString() for r in [*receiver.trace_requests, *receiver.metric_requests])
        assert receiver.spans(), "spans were exported"

    stdout, stderr = capsys.readouterr()
    records = caplog.records
    return Outputs(
        otlp=otlp,
        metrics_text=metrics_text,
        metrics_openmetrics=metrics_openmetrics,
        usage_log=usage_path.read_text(encoding="utf-8"),
        log_text=caplog.text + "\n".join(f"{r.getMessage()} {r.__dict__}" for r in records),
        crewtrace_log_text="\n".join(
            f"{r.getMessage()} {json.dumps(getattr(r, 'crewtrace_usage', None), default=str)}"
            for r in records
            if r.name.startswith("crewtrace")
        ),
        stdio=stdout + stderr,
        events="\n".join(e.model_dump_json() for e in recorder.events if isinstance(e, BaseEvent)),
        errors="\n".join(errors),
    )


@pytest.mark.parametrize("capture", [False, True], ids=["capture-off", "capture-on"])
@pytest.mark.parametrize("key_source", ["env", "arg"], indirect=True)
def test_the_key_is_never_exported_and_content_only_on_opt_in(
    key: str,
    key_source: str,
    capture: bool,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outputs = run_scenario(
        key=key, key_source=key_source, capture=capture, fail=False, tmp_path=tmp_path, caplog=caplog, capsys=capsys
    )
    assert absent(key, outputs.everywhere()) == [], "the API key leaked"
    assert outputs.usage_log.count("\n") == 4, "2 crew calls, 1 call, 1 stream: one record each"
    assert "Check {question} again" in outputs.metrics_text, "an unnamed task is labelled by its template"
    if capture:
        # The markers do reach the spans when asked: the absence checks below are meaningful.
        assert PROMPT_MARK.encode() in outputs.otlp and REPLY_MARK.encode() in outputs.otlp
        assert absent(PROMPT_MARK, {k: v for k, v in outputs.telemetry().items() if k != "OTLP export requests"}) == []
    else:
        assert absent(PROMPT_MARK, outputs.telemetry()) == [], "a prompt was exported with capture off"
        assert absent(REPLY_MARK, outputs.telemetry()) == [], "a reply was exported with capture off"


@pytest.mark.parametrize("key_source", ["env", "arg"], indirect=True)
def test_a_key_echoed_in_a_provider_error_never_reaches_telemetry_events_or_errors(
    key: str,
    key_source: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outputs = run_scenario(
        key=key, key_source=key_source, capture=False, fail=True, tmp_path=tmp_path, caplog=caplog, capsys=capsys
    )
    assert "upstream refused the credentials" in outputs.errors, "the provider's message is kept, minus the key"
    where = {**outputs.telemetry(), "events on the bus": outputs.events, "exception messages": outputs.errors}
    assert absent(key, where) == [], "the API key leaked"


@pytest.mark.parametrize("key_source", ["env", "arg"], indirect=True)
def test_a_key_echoed_in_a_provider_error_never_reaches_any_log(
    key: str,
    key_source: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outputs = run_scenario(
        key=key, key_source=key_source, capture=False, fail=True, tmp_path=tmp_path, caplog=caplog, capsys=capsys
    )
    assert absent(key, outputs.everywhere()) == [], "the API key leaked"


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
@pytest.mark.parametrize("key_source", ["env", "arg"], indirect=True)
def test_a_key_echoed_by_the_provider_is_in_no_printed_exception_chain(
    key: str, key_source: str, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A traceback or ``logger.exception`` prints ``__cause__`` and ``__context__`` too: neither may hold the key."""
    with FakeOpenAIServer(responder_for(key)) as server:
        llm = LLM(
            "openai/test-model",
            stream=stream,
            base_url=server.base_url,
            api_key=key if key_source == "arg" else None,
            bus=EventBus(),
            num_retries=0,
        )
        with pytest.raises(CrewtraceError) as caught:
            llm.call(FAIL_MARK)
    error = caught.value
    printed = "".join(traceback.format_exception(error))
    assert absent(key, {"traceback": printed}) == [], "the API key leaked"
    assert "upstream refused the credentials" in printed, "the provider's message is kept, minus the key"
    assert "ProviderError" in printed, "the provider's exception is represented by its stand-in"
    logger = logging.getLogger("tests.application")
    with caplog.at_level(logging.ERROR, logger="tests.application"):
        try:
            raise error
        except CrewtraceError:
            logger.exception("the call failed")
    assert caplog.text and "Traceback" in caplog.text
    assert absent(key, {"traceback": printed, "logger.exception": caplog.text}) == [], "the API key leaked"
    assert error.__context__ is None or error.__suppress_context__
