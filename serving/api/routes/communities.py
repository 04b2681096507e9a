"""GET /v1/communities/{community_id}/belonging: tag counts and rates per time bucket, the
belonging index, and how newcomers' first comments were answered.

belonging index = (comments tagged welcoming or curious) / comments - (comments tagged hostile) / comments,
in [-1, 1]; null for an empty bucket. The figures come from serving.storage.analytics, as on the
moderator pages; this route only rounds them to 6 digits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import AfterValidator

from serving.api import paths  # noqa: F401  (the {name:id} path convertor)
from serving.api.auth import ReadKey
from serving.api.deps import DbSession
from serving.api.errors import ApiError
from serving.api.schemas import (
    MAX_ID_CHARS,
    BelongingReport,
    Bucket,
    BucketStats,
    NewcomerStats,
    TagStats,
    check_id,
)
from serving.api.schemas import parse_time as parse_bounded_time
from serving.storage.analytics import BUCKET_STEP, Reception, TagCounts, belonging_by_bucket, newcomer_reception
from serving.timefmt import from_db, to_db, utcnow

router = APIRouter(tags=["reading"])

MAX_BUCKETS = 1000
DEFAULT_SPAN = {"hour": timedelta(hours=48), "day": timedelta(days=30)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def tag_stats(counts: TagCounts) -> TagStats:
    return TagStats(
        count=counts.count,
        tags=dict(counts.tags),
        rates={tag: _round(rate) for tag, rate in counts.rates.items()},
        belonging_index=_round(counts.belonging_index),
    )


def newcomer_stats(reception: Reception) -> NewcomerStats:
    replies = reception.replies
    return NewcomerStats(
        newcomers=reception.newcomers,
        answered=reception.answered,
        replies=replies.count,
        tags=dict(replies.tags),
        rates={tag: _round(rate) for tag, rate in replies.rates.items()},
    )


def parse_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return to_db(parse_bounded_time(value))
    except ValueError as exc:
        raise ApiError(422, f"query parameter {name}: {exc}", kind="datetime_invalid", loc=("query", name)) from exc


@router.get(
    "/v1/communities/{community_id:id}/belonging",
    response_model=BelongingReport,
    responses={401: {}, 403: {}, 422: {}},
)
def belonging(
    community_id: Annotated[
        str,
        Path(min_length=1, max_length=MAX_ID_CHARS, description="Percent-encode it: quote(id, safe='')."),
        AfterValidator(check_id),
    ],
    _: ReadKey,
    db: DbSession,
    since: Annotated[
        str | None, Query(description="RFC 3339; default: until minus 48 h (hour) or 30 days (day).")
    ] = None,
    until: Annotated[str | None, Query(description="RFC 3339, exclusive; default: now.")] = None,
    bucket: Annotated[Bucket, Query()] = "day",
) -> BelongingReport:
    end = parse_time("until", until) or utcnow()
    start = parse_time("since", since) or end - DEFAULT_SPAN[bucket]
    if start >= end:
        raise ApiError(422, "query parameter since: must be before until", loc=("query", "since"))
    if (end - start) / BUCKET_STEP[bucket] > MAX_BUCKETS:
        raise HTTPException(
            422,
            f"query parameter since: the range spans more than {MAX_BUCKETS} {bucket} buckets; "
            "narrow it or use a larger bucket",
        )
    series = belonging_by_bucket(db, community_id, start, end, bucket)
    reception = newcomer_reception(db, community_id, start, end)
    data = [
        BucketStats(
            start=from_db(bucket_start),
            end=from_db(bucket_start + BUCKET_STEP[bucket]),
            **tag_stats(counts).model_dump(),
        )
        for bucket_start, counts in series
    ]
    return BelongingReport(
        community_id=community_id,
        since=from_db(start),
        until=from_db(end),
        bucket=bucket,
        data=data,
        count=len(data),
        totals=tag_stats(TagCounts.total(counts for _start, counts in series)),
        newcomers=newcomer_stats(reception),
    )
