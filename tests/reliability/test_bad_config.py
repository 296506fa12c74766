"""Bad configuration fails at setup, clearly, and leaves nothing behind.

Already covered in tests/telemetry/test_setup.py (not repeated): malformed OTLP endpoints
(argument and variables) and unknown protocols raise ValueError naming the value and a good
example; a port in use raises MetricsServerError and stops the SDK threads it started.

Added here: *every* failing setup leaves no thread, listening socket, bus handler or log
filter behind (including bad ``OTEL_BSP_*`` / ``OTEL_EXPORTER_OTLP_*`` values, and a usage
log that cannot be opened); those errors name what to change; a queue smaller than the
default batch is accepted (the batch is clamped); configuration that is wrong but not fatal
(bad headers, a missing certificate, an unparsable interval) never breaks a run;
setup/shutdown cycles do not accumulate anything, and leave the process
environment as they found it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.crews import two_agent_crew
from tests.support.llms import MakeLLM
from tests.support.log_filters import export_log_filters
from tests.support.otlp_decode import decode_spans
from tests.support.otlp_receiver import OTLPHttpReceiver
from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.support.synthetic import emit_call

from crewtrace.errors import MetricsServerError
from crewtrace.events import EventBus, LLMCallCompletedEvent, LLMCallStartedEvent
from crewtrace.telemetry import Telemetry, setup_telemetry


def background_threads() -> set[str]:
    """Threads a telemetry set-up could leave running (SDK workers, the /metrics server)."""
    return {
        f"{t.name}#{t.ident}"
        for t in threading.enumerate()
        if t.is_alive() and (t.name.startswith("Otel") or "serve_forever" in t.name or t.name.startswith("crewtrace"))
    }


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def used_port(sock: socket.socket) -> int:
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class Failing:
    env: dict[str, str]
    kwargs: dict[str, Any]
    error: type[BaseException]
    message: str  # the error's text must contain this ("<tmp_path>" stands for the test's tmp_path)


GRPC = {"otlp_endpoint": "http://127.0.0.1:4317", "otlp_protocol": "grpc", "prometheus_port": 0}
FAILING: dict[str, Failing] = {
    "malformed endpoint": Failing({}, {"otlp_endpoint": "localhost:4317"}, ValueError, "'localhost:4317'"),
    "unknown protocol (env)": Failing(
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
        {},
        ValueError,
        "'http/json'",
    ),
    "unresolvable /metrics host": Failing(
        {},
        {"prometheus_port": 0, "prometheus_host": "no-such-host.invalid"},
        MetricsServerError,
        "no-such-host.invalid",
    ),
    "export timeout not a number": Failing(
        {"OTEL_EXPORTER_OTLP_TIMEOUT": "ten"}, GRPC, ValueError, "OTEL_EXPORTER_OTLP_TIMEOUT='ten'"
    ),
    "negative schedule delay": Failing(
        {"OTEL_BSP_SCHEDULE_DELAY": "-5"}, GRPC, ValueError, "OTEL_BSP_SCHEDULE_DELAY='-5'"
    ),
    "queue size not a number": Failing(
        {"OTEL_BSP_MAX_QUEUE_SIZE": "lots"}, GRPC, ValueError, "OTEL_BSP_MAX_QUEUE_SIZE"
    ),
    "unknown gRPC compression": Failing(
        {"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd-ish"}, GRPC, Exception, "OTEL_EXPORTER_OTLP_COMPRESSION"
    ),
    "usage log is a directory": Failing({}, {"prometheus_port": 0, "usage_log": "<tmp_path>"}, OSError, "<tmp_path>"),
}


def _setup_failing(name: str, bus: EventBus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BaseException:
    case = FAILING[name]
    for variable, value in case.env.items():
        monkeypatch.setenv(variable, value)
    kwargs = {k: (tmp_path if v == "<tmp_path>" else v) for k, v in case.kwargs.items()}
    with pytest.raises(case.error) as caught:
        setup_telemetry("svc-bad", set_global=False, bus=bus, **kwargs)
    return caught.value


@pytest.mark.parametrize("name", list(FAILING))
def test_a_failing_setup_leaves_nothing_behind(
    name: str, bus: EventBus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads, filters = background_threads(), export_log_filters()
    opened: list[int] = []
    real_bind = socket.socket.bind

    def recording_bind(self: socket.socket, address: Any) -> None:
        real_bind(self, address)
        if isinstance(address, tuple) and address[0] in ("127.0.0.1", "0.0.0.0", "::"):
            opened.append(self.getsockname()[1])

    monkeypatch.setattr(socket.socket, "bind", recording_bind)
    _setup_failing(name, bus, tmp_path, monkeypatch)
    monkeypatch.undo()

    wait_until(lambda: background_threads() <= threads, 1.0, what=f"nothing left running (before: {threads})")
    assert export_log_filters() == filters, "the RepeatFilter stays installed on the SDK loggers"
    assert all(port_is_free(port) for port in opened), f"still bound: {opened}"
    assert not bus.has_handlers(LLMCallStartedEvent) and not bus.has_handlers(LLMCallCompletedEvent)


@pytest.mark.parametrize("name", list(FAILING))
def test_a_configuration_error_names_what_to_change(
    name: str, bus: EventBus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = _setup_failing(name, bus, tmp_path, monkeypatch)
    expected = FAILING[name].message.replace("<tmp_path>", str(tmp_path))
    assert expected in str(error), f"{type(error).__name__}: {error}"


def test_a_queue_smaller_than_the_default_batch_is_accepted(
    bus: EventBus, telemetries: Callable[..., Telemetry], monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_BSP_MAX_QUEUE_SIZE=16 alone: the SDK would refuse its default batch of 512; crewtrace clamps it.

    A full batch goes out at once, without waiting for the schedule delay (a minute here): so 16 spans
    reaching the collector in one export of 16 show the batch size is the queue's.
    """
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "16")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
    with OTLPHttpReceiver() as receiver:
        telemetry = telemetries("svc-queue", otlp_endpoint=receiver.endpoint, otlp_protocol="http/protobuf", bus=bus)
        for n in range(16):
            emit_call(bus, f"queued-{n}")
        receiver.wait_for_spans(16, timeout=30.0)
        assert [len(decode_spans(request)) for request in receiver.trace_requests] == [16]
        assert telemetry.shutdown(timeout=10.0) is True


def test_a_port_in_use_is_refused_at_setup_without_leaking_the_log_filter(bus: EventBus) -> None:
    filters = export_log_filters()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        port = used_port(taken)
        with pytest.raises(MetricsServerError, match="already in use"):
            setup_telemetry("svc-port", prometheus_port=port, set_global=False, bus=bus)
    assert export_log_filters() == filters


@pytest.mark.parametrize(
    ("variable", "value", "endpoint"),
    [
        ("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign,,=x", "http://127.0.0.1:{port}"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem", "https://127.0.0.1:{port}"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon", "http://127.0.0.1:{port}"),
    ],
)
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_non_fatal_misconfiguration_never_breaks_a_run(
    make_llm: MakeLLM,
    bus: EventBus,
    telemetries: Callable[..., Telemetry],
    monkeypatch: pytest.MonkeyPatch,
    protocol: str,
    variable: str,
    value: str,
    endpoint: str,
) -> None:
    """Accepted at setup (the SDK warns); the crew runs and shutdown stays bounded, whatever export does."""
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    try:
        telemetry = telemetries(
            "svc-odd", otlp_endpoint=endpoint.format(port=free_port()), otlp_protocol=protocol, bus=bus
        )
    except ValueError as error:  # refusing at setup is fine too, as long as it says what is wrong
        message = str(error)
        assert variable in message or value in message, message
        return
    crew = two_agent_crew(make_llm, bus, name="reliability")
    answers = [crew.kickoff(inputs={"topic": f"t{n}"}).raw for n in range(3)]
    assert all(a.startswith("Answer for:") for a in answers)
    started = time.monotonic()
    telemetry.shutdown(timeout=2.0)
    assert time.monotonic() - started < 5.0


def test_setup_and_shutdown_cycles_accumulate_nothing(make_llm: MakeLLM, bus: EventBus, tmp_path: Path) -> None:
    threads, filters = background_threads(), export_log_filters()
    handlers = bus.handler_count()
    for cycle in range(5):
        telemetry = setup_telemetry(
            "svc-cycle", prometheus_port=0, usage_log=tmp_path / "usage.jsonl", set_global=False, bus=bus
        )
        make_llm().call(f"cycle {cycle}")
        assert telemetry.shutdown(timeout=2.0) is True
    wait_until(lambda: background_threads() <= threads, 3.0, what="no thread left by the cycles")
    assert export_log_filters() == filters
    assert bus.handler_count() == handlers
    assert (tmp_path / "usage.jsonl").read_text().count("\n") == 5


def test_setup_and_shutdown_leave_the_process_environment_unchanged(bus: EventBus) -> None:
    before = dict(os.environ)
    setup_telemetry("svc-env", set_global=False, bus=bus).shutdown(timeout=2.0)
    added = {k: v for k, v in os.environ.items() if before.get(k) != v}
    assert added == {}, f"left in os.environ: {added}"
