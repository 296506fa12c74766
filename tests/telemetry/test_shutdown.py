"""``Telemetry.shutdown``: its timeout is checked before anything is torn down, and a shutdown that
did not finish can be called again and still exports what it holds.

Real OTLP/HTTP exporters against a local endpoint; the LLM events are emitted straight onto a
private bus (the bridge sees only events).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.support.otlp_receiver import OTLPHttpReceiver
from tests.support.synthetic import emit_call

from crewtrace.errors import ConfigurationError
from crewtrace.events import EventBus, LLMCallStartedEvent
from crewtrace.telemetry import Telemetry


class GatedCollector:
    """An OTLP/HTTP endpoint that holds every export until :meth:`release`, then accepts it."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.released.wait(30)
                owner.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="test-gated-collector", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def gated() -> Iterator[GatedCollector]:
    collector = GatedCollector()
    yield collector
    collector.close()


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (None, ConfigurationError),
        ("5", ConfigurationError),
        (True, ConfigurationError),
        (-1, ConfigurationError),
        (math.nan, ConfigurationError),
    ],
)
def test_a_bad_timeout_is_refused_before_anything_is_torn_down(
    telemetries: Callable[..., Telemetry], bus: EventBus, timeout: object, error: type[Exception]
) -> None:
    with OTLPHttpReceiver() as receiver:
        telemetry = telemetries(otlp_endpoint=receiver.endpoint, otlp_protocol="http/protobuf", bus=bus)
        with pytest.raises(error, match="timeout"):
            telemetry.shutdown(timeout=timeout)  # type: ignore[arg-type]
        assert bus.has_handlers(LLMCallStartedEvent), "the bridge still listens"
        emit_call(bus, "c-1", chunks=2)
        assert telemetry.shutdown() is True
        assert [s.name for s in receiver.spans()] == ["chat openai/test-model"], "the retry exported the span"


def test_a_shutdown_that_ran_out_of_time_can_be_called_again_and_exports_what_it_holds(
    telemetries: Callable[..., Telemetry], bus: EventBus, gated: GatedCollector
) -> None:
    telemetry = telemetries(otlp_endpoint=gated.endpoint, otlp_protocol="http/protobuf", bus=bus)
    emit_call(bus, "c-1", chunks=2)
    assert telemetry.shutdown(timeout=0.3) is False, "the collector holds the export"
    assert not bus.has_handlers(LLMCallStartedEvent), "listening stopped at the first call"
    gated.release()
    assert telemetry.shutdown(timeout=10.0) is True, "the second call waited for the exports still running"
    assert "/v1/traces" in gated.paths and "/v1/metrics" in gated.paths
    assert telemetry.shutdown(timeout=0.0) is True, "once finished, the outcome is kept"
