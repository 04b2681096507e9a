"""GET /v1/threads/{id}, /v1/communities/{id}/belonging, /v1/flags."""

from __future__ import annotations

import pytest

from tests.serving.conftest import bearer


def score(client, keys, comments):
    response = client.post("/v1/score", json={"comments": comments}, headers=bearer(keys.score))
    assert response.status_code == 200, response.text
    return response.json()


def comment(cid, text, at, author=None, parent=None, thread="t1", community="rn"):
    return {
        "id": cid,
        "text": text,
        "created_at": at,
        "author_id": author,
        "parent_id": parent,
        "thread_id": thread,
        "community_id": community,
    }


@pytest.fixture
def conversation(client, keys):
    """A newcomer (ana) is welcomed, asked a question, told to go back; later comments fall outside."""
    score(
        client,
        keys,
        [
            comment("n1", "hi everyone, new here", "2025-01-20T10:00:00Z", "ana"),
            comment("r1", "welcome! where are you from?", "2025-01-20T11:00:00Z", "bob", "n1"),
            comment("r2", "go back", "2025-01-20T12:00:00Z", "cat", "n1"),
            comment("r3", "thanks", "2025-01-20T12:30:00Z", "ana", "n1"),  # a self-reply does not count
            comment("r4", "welcome", "2025-01-22T12:00:00Z", "dan", "n1"),  # after 24 h: does not count
        ],
    )
    return client


# --- threads ---


def test_thread_lists_stored_comments_oldest_first(conversation, keys):
    response = conversation.get("/v1/threads/t1", headers=bearer(keys.read))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 5 and body["thread_id"] == "t1"
    assert [c["id"] for c in body["data"]] == ["n1", "r1", "r2", "r3", "r4"]
    first = body["data"][1]
    assert first == {
        "id": "r1",
        "community_id": "rn",
        "thread_id": "t1",
        "author_id": "bob",
        "parent_id": "n1",
        "text": "welcome! where are you from?",
        "lang": "en",
        "created_at": "2025-01-20T11:00:00Z",
        "received_at": first["received_at"],
        "scores": {"welcoming": 0.9, "curious": 0.8, "hostile": 0.05},
        "tags": ["welcoming", "curious"],
        "truncated": False,
        "model": {"name": "fake", "version": "0.1"},
    }


def test_thread_pagination_and_community_filter(conversation, keys):
    page = conversation.get("/v1/threads/t1?limit=2&offset=2", headers=bearer(keys.read)).json()
    assert [c["id"] for c in page["data"]] == ["r2", "r3"] and page["count"] == 5
    response = conversation.get("/v1/threads/t1?community_id=elsewhere", headers=bearer(keys.read))
    assert response.status_code == 404
    assert response.json()["detail"] == "thread 't1' in community 'elsewhere' has no stored comments"


def test_thread_errors(client, keys):
    response = client.get("/v1/threads/nope", headers=bearer(keys.read))
    assert (response.status_code, response.json()["detail"]) == (404, "thread 'nope' has no stored comments")
    response = client.get("/v1/threads/t1?limit=0", headers=bearer(keys.read))
    assert response.status_code == 422
    assert response.json()["detail"] == "query parameter limit: Input should be greater than or equal to 1"
    assert client.get("/v1/threads/t1").status_code == 401
    response = client.get("/v1/threads/t1", headers=bearer(keys.score))
    assert (response.status_code, response.json()["detail"]) == (403, "this API key lacks the 'read' scope")


# --- belonging ---


def test_belonging_buckets_index_and_newcomers(conversation, keys):
    response = conversation.get(
        "/v1/communities/rn/belonging",
        params={"since": "2025-01-20T00:00:00Z", "until": "2025-01-23T00:00:00Z", "bucket": "day"},
        headers=bearer(keys.read),
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["community_id"], body["bucket"], body["count"]) == ("rn", "day", 3)
    assert (body["since"], body["until"]) == ("2025-01-20T00:00:00Z", "2025-01-23T00:00:00Z")
    day1, day2, day3 = body["data"]
    assert day1 == {
        "start": "2025-01-20T00:00:00Z",
        "end": "2025-01-21T00:00:00Z",
        "count": 4,
        "tags": {"welcoming": 1, "curious": 1, "hostile": 1},
        "rates": {"welcoming": 0.25, "curious": 0.25, "hostile": 0.25},
        "belonging_index": 0.0,  # (1 welcoming-or-curious - 1 hostile) / 4
    }
    assert day2["count"] == 0 and day2["belonging_index"] is None and day2["rates"]["hostile"] is None
    assert day3["tags"] == {"welcoming": 1, "curious": 0, "hostile": 0} and day3["belonging_index"] == 1.0
    assert body["totals"] == {
        "count": 5,
        "tags": {"welcoming": 2, "curious": 1, "hostile": 1},
        "rates": {"welcoming": 0.4, "curious": 0.2, "hostile": 0.2},
        "belonging_index": 0.2,
    }
    # ana, bob, cat and dan all made their first comment in range; only ana got replies in 24 h
    assert body["newcomers"] == {
        "newcomers": 4,
        "answered": 1,
        "replies": 2,
        "tags": {"welcoming": 1, "curious": 1, "hostile": 1},
        "rates": {"welcoming": 0.5, "curious": 0.5, "hostile": 0.5},
    }


def test_belonging_hour_buckets(conversation, keys):
    body = conversation.get(
        "/v1/communities/rn/belonging",
        params={"since": "2025-01-20T10:30:00+00:00", "until": "2025-01-20T13:00:00Z", "bucket": "hour"},
        headers=bearer(keys.read),
    ).json()
    assert [(b["start"], b["count"]) for b in body["data"]] == [
        ("2025-01-20T10:00:00Z", 0),
        ("2025-01-20T11:00:00Z", 1),
        ("2025-01-20T12:00:00Z", 2),
    ]
    assert body["newcomers"]["newcomers"] == 2  # bob and cat; ana's first comment is before `since`


def test_belonging_bad_queries(client, keys):
    url = "/v1/communities/rn/belonging"
    cases = [
        (
            {"since": "yesterday"},
            "query parameter since: expected an RFC 3339 date-time such as 2025-01-31T18:04:05Z, got 'yesterday'",
        ),
        (
            {"until": "2025-01-20T00:00:00"},
            "query parameter until: expected an RFC 3339 date-time such as "
            "2025-01-31T18:04:05Z, got '2025-01-20T00:00:00'",
        ),
        (
            {"since": "2025-01-21T00:00:00Z", "until": "2025-01-20T00:00:00Z"},
            "query parameter since: must be before until",
        ),
        (
            {"since": "2020-01-01T00:00:00Z", "until": "2025-01-01T00:00:00Z", "bucket": "hour"},
            "query parameter since: the range spans more than 1000 hour buckets; narrow it or use a larger bucket",
        ),
        ({"bucket": "week"}, "query parameter bucket: Input should be 'hour' or 'day'"),
    ]
    for params, detail in cases:
        response = client.get(url, params=params, headers=bearer(keys.read))
        assert (response.status_code, response.json()["detail"]) == (422, detail), params
    assert client.get(url).status_code == 401
    assert client.get(url, headers=bearer(keys.score)).status_code == 403


def test_belonging_of_an_empty_community(client, keys):
    body = client.get("/v1/communities/none/belonging?bucket=day", headers=bearer(keys.read)).json()
    assert body["count"] == 31 and body["totals"]["count"] == 0 and body["totals"]["belonging_index"] is None
    assert body["newcomers"]["newcomers"] == 0


# --- flags ---


def test_flags_lists_hostile_threads_newest_and_worst_first(client, keys):
    score(
        client,
        keys,
        [
            # t_share: 2 of 3 hostile -> flagged by share; latest hostile at 12:00
            comment("a1", "hello", "2025-01-20T10:00:00Z", thread="t_share"),
            comment("a2", "go back", "2025-01-20T11:00:00Z", thread="t_share"),
            comment("a3", "idiot", "2025-01-20T12:00:00Z", thread="t_share"),
            # t_count: 3 of 10 hostile -> flagged by count; latest hostile at 09:00
            *[
                comment(f"b{i}", "go back" if i < 3 else "hello", f"2025-01-20T0{i}:00:00Z", thread="t_count")
                for i in range(10)
            ],
            # t_one: a single hostile comment -> below min_comments, not flagged
            comment("c1", "idiot", "2025-01-21T10:00:00Z", thread="t_one"),
            # t_calm: nothing hostile
            comment("d1", "welcome", "2025-01-21T10:00:00Z", thread="t_calm"),
        ],
    )
    response = client.get("/v1/flags", headers=bearer(keys.read))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert body["limits"] == {"hostile_count": 3, "hostile_share": 0.5, "min_comments": 2}
    assert [t["thread_id"] for t in body["data"]] == ["t_share", "t_count"]
    share, count = body["data"]
    assert share == {
        "community_id": "rn",
        "thread_id": "t_share",
        "status": "open",
        "comment_count": 3,
        "welcoming_count": 0,
        "curious_count": 0,
        "hostile_count": 2,
        "hostile_share": 0.666667,
        "first_at": "2025-01-20T10:00:00Z",
        "last_at": "2025-01-20T12:00:00Z",
        "last_hostile_at": "2025-01-20T12:00:00Z",
        "reasons": ["hostile_share 0.67 >= 0.5"],
    }
    assert count["reasons"] == ["hostile_count 3 >= 3"]
    worst = client.get("/v1/flags?sort=worst", headers=bearer(keys.read)).json()
    assert [t["thread_id"] for t in worst["data"]] == ["t_count", "t_share"]
    page = client.get("/v1/flags?limit=1&offset=1", headers=bearer(keys.read)).json()
    assert [t["thread_id"] for t in page["data"]] == ["t_count"] and page["count"] == 2
    assert client.get("/v1/flags?status=resolved", headers=bearer(keys.read)).json() == {
        "data": [],
        "count": 0,
        "limits": body["limits"],
    }


def test_flag_limits_come_from_settings(make_client, settings, predictor, keys):
    client = make_client(settings.model_copy(update={"flag_hostile_count": 1, "flag_min_comments": 5}), predictor)
    score(client, keys, [comment("c1", "idiot", "2025-01-21T10:00:00Z", thread="t_one")])
    assert [t["thread_id"] for t in client.get("/v1/flags", headers=bearer(keys.read)).json()["data"]] == ["t_one"]


def test_flags_errors(client, keys):
    response = client.get("/v1/flags?sort=loudest", headers=bearer(keys.read))
    assert (response.status_code, response.json()["detail"]) == (
        422,
        "query parameter sort: Input should be 'newest' or 'worst'",
    )
    assert client.get("/v1/flags").status_code == 401
    assert client.get("/v1/flags", headers=bearer(keys.score)).status_code == 403
