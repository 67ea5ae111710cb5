"""A subscriber for tests: an HTTP server on 127.0.0.1 that verifies every delivery it gets
with the Standard Webhooks reference library, records it, and answers as the test asks."""

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


# One POST the receiver got: verified (or not) against its subscription's secret.
@dataclass
class Received:
    path: str
    webhook_id: str
    event: dict[str, Any] | None
    verified: bool
    at: float  # time.time() when the request's body was read
    nth: int  # 1 for the first request carrying this webhook-id at this path, 2 for a repeat...
    answered: int = 0  # the status the receiver answered with
    headers: dict[str, str] = field(default_factory=dict)  # as sent, names in lower case
    body: bytes = b""  # as sent


# What to answer: an HTTP status, after holding the request this many seconds; optionally a
# body of `body_bytes` bytes (sent in pieces) or exactly `body`, and a Location header.
@dataclass
class Answer:
    status: int = 200
    hold_seconds: float = 0.0
    body_bytes: int = 2
    location: str | None = None
    body: bytes | None = None


Behaviour = Callable[[Received], Answer]


class Receiver:
    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour: Behaviour = behaviour or (lambda _: Answer())
        self.secrets: dict[str, str] = {}
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received = receiver._record(self.path, dict(self.headers.items()), body)
                answer = receiver.behaviour(received)
                received.answered = answer.status
                if answer.hold_seconds:
                    time.sleep(answer.hold_seconds)
                try:
                    self.send_response(answer.status)
                    length = answer.body_bytes if answer.body is None else len(answer.body)
                    self.send_header("content-length", str(length))
                    if answer.location:
                        self.send_header("location", answer.location)
                    self.end_headers()
                    if answer.body is not None:
                        self.wfile.write(answer.body)
                    left = 0 if answer.body is not None else answer.body_bytes
                    while left > 0:
                        self.wfile.write(b"x" * min(left, 65536))
                        left -= 65536
                except OSError:
                    pass  # the sender stopped reading or gave up waiting

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _record(self, path: str, headers: dict[str, str], body: bytes) -> Received:
        secret = self.secrets.get(path)
        event, verified = None, False
        if secret is not None:
            try:
                event = Webhook(secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                pass
        webhook_id = {k.lower(): v for k, v in headers.items()}.get("webhook-id", "")
        with self._lock:
            nth = 1 + sum(1 for r in self.received if (r.path, r.webhook_id) == (path, webhook_id))
            received = Received(path, webhook_id, event, verified, time.time(), nth)
            received.headers = {k.lower(): v for k, v in headers.items()}
            received.body = body
            self.received.append(received)
        return received

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def ids_at(self, path: str) -> Counter[str]:
        return Counter(r.webhook_id for r in self.at(path))

    def duplicates_at(self, path: str) -> int:
        """Requests for a webhook-id the receiver had already accepted (answered 2xx)."""
        accepted: set[str] = set()
        duplicates = 0
        for received in self.at(path):
            duplicates += received.webhook_id in accepted
            if 200 <= received.answered < 300:
                accepted.add(received.webhook_id)
        return duplicates

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return condition()

    @contextmanager
    def running(self) -> Iterator["Receiver"]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


class SilentReceiver:
    """A subscriber that never answers: it accepts each connection on 127.0.0.1 and holds it
    open, reading nothing, until stopped (then the sender sees the connection close)."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._socket.settimeout(0.2)
        self.port = self._socket.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stopped = threading.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(connection)

    @contextmanager
    def running(self) -> Iterator["SilentReceiver"]:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stopped.set()
            thread.join(5)
            for connection in [*self.connections, self._socket]:
                connection.close()


def subscribe(
    client: Any, receiver: Receiver | SilentReceiver, path: str, types: list[str]
) -> dict[str, Any]:
    """Subscribe `receiver`'s `path` (an httpx or TestClient client); the receiver keeps the
    secret to verify with."""
    response = client.post("/event-subscriptions", json={"url": receiver.url(path), "types": types})
    assert response.status_code == 201, response.text
    body = response.json()
    if isinstance(receiver, Receiver):
        receiver.secrets[path] = body["secret"]
    return body


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
