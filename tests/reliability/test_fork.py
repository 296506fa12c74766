"""Issue 10.11: a forked child (gunicorn --preload, Celery prefork) keeps events flowing and exports its telemetry."""

from __future__ import annotations

import json
import os
import sys
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
