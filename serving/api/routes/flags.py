"""GET /v1/flags: threads for moderators to look at, newest and worst first, paginated.

The same query (serving.storage.threads) fills the moderator queue page.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator

from serving.api.auth import ReadKey
from serving.api.deps import DbSession, RuntimeDep
from serving.api.schemas import MAX_ID_CHARS, MAX_OFFSET, FlaggedThread, FlagLimitsOut, FlagsPage, check_id
from serving.labels import ThreadStatus
from serving.storage.models import Thread
from serving.storage.threads import FlagLimits, FlagReason, flag_reasons, flagged_threads, hostile_share
from serving.timefmt import from_db

router = APIRouter(tags=["moderation"])


def reason_text(reason: FlagReason) -> str:
    """As the API words it: "hostile_count 4 >= 3", "hostile_share 0.60 >= 0.5"."""
    if reason.kind == "hostile_count":
        return f"hostile_count {int(reason.value)} >= {int(reason.limit)}"
    return f"hostile_share {reason.value:.2f} >= {reason.limit}"


def flagged(thread: Thread, limits: FlagLimits) -> FlaggedThread:
    return FlaggedThread(
        community_id=thread.community_id or None,
        thread_id=thread.thread_id,
        status=thread.status,  # type: ignore[arg-type]
        comment_count=thread.comment_count,
        welcoming_count=thread.welcoming_count,
        curious_count=thread.curious_count,
        hostile_count=thread.hostile_count,
        hostile_share=round(hostile_share(thread), 6),
        first_at=from_db(thread.first_at),
        last_at=from_db(thread.last_at),
        last_hostile_at=from_db(thread.last_hostile_at) if thread.last_hostile_at else None,
        reasons=[reason_text(r) for r in flag_reasons(thread, limits)],
    )


@router.get("/v1/flags", response_model=FlagsPage, responses={401: {}, 403: {}})
def flags(
    _: ReadKey,
    runtime: RuntimeDep,
    db: DbSession,
    community_id: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(check_id)] = None,
    status: Annotated[Literal[ThreadStatus, Literal["any"]], Query(description="Review status.")] = "open",
    sort: Annotated[
        Literal["newest", "worst"],
        Query(
            description="newest: latest hostile comment first, then hostile count, then share; "
            "worst: hostile count first, then share, then latest hostile comment."
        ),
    ] = "newest",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> FlagsPage:
    limits = runtime.settings.flag_limits
    rows, total = flagged_threads(
        db,
        limits,
        community_id=community_id,
        status=None if status == "any" else status,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    return FlagsPage(
        data=[flagged(r, limits) for r in rows],
        count=total,
        limits=FlagLimitsOut(
            hostile_count=limits.hostile_count,
            hostile_share=limits.hostile_share,
            min_comments=limits.min_comments,
        ),
    )
