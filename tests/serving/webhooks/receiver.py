"""A local webhook receiver that verifies every request with the `standardwebhooks` package."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    msg_id: str
    type: str
    data: dict
    headers: dict[str, str]


@dataclass
class Receiver:
    secret: str
    url: str = ""
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    # (number of the request, 1-based) -> status to answer; default 204
    answer: Callable[[int, Received], int] = lambda n, r: 204
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    def ids(self) -> list[str]:
        with self.lock:
            return [r.msg_id for r in self.received]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: predicate(self.received), timeout)


@contextmanager
def receiving(secret: str, answer: Callable[[int, Received], int] | None = None) -> Iterator[Receiver]:
    receiver = Receiver(secret)
    if answer is not None:
        receiver.answer = answer
    verifier = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                payload = verifier.verify(body, headers)
            except WebhookVerificationError as exc:
                with receiver.lock:
                    receiver.rejected.append(str(exc))
                self.send_response(400)
                self.end_headers()
                return
            assert json.loads(body) == payload
            item = Received(headers["webhook-id"], payload["type"], payload["data"], headers)
            with receiver.arrived:
                receiver.received.append(item)
                n = len(receiver.received)
                receiver.arrived.notify_all()
            status = receiver.answer(n, item)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
