"""The reproducers of issue 12, kept as regression tests: each answered 5xx or aborted a stream."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest

from serving.api.app import create_app
from tests.live_server import serve_in_thread
from tests.serving.api.test_score import stored_rows
from tests.serving.conftest import bearer

HUGE = 2**63


def assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = json.loads(response.content)  # the raw bytes are valid JSON, whatever the client sent
    assert set(body) == {"detail", "errors"} and isinstance(body["detail"], str)
    assert body["errors"] and all({"loc", "field", "msg", "type"} <= set(e) for e in body["errors"])
    return body


# --- integers beyond 64 bits ---


@pytest.mark.parametrize(
    "path", ["/v1/flags?offset={n}", "/v1/threads/t1?offset={n}", "/v1/threads/t1?limit={n}", "/v1/flags?limit={n}"]
)
def test_huge_integers_in_queries_are_422(client, keys, path):
    body = assert_error_shape(client.get(path.format(n=HUGE), headers=bearer(keys.read)), 422)
    assert body["errors"][0]["loc"][0] == "query"


def test_huge_key_id_is_422(client, keys):
    body = assert_error_shape(client.delete(f"/v1/keys/{HUGE}", headers=bearer(keys.admin)), 422)
    assert body["detail"].startswith("path parameter key_id: Input should be less than or equal to 2147483647")


# --- strings that cannot be encoded ---


def raw_score(client, keys, text: str) -> object:
    return client.post(
        "/v1/score", content=text.encode(), headers={**bearer(keys.score), "Content-Type": "application/json"}
    )


@pytest.mark.parametrize("field", ["id", "text", "thread_id", "community_id", "author_id", "parent_id"])
def test_lone_surrogates_are_422_and_the_answer_renders(client, keys, field):
    comment = {"id": "a", "text": "hi", field: "x\\ud800"}
    raw = json.dumps({"comments": [comment]}).replace("\\\\ud800", "\\ud800")
    assert "\\ud800" in raw
    body = assert_error_shape(raw_score(client, keys, raw), 422)
    assert body["errors"][0]["loc"] == ["body", "comments", 0, field]


def test_a_surrogate_in_a_field_name_renders(client, keys):
    response = raw_score(client, keys, '{"comments": [{"id": "a", "text": "hi", "\\udc80": 1}]}')
    assert_error_shape(response, 422)


@pytest.mark.parametrize("bad", ["a\x00b", "tab\there", "line\nbreak", "\x7f", ".", ".."])
def test_ids_outside_the_alphabet_are_422(client, keys, bad):
    response = client.post("/v1/score", json={"comments": [{"id": bad, "text": "hi"}]}, headers=bearer(keys.score))
    assert_error_shape(response, 422)


def test_nul_in_a_text_is_422(client, keys):
    response = client.post("/v1/score", json={"comments": [{"id": "a", "text": "a\x00"}]}, headers=bearer(keys.score))
    assert "NUL" in assert_error_shape(response, 422)["detail"]


def test_nul_in_a_path_or_query_id_is_422(client, keys):
    assert_error_shape(client.get("/v1/threads/a%00b", headers=bearer(keys.read)), 422)
    assert_error_shape(client.get("/v1/flags?community_id=%00", headers=bearer(keys.read)), 422)
    assert_error_shape(client.get("/v1/communities/a%0Ab/belonging", headers=bearer(keys.read)), 422)
    assert_error_shape(client.get("/v1/threads/a%0A", headers=bearer(keys.read)), 422)


# --- datetimes at the edges ---


@pytest.mark.parametrize(
    "created_at",
    ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z"],
)
def test_datetimes_out_of_range_are_422(client, keys, created_at):
    body = {"comments": [{"id": "a", "text": "hi", "created_at": created_at}], "store": True}
    detail = assert_error_shape(client.post("/v1/score", json=body, headers=bearer(keys.score)), 422)["detail"]
    assert "from 1970-01-01T00:00:00Z up to (not including) 2100-01-01T00:00:00Z" in detail


def test_datetimes_are_normalised_to_utc(client, keys):
    body = {"comments": [{"id": "a", "text": "hi", "thread_id": "t", "created_at": "2099-12-31T18:30:00-05:00"}]}
    assert client.post("/v1/score", json=body, headers=bearer(keys.score)).status_code == 200
    stored = client.get("/v1/threads/t", headers=bearer(keys.read)).json()["data"][0]
    assert stored["created_at"] == "2099-12-31T23:30:00Z"


@pytest.mark.parametrize(
    "query",
    [
        "since=9999-12-31T23:00:00-05:00",
        "until=0001-01-01T00:00:00%2B01:00",
        "since=1960-01-01T00:00:00Z",
        "until=2100-01-01T00:00:01Z",
    ],
)
def test_belonging_times_out_of_range_are_422(client, keys, query):
    response = client.get(f"/v1/communities/rn/belonging?{query}", headers=bearer(keys.read))
    assert_error_shape(response, 422)


# --- body parse errors: the same shape ---


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        ('{"comments": [', "body: invalid JSON at character 14"),
        ("[" * 100_000 + "]" * 100_000, "body: invalid JSON"),
        ('{"comments": [{"id": "a", "text": "hi", "n": ' + "9" * 5000 + "}]}", "body: invalid JSON"),
        (b"\xff\xfe".decode("latin-1"), "body: invalid JSON"),
    ],
)
def test_body_parse_errors_have_the_error_shape(client, keys, raw, detail):
    body = assert_error_shape(raw_score(client, keys, raw), 400)
    assert body["detail"].startswith(detail)


def test_unknown_routes_and_methods_have_the_error_shape(client):
    assert assert_error_shape(client.get("/v2/nothing"), 404)["errors"][0]["type"] == "not_found"
    assert_error_shape(client.put("/v1/score"), 405)


def test_openapi_describes_the_error_shape_everywhere(client):
    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert schema["components"]["schemas"]["Error"]["required"] == ["detail", "errors"]
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            codes = [c for c in op["responses"] if c[0] in "45"]
            assert "500" in codes, (method, path)
            # The Perspective-compatible routes answer in Google's envelope, as Perspective does.
            shape = "GoogleError" if "comments:" in path or path.startswith("/$discovery") else "Error"
            for code in codes:
                content = op["responses"][code]["content"]["application/json"]["schema"]
                assert content == {"$ref": f"#/components/schemas/{shape}"}, (method, path, code)
    score = schema["paths"]["/v1/score"]["post"]["responses"]
    assert {"400", "401", "403", "409", "413", "422", "429", "503"} <= set(score)


# --- the stream never aborts ---


def stream(client, keys, body: bytes, **params):
    response = client.post(
        "/v1/stream",
        content=body,
        params=params,
        headers={**bearer(keys.score), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200
    return [json.loads(line) for line in response.content.splitlines()]


def test_no_line_ends_a_stream(client, keys):
    lines = [
        b'{"id": "1", "text": "welcome"}',
        b"[" * 50_000 + b"]" * 50_000,  # past the recursion limit
        b'{"id": "3", "text": "hi", "n": ' + b"7" * 5000 + b"}",  # over 4300 digits
        b'{"id": "x\\ud800", "text": ""}',  # invalid, and its id cannot be echoed
        b'{"id": "5", "text": "x\\udfff"}',
        b'{"id": "6", "text": "hi", "created_at": "9999-12-31T23:59:59-01:00"}',
        b"\xff\xfe{}",
        b'{"id": "8", "text": "go back"}',
    ]
    answers = stream(client, keys, b"\n".join(lines) + b"\n")
    assert [a["line"] for a in answers] == list(range(1, 9))
    assert [a.get("error", {}).get("status") for a in answers] == [None, 400, 400, 422, 422, 422, 400, None]
    assert answers[1]["error"]["detail"] == "line 2: invalid JSON: nested too deeply"
    assert answers[3]["id"] is None
    assert answers[7]["tags"] == ["hostile"]


def test_duplicate_ids_in_a_stream_same_text_scored_once(client, keys, db_url, predictor):
    scored_before = sum(len(b) for b in predictor.batches)
    body = b"\n".join(
        [
            b'{"id": "d", "text": "welcome, friend", "community_id": "c"}',
            b'{"id": "d", "text": "welcome, friend", "community_id": "c"}',
            b'{"id": "d", "text": "hi", "community_id": "c"}',
            b'{"id": "d", "text": "go back", "community_id": "other"}',
        ]
    )
    answers = stream(client, keys, body)
    assert answers[0]["tags"] == answers[1]["tags"] == ["welcoming"] and answers[1]["line"] == 2
    assert (
        answers[2]["error"]["status"] == 409
        and "was sent on line 1 with a different text" in answers[2]["error"]["detail"]
    )
    assert answers[3]["tags"] == ["hostile"]
    rows = stored_rows(db_url)
    assert sorted((r.community_id, r.comment_id, r.text) for r in rows) == [
        ("c", "d", "welcome, friend"),
        ("other", "d", "go back"),
    ]
    assert sum(len(b) for b in predictor.batches) - scored_before == 2  # "d" in "c" once, "d" in "other"


def test_a_stream_line_with_a_stored_id_and_another_text_is_a_409_line(client, keys, db_url):
    client.post("/v1/score", json={"comments": [{"id": "s", "text": "welcome"}]}, headers=bearer(keys.score))
    answers = stream(client, keys, b'{"id": "s", "text": "welcome"}\n{"id": "s", "text": "go back"}\n')
    assert answers[0]["tags"] == ["welcoming"]
    assert answers[1]["error"]["status"] == 409
    assert [r.text for r in stored_rows(db_url)] == ["welcome"]


# --- ids that hold /, .., %2F and unicode read back ---

TRICKY_IDS = [
    "a/b",
    "../x",
    "x/..",
    "a%2Fb",
    "%2e%2e",
    "ü/ñ",
    "e\u0301",
    "\u00e9",
    "sp ace",
    "q?x#y",
    "/lead",
    "trail/",
]


def test_every_stored_id_reads_back(make_client, settings, predictor, keys):
    """Through a real server: Starlette's TestClient decodes the path twice, uvicorn once."""
    make_client(settings, predictor)  # migrates the store; the live server below shares it
    with serve_in_thread(create_app(settings, predictor=predictor)) as url, httpx.Client(base_url=url) as client:
        check_ids_read_back(client, keys)


def check_ids_read_back(client, keys):
    comments = [
        {"id": f"c{i}", "text": "welcome", "thread_id": tid, "community_id": tid} for i, tid in enumerate(TRICKY_IDS)
    ]
    assert client.post("/v1/score", json={"comments": comments}, headers=bearer(keys.score)).status_code == 200
    for tid in TRICKY_IDS:
        response = client.get(f"/v1/threads/{quote(tid, safe='')}", headers=bearer(keys.read))
        assert response.status_code == 200, (tid, response.text)
        assert response.json()["thread_id"] == tid
        assert [c["community_id"] for c in response.json()["data"]] == [tid]
        report = client.get(f"/v1/communities/{quote(tid, safe='')}/belonging", headers=bearer(keys.read))
        assert report.status_code == 200 and report.json()["community_id"] == tid
        assert report.json()["totals"]["count"] == 1, tid
    # Not normalised: the NFD and NFC spellings of é are two ids.
    nfd = client.get(f"/v1/threads/{quote('e' + chr(0x301), safe='')}", headers=bearer(keys.read)).json()
    assert nfd["count"] == 1 and nfd["data"][0]["id"] == "c6"
