"""Score suggestions sent to the Perspective-compatible `comments:suggestscore`, kept as reviews
that `belong feedback export` writes as training rows (source "perspective-suggest").

Usage (inside a session):
    add_suggestion(session, NewSuggestion(text="...", labels={"hostile": 1}, ...))
    for row in suggestion_rows(session, since=None): ...

A suggestion labels only the tags its attributes map to; the others are unknown (null in the
export, masked in training), never 0.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from serving.labels import TAGS
from serving.storage.models import ID_LENGTH, Base
from serving.timefmt import utcnow

SOURCE = "perspective-suggest"


class SuggestedScore(Base):
    __tablename__ = "suggested_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[str] = mapped_column(String(ID_LENGTH))  # "" when none was given
    text: Mapped[str] = mapped_column(Text)
    lang: Mapped[str | None] = mapped_column(String(16), nullable=True)
    labels: Mapped[str] = mapped_column(Text)  # JSON {tag: 0|1} for the tags suggested
    attributes: Mapped[str] = mapped_column(Text)  # JSON: the request's attributeScores, as sent
    client_token: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    key_name: Mapped[str] = mapped_column(String(100))  # the API key that sent it
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_suggested_scores_created_at", "created_at"),)


@dataclass(frozen=True)
class NewSuggestion:
    community_id: str
    text: str
    lang: str | None
    labels: dict[str, int]
    attributes: dict[str, Any]
    client_token: str | None
    session_id: str | None
    key_name: str
    created_at: datetime = field(default_factory=utcnow)


def add_suggestion(session: Session, new: NewSuggestion) -> SuggestedScore:
    row = SuggestedScore(
        community_id=new.community_id,
        text=new.text,
        lang=new.lang,
        labels=json.dumps(new.labels, sort_keys=True),
        attributes=json.dumps(new.attributes, sort_keys=True, ensure_ascii=False),
        client_token=new.client_token,
        session_id=new.session_id,
        key_name=new.key_name,
        created_at=new.created_at,
    )
    session.add(row)
    session.flush()
    return row


def suggestion_id(row: SuggestedScore) -> str:
    """Stable across exports: the same suggestion always gets the same id."""
    digest = hashlib.sha256(f"{row.community_id}\x00{row.text}".encode()).hexdigest()[:16]
    return f"suggest-{row.id}-{digest}"


def suggestion_rows(session: Session, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Training rows in the seed schema (unknown tags null), oldest first."""
    query = select(SuggestedScore).order_by(SuggestedScore.created_at, SuggestedScore.id)
    if since is not None:
        query = query.where(SuggestedScore.created_at >= since)
    for row in session.scalars(query):
        labels = json.loads(row.labels)
        yield {
            "id": suggestion_id(row),
            "text": row.text,
            **({"lang": row.lang} if row.lang else {}),
            **{tag: labels.get(tag) for tag in TAGS},
            "source": SOURCE,
            "reviewed_at": row.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reviewed_tags": [tag for tag in TAGS if tag in labels],
            "suggested_by": row.key_name,
            "community_id": row.community_id or None,
            "client_token": row.client_token,
            "attributes": json.loads(row.attributes),
        }
