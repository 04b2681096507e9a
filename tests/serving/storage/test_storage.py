"""The store on SQLite and PostgreSQL: schema, idempotent writes, counters, analytics, flags, keys."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from serving.settings import Settings
from serving.storage.analytics import newcomer_reception, tag_counts_by_bucket
from serving.storage.comments import NewComment, count_comments, find_results, insert_scored, thread_comments
from serving.storage.db import (
    DatabaseNotMigrated,
    all_metadata,
    check_at_head,
    head_revision,
    make_engine,
    make_sessionmaker,
)
from serving.storage.keys import create_key, find_active_key, hash_token, revoke_key
from serving.storage.models import Thread
from serving.storage.threads import FlagLimits, flagged_threads
from tests.serving.conftest import FakePredictor, bearer


def row(cid, at, tags=(), thread="t1", community="rn", author=None, parent=None, text="x"):
    scores = {t: (0.9 if t in tags else 0.1) for t in ("welcoming", "curious", "hostile")}
    return NewComment(community, cid, thread, author, parent, text, "en", at, scores, list(tags), False)


@pytest.fixture
def sessions(store_url):
    engine = make_engine(store_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_migrations_build_exactly_the_models(store_url):
    engine = make_engine(store_url)
    check_at_head(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), all_metadata()) == []
    engine.dispose()


def test_unmigrated_database_is_refused(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/empty.db")
    expected = f"is at revision none, expected {head_revision()}: run `belong db upgrade"
    with pytest.raises(DatabaseNotMigrated, match=expected):
        check_at_head(engine)
    engine.dispose()


def test_insert_is_idempotent_and_keeps_thread_counters(sessions):
    day = datetime(2025, 1, 20, 10)
    with sessions.begin() as s:
        inserted = insert_scored(
            s,
            [row("1", day, ["welcoming"]), row("2", day.replace(hour=12), ["hostile"])],
            model_name="m",
            model_version="1",
        )
    assert inserted == {("rn", "1"), ("rn", "2")}
    with sessions.begin() as s:
        again = insert_scored(
            s,
            [row("1", day, ["hostile"]), row("3", day.replace(hour=8), ["hostile"])],
            model_name="m",
            model_version="1",
        )
    assert again == {("rn", "3")}
    with sessions() as s:
        assert count_comments(s) == 3
        assert find_results(s, [("rn", "1"), ("rn", "9")])[("rn", "1")].tags == ["welcoming"]
        thread = s.scalars(select(Thread)).one()
        assert (thread.comment_count, thread.welcoming_count, thread.hostile_count) == (3, 1, 2)
        assert (thread.first_at, thread.last_at, thread.last_hostile_at) == (
            datetime(2025, 1, 20, 8),
            datetime(2025, 1, 20, 12),
            datetime(2025, 1, 20, 12),
        )
        rows, total = thread_comments(s, "t1", None, limit=10, offset=0)
        assert [r.comment_id for r in rows] == ["3", "1", "2"] and total == 3


def test_concurrent_writers_store_a_comment_once(sessions):
    rows = [row(str(i), datetime(2025, 1, 20, 10), ["hostile"]) for i in range(20)]
    results: list[set] = []
    barrier = threading.Barrier(4)

    def write() -> None:
        barrier.wait()
        with sessions.begin() as s:
            results.append(insert_scored(s, rows, model_name="m", model_version="1"))

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in results) == [0, 0, 0, 20]
    with sessions() as s:
        assert count_comments(s) == 20
        assert s.scalars(select(Thread.hostile_count)).one() == 20


def test_tag_counts_by_bucket_and_newcomers(sessions):
    with sessions.begin() as s:
        insert_scored(
            s,
            [
                row("n1", datetime(2025, 1, 20, 10), author="ana"),
                row("r1", datetime(2025, 1, 20, 11, 30), ["welcoming", "curious"], author="bob", parent="n1"),
                row("r2", datetime(2025, 1, 20, 23, 59), ["hostile"], author="cat", parent="n1"),
                row("r3", datetime(2025, 1, 21, 10, 0, 1), ["welcoming"], author="dan", parent="n1"),  # > 24 h
                row("o1", datetime(2025, 1, 20, 10), ["hostile"], community="other", author="eve"),
            ],
            model_name="m",
            model_version="1",
        )
    with sessions() as s:
        days = tag_counts_by_bucket(s, "rn", datetime(2025, 1, 20), datetime(2025, 1, 22), "day")
        hours = tag_counts_by_bucket(s, "rn", datetime(2025, 1, 20), datetime(2025, 1, 21), "hour")
        reception = newcomer_reception(s, "rn", datetime(2025, 1, 20), datetime(2025, 1, 22))
    assert {k: (v.count, v.tags["hostile"], v.welcoming_or_curious) for k, v in days.items()} == {
        datetime(2025, 1, 20): (3, 1, 1),
        datetime(2025, 1, 21): (1, 0, 1),
    }
    assert sorted((k.hour, v.count) for k, v in hours.items()) == [(10, 1), (11, 1), (23, 1)]
    assert (reception.newcomers, reception.answered, reception.replies.count) == (4, 1, 2)
    assert reception.replies.tags == {"welcoming": 1, "curious": 1, "hostile": 1}


def test_flagged_threads(sessions):
    at = datetime(2025, 1, 20, 10)
    with sessions.begin() as s:
        insert_scored(
            s,
            [
                row("a", at, ["hostile"], thread="share"),
                row("b", at, thread="share"),
                *[row(f"c{i}", at.replace(minute=i), ["hostile"] if i < 3 else [], thread="count") for i in range(9)],
                row("d", at, ["hostile"], thread="single"),
            ],
            model_name="m",
            model_version="1",
        )
    limits = FlagLimits(hostile_count=3, hostile_share=0.5, min_comments=2)
    with sessions() as s:
        newest, total = flagged_threads(s, limits, community_id=None, status="open", sort="newest", limit=10, offset=0)
        worst, _ = flagged_threads(s, limits, community_id="rn", status=None, sort="worst", limit=10, offset=0)
    assert total == 2
    assert [t.thread_id for t in newest] == ["count", "share"]  # count's last hostile is at 10:02
    assert [t.thread_id for t in worst] == ["count", "share"]


def test_keys_are_stored_hashed(sessions):
    with sessions.begin() as s:
        created = create_key(s, name="ci", scopes=["read", "score", "read"])
    assert created.scopes == ["score", "read"] and created.token.startswith("blg_")
    with sessions() as s:
        stored = find_active_key(s, hash_token(created.token))
        assert stored is not None and stored.key_hash == hash_token(created.token) != created.token
        assert stored.prefix == created.token[:10]
    with sessions.begin() as s:
        assert revoke_key(s, created.id) is True
        assert revoke_key(s, created.id) is False
    with sessions() as s:
        assert find_active_key(s, hash_token(created.token)) is None
    with sessions.begin() as s, pytest.raises(ValueError, match=r"unknown scope\(s\) \['root'\]"):
        create_key(s, name="x", scopes=["root"])


@pytest.mark.postgres
def test_api_on_postgres(postgres_url, make_client, tmp_path):
    from tests.serving.conftest import truncate_all

    truncate_all(postgres_url)
    engine = make_engine(postgres_url)
    with make_sessionmaker(engine).begin() as s:
        key = create_key(s, name="pg", scopes=["score", "read"]).token
    engine.dispose()
    client = make_client(Settings(database_url=postgres_url, bundle=tmp_path), FakePredictor())
    body = {
        "comments": [
            {
                "id": "p1",
                "text": "welcome!",
                "community_id": "rn",
                "thread_id": "pt",
                "created_at": "2025-01-20T10:00:00Z",
            }
        ]
    }
    for _ in range(2):
        response = client.post("/v1/score", json=body, headers=bearer(key))
        assert response.status_code == 200 and response.json()["data"][0]["tags"] == ["welcoming"]
    thread = client.get("/v1/threads/pt", headers=bearer(key)).json()
    assert thread["count"] == 1
    report = client.get(
        "/v1/communities/rn/belonging",
        headers=bearer(key),
        params={"since": "2025-01-20T00:00:00Z", "until": "2025-01-21T00:00:00Z"},
    ).json()
    assert report["totals"]["count"] == 1 and report["totals"]["belonging_index"] == 1.0


def test_group_writer_stores_each_comment_once_and_tells_the_losers(sessions):
    import asyncio

    from serving.storage.writer import GroupWriter

    writer = GroupWriter(sessions, model_name="m", model_version="1")
    writer.start()
    at = datetime(2025, 1, 20, 10)
    # 12 requests, each with 5 comments; neighbours share keys, each request tags them its own way
    jobs = [[row(str(j + k), at, ["hostile"] if j % 2 else ["welcoming"]) for k in range(5)] for j in range(12)]

    async def main():
        return await asyncio.gather(*(writer.write(rows) for rows in jobs))

    try:
        replies = asyncio.run(main())
    finally:
        writer.stop()
    with sessions() as s:
        stored = find_results(s, [("rn", str(i)) for i in range(16)])
        assert count_comments(s) == 16
        thread = s.scalars(select(Thread)).one()
        assert thread.comment_count == 16 and thread.welcoming_count + thread.hostile_count == 16
    for rows, replaced in zip(jobs, replies, strict=True):
        for r in rows:
            answer = replaced.get(r.key)
            seen_tags = answer.tags if answer is not None else r.tags  # not replaced: this job stored it
            assert seen_tags == stored[r.key].tags
