"""Moderator-reviewed comments as training rows in the seed schema, with provenance.

Usage:
    with sessions() as db:
        n = write_feedback(db, Path("feedback.jsonl"), since=datetime(2025, 2, 1))

One JSON object per reviewed comment (any tag decided, or "labels correct"):
    {"id": "mod-<community>-<comment id>", "text": ..., "lang": ..., "welcoming": 0|1, "curious": 0|1,
     "hostile": 0|1, "source": "moderation", "moderator": "alice", "reviewed_at": "2025-02-03T10:00:00Z",
     "model_name": ..., "model_version": ..., "model_tags": [...], "reviewed_tags": [...],
     "community_id": ..., "comment_id": ...}
The tags are the final reviewed labels: the moderator's where a tag was decided, the model's
where it was not (`reviewed_tags` says which were decided). `training.data.load_rows` reads the
seed fields and ignores the provenance ones. In the id, "%" and "-" of the community are
written %25 and %2D, so the first "-" after "mod-" always ends the community.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from serving.labels import TAGS
from serving.moderation.review import decisions_for, final_labels
from serving.storage.comments import tags_of
from serving.storage.models import Comment
from serving.storage.moderation import CommentLabel, Moderator
from serving.storage.perspective import suggestion_rows

CHUNK = 400


def feedback_id(community_id: str, comment_id: str) -> str:
    community = community_id.replace("%", "%25").replace("-", "%2D")
    return f"mod-{community}-{comment_id}"


def _rfc3339(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def feedback_rows(db: Session, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Reviewed comments whose latest decision is at or after `since` (naive UTC), oldest review first."""
    latest = func.max(CommentLabel.decided_at)
    query = select(CommentLabel.community_id, CommentLabel.comment_id, latest).group_by(
        CommentLabel.community_id, CommentLabel.comment_id
    )
    if since is not None:
        query = query.having(latest >= since)
    keys = [
        (c, i) for c, i, _ in db.execute(query.order_by(latest, CommentLabel.community_id, CommentLabel.comment_id))
    ]
    names = {uid: name for uid, name in db.execute(select(Moderator.id, Moderator.username))}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        found = db.scalars(select(Comment).where(tuple_(Comment.community_id, Comment.comment_id).in_(chunk)))
        comments = {(c.community_id, c.comment_id): c for c in found}
        decisions = decisions_for(db, chunk)
        for key in chunk:
            comment = comments.get(key)
            if comment is None:  # the comment was deleted from the store since
                continue
            mine = decisions[key]
            last = max(mine.values(), key=lambda d: (d.decided_at, d.id))
            yield {
                "id": feedback_id(*key),
                "text": comment.text,
                "lang": comment.lang,
                **final_labels(comment, mine),
                "source": "moderation",
                "moderator": names.get(last.moderator_id, f"#{last.moderator_id}"),
                "reviewed_at": _rfc3339(last.decided_at),
                "model_name": comment.model_name,
                "model_version": comment.model_version,
                "model_tags": tags_of(comment),
                "reviewed_tags": [tag for tag in TAGS if tag in mine],
                "community_id": comment.community_id or None,
                "comment_id": comment.comment_id,
            }


def write_feedback(db: Session, out: Path, since: datetime | None = None) -> int:
    """Write the rows to `out` (JSON Lines, UTF-8) through a temporary file; return how many."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for row in feedback_rows(db, since):
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
        # Scores suggested through the Perspective-compatible comments:suggestscore (unknown tags null).
        for row in suggestion_rows(db, since):
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(out)
    return n
