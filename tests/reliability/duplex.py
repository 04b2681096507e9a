"""A full-duplex NDJSON client for /v1/stream: it writes the request body while it reads the answer
lines, as the route is meant to be used (common HTTP clients send the whole body first, which would
stall once both socket buffers fill). Used by the kill -9 test and bench/reliability.py.

Usage:
    answers = stream_lines("127.0.0.1", 8000, lines, headers={"Authorization": "Bearer ..."},
                           on_answer=lambda n, answer: n == 1000)   # True: stop reading there
"""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Callable, Mapping, Sequence

import h11


class StreamBroken(Exception):
    """The connection ended before the answer was complete (e.g. the server was killed)."""

    def __init__(self, answers: list[dict]) -> None:
        super().__init__(f"the stream ended after {len(answers)} answer line(s)")
        self.answers = answers


def stream_lines(
    host: str,
    port: int,
    lines: Sequence[bytes],
    *,
    target: str = "/v1/stream",
    headers: Mapping[str, str] | None = None,
    on_answer: Callable[[int, dict], bool] | None = None,
    timeout: float = 60.0,
) -> tuple[int, list[dict]]:
    """(status, answer lines). Raises StreamBroken when the connection drops mid-answer."""
    body = b"".join(line + b"\n" for line in lines)
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method="POST",
        target=target,
        headers=[
            ("Host", f"{host}:{port}"),
            ("Content-Type", "application/x-ndjson"),
            ("Content-Length", str(len(body))),
            *(headers or {}).items(),
        ],
    )
    outgoing = memoryview(conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
    answers: list[dict] = []
    status = 0
    partial = b""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setblocking(False)
        while True:
            readable, writable, _ = select.select([sock], [sock] if outgoing else [], [], timeout)
            if not readable and not writable:
                raise TimeoutError(f"no progress for {timeout} s after {len(answers)} answer line(s)")
            if writable:
                try:
                    sent = sock.send(outgoing[:65536])
                except (BrokenPipeError, ConnectionResetError):
                    outgoing = memoryview(b"")
                else:
                    outgoing = outgoing[sent:]
            if not readable:
                continue
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                raise StreamBroken(answers)
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    break
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    partial += bytes(event.data)
                    *complete, partial = partial.split(b"\n")
                    for raw in complete:
                        answers.append(json.loads(raw))
                        if on_answer is not None and on_answer(len(answers), answers[-1]):
                            return status, answers
                elif isinstance(event, h11.EndOfMessage):
                    return status, answers
