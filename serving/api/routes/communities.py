"""GET /v1/communities/{community_id}/belonging: tag counts and rates per time bucket, the
belonging index, and how newcomers' first comments were answered.

belonging index = (comments tagged welcoming or curious) / comments - (comments tagged hostile) / comments,
in [-1, 1]; null for an empty bucket.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from serving.api.deps import ReadKey, RuntimeDep
from serving.api.schemas import BelongingReport, Bucket, BucketStats, NewcomerStats, TagStats
from serving.storage.analytics import (
    BUCKET_STEP,
    Reception,
    TagCounts,
    bucket_starts,
    newcomer_reception,
    tag_counts_by_bucket,
)
from serving.labels import TAGS
from serving.timefmt import from_db, parse_rfc3339, to_db, utcnow

router = APIRouter(tags=["reading"])

MAX_BUCKETS = 1000
DEFAULT_SPAN = {"hour": timedelta(hours=48), "day": timedelta(days=30)}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def tag_stats(counts: TagCounts) -> TagStats:
    n = counts.count
    index = round((counts.welcoming_or_curious - counts.tags["hostile"]) / n, 6) if n else None
    return TagStats(
        count=n,
        tags=dict(counts.tags),
        rates={tag: _rate(counts.tags[tag], n) for tag in TAGS},
        belonging_index=index,
    )


def newcomer_stats(reception: Reception) -> NewcomerStats:
    replies = reception.replies
    return NewcomerStats(
        newcomers=reception.newcomers,
        answered=reception.answered,
        replies=replies.count,
        tags=dict(replies.tags),
        rates={tag: _rate(replies.tags[tag], replies.count) for tag in TAGS},
    )


def parse_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return to_db(parse_rfc3339(value))
    except ValueError as exc:
        raise HTTPException(422, f"query parameter {name}: {exc}") from exc


@router.get(
    "/v1/communities/{community_id}/belonging",
    response_model=BelongingReport,
    responses={401: {}, 403: {}, 422: {}},
)
async def belonging(
    community_id: str,
    runtime: RuntimeDep,
    _: ReadKey,
    since: Annotated[
        str | None, Query(description="RFC 3339; default: until minus 48 h (hour) or 30 days (day).")
    ] = None,
    until: Annotated[str | None, Query(description="RFC 3339, exclusive; default: now.")] = None,
    bucket: Annotated[Bucket, Query()] = "day",
) -> BelongingReport:
    end = parse_time("until", until) or utcnow()
    start = parse_time("since", since) or end - DEFAULT_SPAN[bucket]
    if start >= end:
        raise HTTPException(422, "query parameter since: must be before until")
    if (end - start) / BUCKET_STEP[bucket] > MAX_BUCKETS:
        raise HTTPException(
            422,
            f"query parameter since: the range spans more than {MAX_BUCKETS} {bucket} buckets; "
            "narrow it or use a larger bucket",
        )

    def load() -> tuple[dict[datetime, TagCounts], Reception]:
        with runtime.sessions() as session:
            counts = tag_counts_by_bucket(session, community_id, start, end, bucket)
            return counts, newcomer_reception(session, community_id, start, end)

    by_bucket, reception = await run_in_threadpool(load)
    totals = TagCounts()
    data = []
    for bucket_start in bucket_starts(start, end, bucket):
        counts = by_bucket.get(bucket_start, TagCounts())
        totals.add(counts)
        stats = tag_stats(counts)
        data.append(
            BucketStats(
                start=from_db(bucket_start),
                end=from_db(bucket_start + BUCKET_STEP[bucket]),
                **stats.model_dump(),
            )
        )
    return BelongingReport(
        community_id=community_id,
        since=from_db(start),
        until=from_db(end),
        bucket=bucket,
        data=data,
        count=len(data),
        totals=tag_stats(totals),
        newcomers=newcomer_stats(reception),
    )
