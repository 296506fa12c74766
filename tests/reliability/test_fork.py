"""A forked child (gunicorn --preload, Celery prefork) keeps events flowing and exports its telemetry."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import urllib.request
from collections.abc import Callable

import pytest
from tests.support.openai_server import FakeOpenAIServer, Reply
from tests.support.otlp_receiver import OTLPHttpReceiver
from tests.support.polling import wait_until

from crewtrace import LLM
from crewtrace.events import EventBus, LLMCallCompletedEvent
from crewtrace.telemetry import setup_telemetry

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")


def test_a_forked_child_delivers_to_coroutine_handlers_and_exports_its_spans(
    server: FakeOpenAIServer, make_llm: Callable[..., LLM], bus: EventBus
) -> None:
    seen: list[str] = []

    async def on_completed(source: object, event: LLMCallCompletedEvent) -> None:
        seen.append(event.call_id)

    bus.register_handler(LLMCallCompletedEvent, on_completed)
    server.responder = lambda body: Reply(chunks=["from", " the", " child"])
    with OTLPHttpReceiver() as receiver:
        telemetry = setup_telemetry(
            "svc-fork", otlp_endpoint=receiver.endpoint, otlp_protocol="http/protobuf", set_global=False, bus=bus
        )
        try:
            make_llm().call("warm the parent up")  # the bus's loop thread and the exporters' threads now exist
            assert bus.flush(timeout=10) and len(seen) == 1
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: report through the pipe, never return into pytest
                status = 1
                try:
                    os.close(read_end)
                    seen.clear()
                    text = make_llm().call("hello from the child")
                    flushed = bus.flush(timeout=10)
                    exported = telemetry.shutdown(timeout=10)
                    report = {"text": text, "flushed": flushed, "handled": len(seen), "exported": exported}
                    os.write(write_end, json.dumps(report).encode())
                    status = 0
                except BaseException as exc:  # anything: tell the parent what happened
                    os.write(write_end, json.dumps({"error": repr(exc)}).encode())
                finally:
                    sys.stdout.flush()
                    os._exit(status)
            os.close(write_end)
            with os.fdopen(read_end) as pipe:
                report = json.loads(pipe.read() or "{}")
            _, status = os.waitpid(pid, 0)
            assert status == 0 and report == {
                "text": "from the child",
                "flushed": True,
                "handled": 1,
                "exported": True,
            }, report
            child_spans = wait_until(
                lambda: [s for s in receiver.spans() if s.name == "chat test-model"],
                what="the child's chat span at the receiver",
            )
            assert child_spans
        finally:
            assert telemetry.shutdown(timeout=10) is True


def test_a_process_that_forks_while_serving_metrics_keeps_the_port_to_itself_and_says_so_once(bus: EventBus) -> None:
    """gunicorn --preload or a fork pool: the children must not hold the port, nor answer on it."""
    logger = logging.getLogger("crewtrace.telemetry")
    kept = Kept()
    logger.addHandler(kept)  # on the logger itself: whatever the process made of its propagation
    telemetry = setup_telemetry("svc-fork-port", prometheus_port=0, set_global=False, bus=bus)
    url, port = telemetry.metrics_url, telemetry.metrics_server.port if telemetry.metrics_server else 0
    children: list[tuple[int, int]] = []
    try:
        for _ in range(2):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child waits, holding whatever it inherited, until the parent lets it go
                os.close(write_end)
                os.read(read_end, 1)
                os._exit(0)
            os.close(read_end)
            children.append((pid, write_end))
        warnings = [message for message in kept.messages if "forked while serving" in message]
        assert len(warnings) == 1 and url is not None and url in warnings[0], warnings
        assert "docs/deployment.md" in warnings[0]
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200, "the parent still serves"
    finally:
        assert telemetry.shutdown(timeout=10) is True
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as again:
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", port))  # EADDRINUSE if a child still held the listening socket
            again.listen()
    finally:
        logger.removeHandler(kept)
        for pid, write_end in children:
            os.write(write_end, b"x")
            os.close(write_end)
            os.waitpid(pid, 0)


class Kept(logging.Handler):
    """Keeps the messages of the records it is given."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
