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

import asyncio
import json
import logging
import socket
import traceback
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.support.openai_server import FakeOpenAIServer, Reply, last_user_text
from tests.support.otlp_receiver import OTLPHttpReceiver
from tests.support.recording import Recorder

from crewtrace import LLM, Agent, Crew, CrewtraceError, Task
from crewtrace.events import BaseEvent, EventBus, LLMCallFailedEvent
from crewtrace.telemetry import OTelBridge, setup_telemetry

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


def keyed_llm(server: FakeOpenAIServer, key: str, key_source: str, bus: EventBus, **kwargs: Any) -> LLM:
    """An LLM on the local server with ``key`` given as an argument (``arg``) or left to the environment."""
    kwargs.setdefault("stream", True)
    api_key = key if key_source == "arg" else None
    return LLM("openai/test-model", base_url=server.base_url, api_key=api_key, bus=bus, num_retries=0, **kwargs)


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
            llm = keyed_llm(server, key, key_source, bus)
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
            assert "".join(llm.iter_text(f"{PROMPT_MARK} streamed")).startswith(REPLY_MARK)
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
        llm = keyed_llm(server, key, key_source, EventBus(), stream=stream)
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


# -- nothing reachable from a raised error holds the key, frame locals included -----------------------


def shown(value: object, depth: int = 0) -> Iterator[str]:
    """What a locals printer shows of ``value``: containers item by item (as Sentry does), the rest by repr."""
    if depth > 4:
        return
    if isinstance(value, dict):
        for item_key, item in value.items():
            yield repr(item_key)
            yield from shown(item, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from shown(item, depth + 1)
    else:
        yield repr(value)


def chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception reachable from it through ``__cause__`` and ``__context__``."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__]


def frame_locals(error: BaseException) -> Iterator[tuple[str, str]]:
    """(frame and name, text shown) of every local of every traceback frame reachable from ``error``."""
    for exc in chain(error):
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            for name, value in tb.tb_frame.f_locals.items():
                for text in shown(value):
                    yield f"{type(exc).__name__} / {code.co_filename}:{code.co_name} / {name}", text
            tb = tb.tb_next


def raised(attempt: Callable[[], object]) -> BaseException:
    """The crewtrace error ``attempt`` raised (caught here, so the traceback starts in this frame)."""
    try:
        attempt()
    except CrewtraceError as error:
        return error
    raise AssertionError("the call did not fail")


def failing_ways(llm: LLM, bus: EventBus) -> dict[str, Callable[[], object]]:
    """Every way an application meets a failed call: direct calls, streams, crews."""
    agent = Agent(role="Keeper", goal="Guard.", backstory="Discreet.", llm=llm)

    def crew(stream: bool = False) -> Crew:
        task = Task(name="answer", description=f"Answer {FAIL_MARK}", expected_output="Short.", agent=agent)
        return Crew(name="locals", agents=[agent], tasks=[task], bus=bus, stream=stream)

    return {
        "call": lambda: llm.call(FAIL_MARK),
        "invoke without streaming": lambda: llm.invoke(FAIL_MARK, stream=False),
        "acall": lambda: asyncio.run(llm.acall(FAIL_MARK)),
        "iter_text": lambda: list(llm.iter_text(FAIL_MARK)),
        "kickoff": lambda: crew().kickoff(),
        "Crew(stream=True)": lambda: list(crew(stream=True).kickoff()),
    }


@pytest.mark.parametrize("key_source", ["env", "arg"], indirect=True)
def test_no_frame_local_reachable_from_a_raised_error_holds_the_key(key: str, key_source: str) -> None:
    """What ``capture_locals``, loguru's diagnose mode and Sentry print: every local of every frame."""
    bus = EventBus()
    with FakeOpenAIServer(responder_for(key)) as server:
        llm = keyed_llm(server, key, key_source, bus)
        for way, attempt in failing_ways(llm, bus).items():
            error = raised(attempt)
            leaks = [where for where, text in frame_locals(error) if key in text]
            assert leaks == [], f"{way}: the key is in these frames' locals"
            printed = "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())
            assert "upstream refused the credentials" in printed, way
            assert key not in printed, f"{way}: the key is in the traceback printed with its locals"


# -- credentials in a base URL ----------------------------------------------------------------------

URL_USER = "urluser-quokka"
URL_PASSWORD = "urlpass-Wombat-7x"  # no key shape: only knowing it, or the URL's shape, can redact it
URL_QUERY_SECRET = "urlquery-Numbat-3y"


def refused_url() -> str:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{port}/v1?api-key={URL_QUERY_SECRET}"


def everything_recorded(spans: Sequence[ReadableSpan], recorder: Recorder, caplog: pytest.LogCaptureFixture) -> str:
    parts = [e.model_dump_json() for e in recorder.events]
    for span in spans:
        parts += [span.name, span.status.description or "", repr(dict(span.attributes or {}))]
        parts += [f"{e.name} {dict(e.attributes or {})}" for e in span.events]
    parts += [f"{r.getMessage()} {r.__dict__}" for r in caplog.records]
    return "\n".join(parts)


@dataclass
class Captured:
    """A bus, what reached it, and the spans of a bridge on it with capture on (the span status is the message)."""

    bus: EventBus
    recorder: Recorder
    exporter: InMemorySpanExporter
    bridge: OTelBridge

    def chat_span(self) -> ReadableSpan:
        self.bridge.close()
        (chat,) = self.exporter.get_finished_spans()
        return chat


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[Captured]:
    caplog.set_level(logging.DEBUG)
    bus = EventBus()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bridge = OTelBridge(provider, capture_content=True, bus=bus)
    yield Captured(bus, Recorder(bus), exporter, bridge)
    bridge.close()
    provider.shutdown()


def test_credentials_in_a_base_url_are_in_nothing_crewtrace_prints_or_records(
    captured: Captured,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    url = refused_url()
    llm = LLM("openai/local", stream=True, base_url=url, timeout=5, bus=captured.bus, num_retries=0, max_retries=0)
    error = raised(lambda: llm.call("hi"))
    message = str(error)
    assert "(tried http://***@127.0.0.1:" in message and "/v1?api-key=***)" in message, message
    (failed,) = captured.recorder.of(LLMCallFailedEvent)
    chat = captured.chat_span()
    assert "tried http://***@127.0.0.1:" in (chat.status.description or ""), "capture on: the status is the message"
    assert chat.attributes is not None and chat.attributes["server.address"] == "127.0.0.1"
    stdout, stderr = capsys.readouterr()
    outputs = {
        "str(error)": message,
        "printed traceback with locals": "".join(
            traceback.TracebackException.from_exception(error, capture_locals=True).format()
        ),
        "frame locals": "\n".join(text for _, text in frame_locals(error)),
        "LLMCallFailedEvent": failed.model_dump_json(),
        "events, spans and log records (DEBUG)": everything_recorded([chat], captured.recorder, caplog),
        "stdout/stderr": stdout + stderr,
    }
    for secret in (URL_USER, URL_PASSWORD, URL_QUERY_SECRET):
        assert absent(secret, outputs) == [], f"{secret} leaked"


def test_a_call_through_a_base_url_with_credentials_records_only_its_host(
    captured: Captured, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeOpenAIServer(responder_for(SHAPED_KEY)) as server:
        port = server.port
        url = f"http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{port}/v1"
        llm = LLM("openai/test-model", stream=True, base_url=url, api_key=SHAPED_KEY, bus=captured.bus, num_retries=0)
        assert llm.call("hello").startswith(REPLY_MARK)
    chat = captured.chat_span()
    assert chat.attributes is not None
    assert (chat.attributes["server.address"], chat.attributes["server.port"]) == ("127.0.0.1", port)
    recorded = {"events, spans and log records (DEBUG)": everything_recorded([chat], captured.recorder, caplog)}
    assert absent(URL_USER, recorded) == [] and absent(URL_PASSWORD, recorded) == []


def test_a_secret_passed_in_the_llms_settings_is_redacted_too() -> None:
    """A key passed on to litellm under another name (a header, a cloud credential) is known by value too."""
    header_key = f"zz{uuid.uuid4().hex}"  # no key shape, new to this process: only registering it can redact it
    bus = EventBus()
    recorder = Recorder(bus)
    with FakeOpenAIServer(responder_for(header_key)) as server:
        llm = keyed_llm(server, SHAPED_KEY, "arg", bus, extra_headers={"api-key": header_key})
        error = raised(lambda: llm.call(FAIL_MARK))
    (failed,) = recorder.of(LLMCallFailedEvent)
    outputs = {"str(error)": str(error), "traceback": "".join(traceback.format_exception(error))}
    outputs["LLMCallFailedEvent"] = failed.model_dump_json()
    assert "upstream refused the credentials" in outputs["str(error)"]
    assert absent(header_key, outputs) == [], "the header's key leaked"
