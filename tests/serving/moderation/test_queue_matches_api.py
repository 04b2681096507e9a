"""The moderator queue and `GET /v1/flags` come from one query: same threads, same order, same reasons."""

from __future__ import annotations

import re

import pytest

from tests.serving.moderation.conftest import bearer, seed, thread_pk

PAGE_LINK = re.compile(r'href="/moderation/threads/(\d+)"')


def more_threads() -> list[dict]:
    """Threads that tie on hostile count or share, so the tie-breaks show."""
    rows = []
    shapes = {  # thread: (hostile, calm, minute of the last hostile comment)
        "t4": (3, 3, 30),  # 3 hostile, share 0.5
        "t5": (1, 0, 40),  # one comment only: below min_comments, not flagged by share
        "t6": (2, 1, 50),  # share 0.67
        "t7": (3, 0, 20),  # 3 hostile, share 1.0
    }
    for thread, (hostile, calm, minute) in shapes.items():
        for i in range(calm):
            rows.append(
                {
                    "id": f"{thread}-c{i}",
                    "thread_id": thread,
                    "community_id": "c3",
                    "text": "welcome friend",
                    "created_at": f"2025-02-04T09:{i:02d}:00Z",
                }
            )
        for i in range(hostile):
            rows.append(
                {
                    "id": f"{thread}-h{i}",
                    "thread_id": thread,
                    "community_id": "c3",
                    "text": "go back home",
                    "created_at": f"2025-02-04T10:{minute - i:02d}:00Z",
                }
            )
    return rows


@pytest.mark.parametrize("sort", ["worst", "newest"])
@pytest.mark.parametrize("status", ["open", "any"])
def test_flags_and_queue_list_the_same_threads_in_the_same_order(moderator, keys, sessions, sort, status):
    seed(moderator, keys.score, more_threads())
    api = moderator.get(f"/v1/flags?sort={sort}&status={status}&limit=500", headers=bearer(keys.read))
    assert api.status_code == 200, api.text
    from_api = [thread_pk(sessions, t["community_id"] or "", t["thread_id"]) for t in api.json()["data"]]
    page = moderator.get(f"/moderation/?sort={sort}&status={status}")
    assert page.status_code == 200
    from_page = [int(pk) for pk in PAGE_LINK.findall(page.text)]
    assert len(from_api) >= 5
    assert from_page == from_api
    reasons = {pk: len(t["reasons"]) for pk, t in zip(from_api, api.json()["data"], strict=True)}
    assert reasons[thread_pk(sessions, "c3", "t7")] == 2 and reasons[thread_pk(sessions, "c3", "t4")] == 2
