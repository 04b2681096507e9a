"""GET /v1/threads/{thread_id}: a thread's stored comments with their scores, oldest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import AfterValidator

from serving.api import paths  # noqa: F401  (the {name:id} path convertor)
from serving.api.auth import ReadKey
from serving.api.deps import DbSession
from serving.api.schemas import MAX_ID_CHARS, MAX_OFFSET, ModelRef, StoredComment, ThreadComments, check_id
from serving.storage.comments import scores_of, tags_of, thread_comments
from serving.storage.models import Comment
from serving.timefmt import from_db

router = APIRouter(tags=["reading"])


def stored_comment(row: Comment) -> StoredComment:
    return StoredComment(
        id=row.comment_id,
        community_id=row.community_id or None,
        thread_id=row.thread_id,
        author_id=row.author_id,
        parent_id=row.parent_id,
        text=row.text,
        lang=row.lang,
        created_at=from_db(row.created_at),
        received_at=from_db(row.received_at),
        scores=scores_of(row),
        tags=tags_of(row),
        truncated=row.truncated,
        model=ModelRef(name=row.model_name, version=row.model_version),
    )


# `:id` (serving.api.paths): a thread id may hold "/" (sent percent-encoded as %2F, or as it is).
@router.get("/v1/threads/{thread_id:id}", response_model=ThreadComments, responses={401: {}, 403: {}, 404: {}})
def get_thread(
    thread_id: Annotated[
        str,
        Path(min_length=1, max_length=MAX_ID_CHARS, description="Percent-encode it: quote(id, safe='')."),
        AfterValidator(check_id),
    ],
    _: ReadKey,
    db: DbSession,
    community_id: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_ID_CHARS, description="Only this community's thread of that id."),
        AfterValidator(check_id),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> ThreadComments:
    rows, total = thread_comments(db, thread_id, community_id, limit=limit, offset=offset)
    if total == 0:
        where = f" in community {community_id!r}" if community_id else ""
        raise HTTPException(404, f"thread {thread_id!r}{where} has no stored comments")
    return ThreadComments(thread_id=thread_id, data=[stored_comment(r) for r in rows], count=total)
