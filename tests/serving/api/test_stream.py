"""POST /v1/stream: order, one line out per line in, error lines, and output before the input ends."""

from __future__ import annotations

import asyncio
import json

from fastapi.testclient import TestClient

from serving.api.app import create_app
from tests.serving.conftest import FakePredictor, bearer, wait_ready


def ndjson(*rows: object) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def stream(client, keys, body: bytes, **params):
    response = client.post(
        "/v1/stream",
        content=body,
        params=params,
        headers={**bearer(keys.score), "Content-Type": "application/x-ndjson"},
    )
    return response, [without_errors_list(json.loads(line)) for line in response.text.splitlines()]


def without_errors_list(line: dict) -> dict:
    """Error lines carry the API's error shape; the tests below compare status and detail."""
    if "error" in line:
        errors = line["error"].pop("errors")
        assert errors and all({"loc", "field", "msg", "type"} <= set(e) for e in errors)
    return line


def test_lines_come_back_in_order_with_error_lines(client, keys):
    body = ndjson(
        {"id": "1", "text": "welcome to the group!"},
        b'{"id": "2", "text": ',
        {"id": "3", "text": ""},
        {"id": "4", "text": "where are you from?", "extra": 1},
        b"",
        {"id": "6", "text": "go back to where you came from"},
        {"id": "7", "text": "ok"},
        b"[1, 2]",
    )
    response, lines = stream(client, keys, body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert lines == [
        {
            "line": 1,
            "id": "1",
            "scores": {"welcoming": 0.9, "curious": 0.2, "hostile": 0.05},
            "tags": ["welcoming"],
            "lang": "en",
            "truncated": False,
        },
        {
            "line": 2,
            "id": None,
            "error": {"status": 400, "detail": "line 2: invalid JSON at character 20: Expecting value"},
        },
        {
            "line": 3,
            "id": "3",
            "error": {"status": 422, "detail": "line 3: text: String should have at least 1 character"},
        },
        {
            "line": 4,
            "id": "4",
            "error": {"status": 422, "detail": "line 4: extra: Extra inputs are not permitted"},
        },
        {
            "line": 6,
            "id": "6",
            "scores": {"welcoming": 0.1, "curious": 0.2, "hostile": 0.95},
            "tags": ["hostile"],
            "lang": "en",
            "truncated": False,
        },
        {
            "line": 7,
            "id": "7",
            "scores": {"welcoming": 0.1, "curious": 0.2, "hostile": 0.05},
            "tags": [],
            "lang": "und",
            "truncated": False,
        },
        {
            "line": 8,
            "id": None,
            "error": {
                "status": 422,
                "detail": "line 8: expected a JSON object (one comment per line), got list",
            },
        },
    ]


def test_many_lines_keep_their_order(client, keys):
    rows = [{"id": str(i), "text": ("welcome " if i % 3 == 0 else "hello ") * (1 + i % 7)} for i in range(300)]
    response, lines = stream(client, keys, ndjson(*rows), store="false")
    assert [line["id"] for line in lines] == [str(i) for i in range(300)]
    assert [line["line"] for line in lines] == list(range(1, 301))
    assert all(("welcoming" in line["tags"]) == (i % 3 == 0) for i, line in enumerate(lines))


def test_last_line_without_newline_and_crlf(client, keys):
    response, lines = stream(client, keys, b'{"id": "a", "text": "hi"}\r\n{"id": "b", "text": "welcome"}')
    assert [(line["line"], line["id"], line["tags"]) for line in lines] == [
        (1, "a", []),
        (2, "b", ["welcoming"]),
    ]


def test_over_long_line_is_an_error_line(make_client, settings, predictor, keys):
    client = make_client(settings.model_copy(update={"max_line_bytes": 1024}), predictor)
    body = ndjson({"id": "a", "text": "x" * 2000}, {"id": "b", "text": "hi"})
    response, lines = stream(client, keys, body)
    assert lines[0] == {
        "line": 1,
        "id": None,
        "error": {"status": 413, "detail": "line 1: at most 1024 bytes per line"},
    }
    assert lines[1]["id"] == "b"


def test_stream_stores_unless_told_not_to(client, keys):
    stream(client, keys, ndjson({"id": "s1", "text": "welcome", "thread_id": "t"}))
    stream(client, keys, ndjson({"id": "s2", "text": "welcome", "thread_id": "t"}), store="false")
    thread = client.get("/v1/threads/t", headers=bearer(keys.read)).json()
    assert [c["id"] for c in thread["data"]] == ["s1"]


def test_stream_needs_the_score_scope(client, keys):
    response = client.post("/v1/stream", content=b"{}\n", headers={"Content-Type": "application/x-ndjson"})
    assert (response.status_code, response.json()["detail"]) == (
        401,
        "missing API key: send 'Authorization: Bearer <key>'",
    )
    response = client.post("/v1/stream", content=b"{}\n", headers=bearer(keys.read))
    assert (response.status_code, response.json()["detail"]) == (403, "this API key lacks the 'score' scope")


def test_output_starts_before_the_request_ends(settings, keys):
    """Drive the ASGI app directly: the second input line is only sent once the first answer is out."""
    app = create_app(settings, predictor=FakePredictor())
    with TestClient(app) as client:  # runs the lifespan (store, model, batcher)
        wait_ready(client)

        async def exchange() -> list[dict]:
            first_answer = asyncio.Event()
            sent: list[dict] = []
            chunks = [b'{"id": "1", "text": "welcome"}\n', b'{"id": "2", "text": "go back"}\n']

            async def receive() -> dict:
                if chunks:
                    chunk = chunks.pop(0)
                    if not chunks:  # the last chunk waits for the first answer
                        await asyncio.wait_for(first_answer.wait(), 5)
                    return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
                await asyncio.sleep(3600)
                return {"type": "http.disconnect"}

            async def send(message: dict) -> None:
                sent.append(message)
                if message["type"] == "http.response.body" and message.get("body"):
                    first_answer.set()

            scope = {
                "type": "http",
                "asgi": {"version": "3.0", "spec_version": "2.3"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": "/v1/stream",
                "raw_path": b"/v1/stream",
                "root_path": "",
                "query_string": b"store=false",
                "server": ("test", 80),
                "client": ("test", 1),
                "headers": [
                    (b"authorization", f"Bearer {keys.score}".encode()),
                    (b"content-type", b"application/x-ndjson"),
                ],
            }
            await asyncio.wait_for(app(scope, receive, send), 10)
            return sent

        sent = client.portal.call(exchange)
    assert sent[0]["status"] == 200
    bodies = [json.loads(m["body"]) for m in sent[1:] if m.get("body")]
    assert [(b["line"], b["tags"]) for b in bodies] == [(1, ["welcoming"]), (2, ["hostile"])]
