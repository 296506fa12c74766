"""An OpenAI-compatible chat-completions server on 127.0.0.1 for tests and benchmarks.

litellm talks to it over real HTTP, so the whole client stack (httpx/aiohttp, the
OpenAI SDK's SSE parser, litellm's stream wrapper) is exercised.  Replies are
scripted per request (``responder``/``queue``) and can inject faults.  It also
answers ``/v1/embeddings`` (deterministic vectors from each text), so embedders
of memory and knowledge stores can be pointed at it.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import select
import socket
import struct
import sys
import termios
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import chain, islice
from types import TracebackType
from typing import Any

from .openai_replies import (
    EMBEDDING_DIMENSIONS,
    ChunkEncoder,
    Fault,
    Reply,
    Responder,
    ToolCallReply,
    chop,
    default_responder,
    embedding,
    framed,
    last_user_text,
    numbered_chunks,
    resolve_usage,
    usage_json,
)

__all__ = [
    "FakeOpenAIServer",
    "Fault",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ToolCallReply",
    "chop",
    "default_responder",
    "embedding",
    "last_user_text",
    "numbered_chunks",
]

_BATCH_BYTES = 64 * 1024
_STALL_SECONDS = 30.0
_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_EMBEDDING_PATHS = frozenset({"/v1/embeddings", "/embeddings"})
# The OpenAI SDK retries 429/5xx itself; this keeps its backoff to 10 ms instead of ~0.5-1 s.
_RETRY_FAST = {"retry-after-ms": "10"}
_MID_STREAM = frozenset({Fault.RESET, Fault.MALFORMED, Fault.STALL, Fault.ERROR_EVENT})
"""Faults that cut a reply after ``fault_after`` chunks."""


@dataclass(frozen=True)
class RecordedRequest:
    """A request as received: parsed JSON body and headers (lower-cased names)."""

    body: dict[str, Any]
    headers: dict[str, str]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024  # benchmarks open many connections at once

    def __init__(self, fake: FakeOpenAIServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (timeouts, fault tests) are expected, not errors."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging (it would dominate benchmark cost)."""

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0].rstrip("/")
        if path in _EMBEDDING_PATHS:
            self._embed(raw)
            return
        if path not in _PATHS:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        try:
            body = json.loads(raw)
        except ValueError as exc:
            self._send_json(400, {"error": {"message": f"bad JSON: {exc}", "type": "invalid_request_error"}})
            return
        fake = self.server.fake
        fake._record(RecordedRequest(body, {k.lower(): v for k, v in self.headers.items()}))
        try:
            reply = fake._next_reply(body)
        except Exception as exc:  # surface responder bugs to the test as a 500
            self._send_json(500, {"error": {"message": f"responder failed: {exc!r}", "type": "server_error"}})
            return
        try:
            self._answer(body, reply)
        except OSError:  # the client hung up
            self.close_connection = True

    def _embed(self, raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            self._send_json(400, {"error": {"message": f"bad JSON: {exc}", "type": "invalid_request_error"}})
            return
        self.server.fake._record(RecordedRequest(body, {k.lower(): v for k, v in self.headers.items()}), embedding=True)
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        dimensions = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
        data = [
            {"object": "embedding", "index": i, "embedding": embedding(text, dimensions)}
            for i, text in enumerate(texts)
        ]
        tokens = sum(len(str(text).split()) for text in texts)
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or "fake-embedding",
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _answer(self, body: dict[str, Any], reply: Reply) -> None:
        if reply.fault is Fault.STATUS_429:
            error = {
                "message": "Rate limit reached (fake)",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
            self._send_json(429, {"error": error}, _RETRY_FAST)
        elif reply.fault is Fault.STATUS_500:
            error = {"message": "The server had an error (fake)", "type": "server_error", "param": None, "code": None}
            self._send_json(500, {"error": error}, _RETRY_FAST)
        elif body.get("stream"):
            self._stream(body, reply)
        else:
            self._complete(body, reply)

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _complete(self, body: dict[str, Any], reply: Reply) -> None:
        if reply.fault in _MID_STREAM:
            self._send_headers("application/json")
            self._fault(reply.fault)
            return
        text = "" if reply.fault is Fault.EMPTY else "".join(reply.chunks)
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not reply.tool_calls else None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in reply.tool_calls
            ]
        payload: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or body.get("model") or "fake-model",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        }
        usage = resolve_usage(reply, body)
        if usage is not None:
            payload["usage"] = usage_json(usage)
        self._send_json(200, payload)

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        enc = ChunkEncoder(reply.model or body.get("model") or "fake-model")
        self._send_headers("text/event-stream")
        events: Iterator[bytes] = iter(())
        if reply.fault is not Fault.EMPTY:
            role = enc.delta({"role": "assistant", "content": ""})
            thinking = (enc.delta({"reasoning_content": text}) for text in reply.reasoning)
            content = (enc.content(text) for text in reply.chunks)
            events = chain((role,), thinking, content, enc.tool_calls(reply.tool_calls))
        if reply.fault in _MID_STREAM:
            self._write_events(islice(events, 1 + reply.fault_after), reply.delay)
            self._fault(reply.fault)
            return
        tail = [enc.delta({}, reply.finish_reason)]
        usage = resolve_usage(reply, body)
        if usage is not None and (body.get("stream_options") or {}).get("include_usage"):
            tail.append(enc.event(choices=[], usage=usage_json(usage)))
        tail.append(b"data: [DONE]\n\n")
        events = chain(events, tail)
        if reply.framing != "lf":
            events = (framed(event, reply.framing, number) for number, event in enumerate(events))
        self._write_events(events, reply.delay)
        self.wfile.write(b"0\r\n\r\n")

    def _send_headers(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_frame(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _write_events(self, events: Iterable[bytes], delay: float) -> None:
        """One write per event when paced, else ~64 KiB batches (10^5 chunks stay cheap)."""
        if delay > 0:
            for i, event in enumerate(events):
                if i:
                    time.sleep(delay)
                self._write_frame(event)
            return
        batch: list[bytes] = []
        size = 0
        for event in events:
            batch.append(event)
            size += len(event)
            if size >= _BATCH_BYTES:
                self._write_frame(b"".join(batch))
                batch, size = [], 0
        if batch:
            self._write_frame(b"".join(batch))

    def _fault(self, fault: Fault) -> None:
        self.close_connection = True
        if fault is Fault.MALFORMED:
            self._write_frame(b"data: {not json\n\n")
            self.wfile.write(b"0\r\n\r\n")
        elif fault is Fault.ERROR_EVENT:
            self._write_frame(
                b'data: {"error": {"message": "The model is overloaded (fake)", "type": "server_error"}}\n\n'
            )
            self.wfile.write(b"0\r\n\r\n")
        elif fault is Fault.STALL:
            self._stall()
        elif fault is Fault.RESET:
            self._wait_acked()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _stall(self) -> None:
        """Send nothing more until the client hangs up (a real server notices), the stall ends or the server stops."""
        deadline = time.monotonic() + _STALL_SECONDS
        stopping = self.server.fake._stopping
        while not stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                return
            if readable:  # the client sent something: not a hang-up
                stopping.wait(0.05)

    def _wait_acked(self) -> None:
        """Wait until the peer has ACKed all we sent: an RST discards unsent data, which
        would make "reset after N chunks" depend on how fast the client reads."""
        unsent = array.array("i", [0])
        deadline = time.monotonic() + _STALL_SECONDS
        while time.monotonic() < deadline:
            fcntl.ioctl(self.connection.fileno(), termios.TIOCOUTQ, unsent)
            if unsent[0] == 0 or self.server.fake._stopping.wait(0.005):
                return


class FakeOpenAIServer:
    """Threaded OpenAI chat-completions endpoint; use as a context manager."""

    def __init__(self, responder: Responder = default_responder) -> None:
        self.responder: Responder = responder
        self._replies: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._embedding_requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeOpenAIServer:
        """Bind a random free port and serve in a daemon thread."""
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open connections so stalled clients fail fast."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        port: int = self._httpd.server_address[1]
        return port

    @property
    def base_url(self) -> str:
        """What to pass as litellm's `api_base`."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        """Snapshot of the embedding requests received so far (not in :attr:`requests`)."""
        with self._lock:
            return list(self._embedding_requests)

    @property
    def open_connections(self) -> int:
        """Client connections open on the server now: a stream whose client let go closes its own."""
        with self._lock:
            return len(self._connections)

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests with these replies (FIFO) before using `responder`."""
        with self._lock:
            self._replies.extend(replies)

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            queued = self._replies.popleft() if self._replies else None
        return queued if queued is not None else self.responder(body)

    def _record(self, request: RecordedRequest, *, embedding: bool = False) -> None:
        with self._lock:
            (self._embedding_requests if embedding else self._requests).append(request)

    def _track(self, conn: socket.socket, active: bool) -> None:
        with self._lock:
            if active:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)
