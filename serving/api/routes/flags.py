"""GET /v1/flags: threads for moderators to look at, newest and worst first, paginated."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from serving.api.deps import ReadKey, RuntimeDep
from serving.api.schemas import MAX_ID_CHARS, FlaggedThread, FlagLimitsOut, FlagsPage
from serving.storage.models import Thread
from serving.storage.threads import FlagLimits, flagged_threads
from serving.timefmt import from_db

router = APIRouter(tags=["moderation"])


def reasons(thread: Thread, limits: FlagLimits) -> list[str]:
    out = []
    if thread.hostile_count >= limits.hostile_count:
        out.append(f"hostile_count {thread.hostile_count} >= {limits.hostile_count}")
    share = thread.hostile_count / thread.comment_count
    if thread.comment_count >= limits.min_comments and thread.hostile_count and share >= limits.hostile_share:
        out.append(f"hostile_share {share:.2f} >= {limits.hostile_share}")
    return out


def flagged(thread: Thread, limits: FlagLimits) -> FlaggedThread:
    return FlaggedThread(
        community_id=thread.community_id or None,
        thread_id=thread.thread_id,
        status=thread.status,  # type: ignore[arg-type]
        comment_count=thread.comment_count,
        welcoming_count=thread.welcoming_count,
        curious_count=thread.curious_count,
        hostile_count=thread.hostile_count,
        hostile_share=round(thread.hostile_count / thread.comment_count, 6),
        first_at=from_db(thread.first_at),
        last_at=from_db(thread.last_at),
        last_hostile_at=from_db(thread.last_hostile_at) if thread.last_hostile_at else None,
        reasons=reasons(thread, limits),
    )


@router.get("/v1/flags", response_model=FlagsPage, responses={401: {}, 403: {}})
async def flags(
    runtime: RuntimeDep,
    _: ReadKey,
    community_id: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    status: Annotated[Literal["open", "resolved", "dismissed", "any"], Query(description="Review status.")] = "open",
    sort: Annotated[
        Literal["newest", "worst"],
        Query(
            description="newest: latest hostile comment first, then hostile count, then share; "
            "worst: hostile count first, then share, then latest hostile comment."
        ),
    ] = "newest",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> FlagsPage:
    settings = runtime.settings
    limits = FlagLimits(settings.flag_hostile_count, settings.flag_hostile_share, settings.flag_min_comments)

    def load() -> tuple[list[FlaggedThread], int]:
        with runtime.sessions() as session:
            rows, total = flagged_threads(
                session,
                limits,
                community_id=community_id,
                status=None if status == "any" else status,
                sort=sort,
                limit=limit,
                offset=offset,
            )
            return [flagged(r, limits) for r in rows], total

    data, total = await run_in_threadpool(load)
    return FlagsPage(
        data=data,
        count=total,
        limits=FlagLimitsOut(
            hostile_count=limits.hostile_count,
            hostile_share=limits.hostile_share,
            min_comments=limits.min_comments,
        ),
    )
