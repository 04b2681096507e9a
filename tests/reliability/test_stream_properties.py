"""Hypothesis: whatever lines a /v1/stream body holds, the answer is complete, in order, one line
per non-blank input line, and never a 5xx line."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.conftest import bearer

ids = st.one_of(st.text(max_size=12), st.sampled_from(["a", "a/b", "..", "x\ud800", "\x00", ""]), st.integers())
texts = st.one_of(st.text(max_size=40), st.sampled_from(["welcome!", "go back", "", "a\x00b"]), st.none())
times = st.sampled_from(["2025-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "x", None])
comments = st.fixed_dictionaries(
    {"id": ids, "text": texts},
    optional={
        "community_id": ids,
        "thread_id": ids,
        "created_at": times,
        "lang": st.sampled_from(["en", "zh-Hans", "??", 5]),
        "extra": st.integers(),
    },
)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


def encode(value: object) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


line_values = st.one_of(
    comments.map(encode),
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" ")),
    st.text(max_size=60).map(lambda t: t.replace("\n", " ").encode("utf-8", "surrogatepass")),
    st.integers(min_value=1, max_value=3000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(min_value=4000, max_value=6000).map(lambda digits: b'{"id": "n", "text": ' + b"9" * digits + b"}"),
    st.sampled_from([b"", b"   ", b"\r", b"null", b"[]", b'"text"', b"{}", b'{"id": "x\\ud800", "text": 1}']),
    json_values.map(encode),
)


@pytest.fixture
def client(make_client, settings, predictor):
    """Rate limits off: the generated streams come faster than a key's default 100 requests/s."""
    return make_client(settings.model_copy(update={"rate_limit_enabled": False}), predictor)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(lines=st.lists(line_values, max_size=25), trailing_newline=st.booleans(), store=st.booleans())
def test_every_line_is_answered_in_order(client, keys, lines, trailing_newline, store):
    body = b"\n".join(lines) + (b"\n" if trailing_newline else b"")
    response = client.post(
        "/v1/stream",
        content=body,
        params={"store": str(store).lower()},
        headers={**bearer(keys.score), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200
    assert response.content == b"" or response.content.endswith(b"\n")  # complete: no line cut off
    answers = [json.loads(line) for line in response.content.splitlines()]
    expected = [number for number, raw in enumerate(lines, start=1) if raw.strip()]
    assert [a["line"] for a in answers] == expected
    for answer in answers:
        if "error" in answer:
            assert answer["error"]["status"] in (400, 409, 413, 422), answer
            assert answer["error"]["detail"].startswith(f"line {answer['line']}: ")
            assert answer["error"]["errors"]
        else:
            assert set(answer) == {"line", "id", "scores", "tags", "lang", "truncated"}
