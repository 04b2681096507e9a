"""Review actions: per comment confirm / reject / add / clear a tag or accept all labels, per thread
resolve / dismiss / reopen. Each change writes its audit entry in the same transaction.

Usage (inside `with sessions.begin() as db:`):
    changed = review_comment(db, comment_pk=42, action="reject", tag="hostile", actor=actor)
    changed = set_thread_status(db, thread_pk=7, action="resolve", reason="removed", actor=actor)

Final labels: a tag with a moderator's decision takes the moderator's label; a tag without one
keeps the model's. `model_label` keeps what the model said when the decision was made, so a
decision reads as confirmed (same), rejected (model yes, moderator no) or added (model no, moderator yes).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from serving.labels import TAGS
from serving.moderation.audit import Actor, record
from serving.storage.comments import tags_of
from serving.storage.models import Comment, Thread
from serving.storage.moderation import CommentLabel
from serving.storage.webhooks import thread_resolved
from serving.timefmt import utcnow

COMMENT_ACTIONS = ("confirm", "reject", "add", "clear", "accept")
THREAD_ACTIONS = {"resolve": "resolved", "dismiss": "dismissed", "reopen": "open"}
MAX_REASON = 1000

Key = tuple[str, str]  # (community_id, comment_id)


class ReviewError(ValueError):
    """A refused action; the message is safe to show."""


class NotFound(LookupError):
    pass


def decisions_for(db: Session, keys: Iterable[Key]) -> dict[Key, dict[str, CommentLabel]]:
    """The moderators' decisions for these comments, by comment and tag."""
    wanted = list(set(keys))
    out: dict[Key, dict[str, CommentLabel]] = defaultdict(dict)
    for start in range(0, len(wanted), 400):
        chunk = wanted[start : start + 400]
        rows = db.scalars(
            select(CommentLabel).where(tuple_(CommentLabel.community_id, CommentLabel.comment_id).in_(chunk))
        )
        for row in rows:
            out[(row.community_id, row.comment_id)][row.tag] = row
    return out


def final_labels(comment: Comment, decisions: dict[str, CommentLabel]) -> dict[str, int]:
    model = set(tags_of(comment))
    return {tag: int(decisions[tag].label) if tag in decisions else int(tag in model) for tag in TAGS}


def tag_state(comment: Comment, decisions: dict[str, CommentLabel], tag: str) -> str:
    """'confirmed', 'rejected', 'added', 'model' (model's tag, not reviewed) or 'none'."""
    decision = decisions.get(tag)
    model = bool(getattr(comment, tag))
    if decision is None:
        return "model" if model else "none"
    if decision.label == decision.model_label:
        return "confirmed" if decision.label else "confirmed-absent"
    return "rejected" if decision.model_label else "added"


def _lock_comment(db: Session, comment_pk: int) -> Comment:
    comment = db.scalar(select(Comment).where(Comment.id == comment_pk).with_for_update())
    if comment is None:
        raise NotFound(f"no comment with id {comment_pk}")
    return comment


def review_comment(db: Session, *, comment_pk: int, action: str, tag: str | None, actor: Actor) -> bool:
    """Apply one action to one comment; False when it changed nothing (nothing is recorded then)."""
    if action not in COMMENT_ACTIONS:
        raise ReviewError(f"unknown action {action!r}")
    if action != "accept" and tag not in TAGS:
        raise ReviewError(f"unknown tag {tag!r}")
    if actor.id is None:
        raise ReviewError("label decisions need a moderator account")
    moderator_id: int = actor.id
    comment = _lock_comment(db, comment_pk)
    key = (comment.community_id, comment.comment_id)
    decisions = decisions_for(db, [key]).get(key, {})
    before = final_labels(comment, decisions)
    now = utcnow()

    def decide(name: str, label: bool) -> bool:
        model = bool(getattr(comment, name))
        row = decisions.get(name)
        if row is not None and row.label == label and row.model_label == model:
            return False
        if row is None:
            row = CommentLabel(community_id=comment.community_id, comment_id=comment.comment_id, tag=name)
            db.add(row)
            decisions[name] = row
        row.label, row.model_label, row.moderator_id, row.decided_at = label, model, moderator_id, now
        return True

    model_tag = bool(getattr(comment, tag)) if tag else False
    if action == "confirm":
        if not model_tag:
            raise ReviewError(f"the model did not tag this comment {tag}: use add for a missed tag")
        changed = decide(tag, True)  # type: ignore[arg-type]
    elif action == "reject":
        if not model_tag:
            raise ReviewError(f"the model did not tag this comment {tag}: clear an added tag instead")
        changed = decide(tag, False)  # type: ignore[arg-type]
    elif action == "add":
        if model_tag:
            raise ReviewError(f"the model already tagged this comment {tag}: confirm it instead")
        changed = decide(tag, True)  # type: ignore[arg-type]
    elif action == "clear":
        changed = tag in decisions
        if changed:
            db.execute(delete(CommentLabel).where(CommentLabel.id == decisions.pop(tag).id))  # type: ignore[arg-type]
    else:  # accept: every tag as it stands now becomes a moderator's label
        changed = False
        for name in TAGS:
            changed = decide(name, bool(before[name])) or changed
    if not changed:
        return False
    db.flush()
    record(
        db,
        actor,
        "comment.accept" if action == "accept" else f"tag.{action}",
        community_id=comment.community_id,
        thread_id=comment.thread_id,
        comment_id=comment.comment_id,
        tag=tag if action != "accept" else None,
        before=before,
        after=final_labels(comment, decisions),
    )
    return True


def set_thread_status(db: Session, *, thread_pk: int, action: str, reason: str, actor: Actor) -> bool:
    """Resolve, dismiss (a reason is required) or reopen a thread; False when it already was so."""
    if action not in THREAD_ACTIONS:
        raise ReviewError(f"unknown action {action!r}")
    reason = reason.strip()
    if action != "reopen" and not reason:
        raise ReviewError(f"give a reason to {action} a thread")
    if len(reason) > MAX_REASON:
        raise ReviewError(f"a reason has at most {MAX_REASON} characters")
    thread = db.scalar(select(Thread).where(Thread.id == thread_pk).with_for_update())
    if thread is None:
        raise NotFound(f"no thread with id {thread_pk}")
    status = THREAD_ACTIONS[action]
    if thread.status == status:
        return False
    before = {"status": thread.status}
    thread.status = status
    if status == "resolved":  # the webhook event commits (or rolls back) with the change
        thread_resolved(db, thread, actor=actor.name, reason=reason or None)
    record(
        db,
        actor,
        f"thread.{action}",
        community_id=thread.community_id,
        thread_id=thread.thread_id,
        before=before,
        after={"status": status},
        reason=reason or None,
    )
    return True
