"""Request and response schemas: the API contract, limits included (they show in /docs).

Inputs forbid unknown fields and do not coerce types (an id must be a JSON string, `store` a JSON
boolean). Lists are answered as `{data: [...], count: N}`.

- **Ids** (comment, thread, community, author, parent): 1 to 200 characters, any Unicode except
  control characters (U+0000-U+001F, U+007F-U+009F) and lone surrogates, and not "." or ".." (a path
  segment clients rewrite). They are kept exactly as sent: no Unicode normalisation, so "é" (NFC)
  and "é" (NFD) are two ids. In a URL path, percent-encode the id as one segment
  (`quote(id, safe="")`: "a/b" -> a%2Fb); routes accept "/" inside ids, so every stored id reads back.
- **Texts**: 1 to 10,000 characters, no NUL and no lone surrogates (neither can be stored).
- **Times**: RFC 3339 with an offset, from 1970-01-01T00:00:00Z up to (not including)
  2100-01-01T00:00:00Z, and normalised to UTC.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr

from serving.engine.batching import Scored
from serving.labels import Scope, ThreadStatus
from serving.storage.comments import NewComment
from serving.timefmt import parse_rfc3339, to_db

MAX_COMMENTS = 256
MAX_TEXT_CHARS = 10_000
MAX_ID_CHARS = 200
MAX_OFFSET = 1_000_000_000
MAX_KEY_ID = 2**31 - 1  # an INTEGER primary key on every backend
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)  # exclusive


def _bad_characters(value: str, *, controls: bool) -> str | None:
    """What makes `value` unstorable or unsafe to echo, or None."""
    for position, char in enumerate(value):
        category = unicodedata.category(char)
        if category == "Cs":
            return f"a lone surrogate (U+{ord(char):04X}) at character {position}: send valid Unicode"
        if char == "\x00":
            return f"a NUL character at character {position}"
        if controls and category == "Cc":
            return f"a control character (U+{ord(char):04X}) at character {position}"
    return None


def check_id(value: str) -> str:
    bad = _bad_characters(value, controls=True)
    if bad:
        raise ValueError(f"ids cannot contain {bad}")
    if value in (".", ".."):
        raise ValueError(f"{value!r} cannot be an id (it is a relative path segment)")
    return value


def check_text(value: str) -> str:
    bad = _bad_characters(value, controls=False)
    if bad:
        raise ValueError(f"text cannot contain {bad}")
    return value


def check_time(value: datetime) -> datetime:
    """Within [1970-01-01Z, 2100-01-01Z), as UTC. Compares before converting: no overflow at the edges."""
    if value.tzinfo is None:
        raise ValueError("a date-time needs an offset (Z or +hh:mm)")
    if not EARLIEST <= value < LATEST:
        raise ValueError("date-times must be from 1970-01-01T00:00:00Z up to (not including) 2100-01-01T00:00:00Z")
    return value.astimezone(timezone.utc)


def parse_time(value: str) -> datetime:
    """An RFC 3339 string within the accepted range, as UTC; ValueError says what is wrong."""
    return check_time(parse_rfc3339(value))


Id = Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(check_id)]
Text = Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(check_text)]
Rfc3339 = Annotated[datetime, BeforeValidator(parse_rfc3339), AfterValidator(check_time)]
Lang = Annotated[StrictStr, Field(min_length=2, max_length=16, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$")]
Bucket = Literal["hour", "day"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- scoring ---


class CommentIn(Strict):
    id: Id = Field(description="Your id for the comment; unique within its community.")
    text: Text
    thread_id: Id | None = None
    community_id: Id | None = None
    author_id: Id | None = None
    parent_id: Id | None = Field(default=None, description="The id of the comment this one replies to.")
    created_at: Rfc3339 | None = Field(default=None, description="RFC 3339 with an offset; default: now.")
    lang: Lang | None = Field(default=None, description="Language hint (ISO 639); detected when absent.")

    def stored_row(self, scored: Scored, now: datetime) -> NewComment:
        """The row the store keeps for this comment once scored (/v1/score, streams, the consumer)."""
        return NewComment(
            community_id=self.community_id or "",
            comment_id=self.id,
            thread_id=self.thread_id,
            author_id=self.author_id,
            parent_id=self.parent_id,
            text=self.text,
            lang=scored.lang,
            created_at=to_db(self.created_at) if self.created_at else now,
            scores=scored.scores,
            tags=scored.tags,
            truncated=scored.truncated,
        )


class ScoreRequest(Strict):
    comments: list[CommentIn] = Field(min_length=1, max_length=MAX_COMMENTS)
    store: StrictBool = Field(default=True, description="false: score only, persist nothing.")


class ScoredComment(BaseModel):
    id: str
    scores: dict[str, float]
    tags: list[str]
    lang: str
    truncated: bool = Field(description="The text was longer than the model's window; its start was scored.")


class ModelRef(BaseModel):
    name: str
    version: str


class ScoreResponse(BaseModel):
    data: list[ScoredComment]
    count: int
    model: ModelRef


class StreamErrorBody(BaseModel):
    status: int
    detail: str


class StreamError(BaseModel):
    line: int
    id: str | None = None
    error: StreamErrorBody


class StreamScored(ScoredComment):
    line: int


# --- reading ---


class StoredComment(BaseModel):
    id: str
    community_id: str | None
    thread_id: str | None
    author_id: str | None
    parent_id: str | None
    text: str
    lang: str
    created_at: datetime
    received_at: datetime
    scores: dict[str, float]
    tags: list[str]
    truncated: bool
    model: ModelRef


class ThreadComments(BaseModel):
    thread_id: str
    data: list[StoredComment]
    count: int = Field(description="All stored comments of the thread (data holds one page).")


class TagStats(BaseModel):
    count: int = Field(description="Comments in the period.")
    tags: dict[str, int] = Field(description="Comments carrying each tag.")
    rates: dict[str, float | None] = Field(description="tags / count (null when count is 0).")
    belonging_index: float | None = Field(
        description="share tagged welcoming or curious minus share tagged hostile, in [-1, 1]"
    )


class BucketStats(TagStats):
    start: datetime
    end: datetime


class NewcomerStats(BaseModel):
    newcomers: int = Field(description="Authors whose first comment in the community falls in the period.")
    answered: int = Field(description="Newcomers whose first comment got a reply within 24 h.")
    replies: int = Field(description="Replies (by others, within 24 h) to those first comments.")
    tags: dict[str, int]
    rates: dict[str, float | None] = Field(description="Share of those replies carrying each tag.")


class BelongingReport(BaseModel):
    community_id: str
    since: datetime
    until: datetime
    bucket: Bucket
    data: list[BucketStats]
    count: int
    totals: TagStats
    newcomers: NewcomerStats


class FlagLimitsOut(BaseModel):
    hostile_count: int
    hostile_share: float
    min_comments: int


class FlaggedThread(BaseModel):
    community_id: str | None
    thread_id: str
    status: ThreadStatus
    comment_count: int
    welcoming_count: int
    curious_count: int
    hostile_count: int
    hostile_share: float
    first_at: datetime
    last_at: datetime
    last_hostile_at: datetime | None
    reasons: list[str]


class FlagsPage(BaseModel):
    data: list[FlaggedThread]
    count: int = Field(description="All flagged threads matching the filters (data holds one page).")
    limits: FlagLimitsOut


# --- info and keys ---


class Limits(BaseModel):
    max_comments: int
    max_text_chars: int
    max_body_bytes: int


class Info(BaseModel):
    name: str
    version: str
    labels: list[str]
    thresholds: dict[str, float]
    max_length: int = Field(description="Model window in tokens; longer texts are truncated.")
    limits: Limits


class RateLimits(Strict):
    requests_per_second: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] | None = Field(
        default=None, description="Requests per second (1 s window); null: the server default."
    )
    comments_per_second: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] | None = Field(
        default=None, description="Comments per second (averaged over 10 s); null: the server default."
    )


class KeyCreate(Strict):
    name: Annotated[StrictStr, Field(min_length=1, max_length=100), AfterValidator(check_id)]
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    rate_limits: RateLimits | None = Field(default=None, description="This key's own rate limits.")


class KeyCreated(BaseModel):
    id: int
    name: str
    key: str = Field(description="Shown once: only its hash is stored.")
    scopes: list[str]
    rate_limits: RateLimits


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    rate_limits: RateLimits = Field(description="The key's own limits (null: the server default).")


class KeyList(BaseModel):
    data: list[KeyOut]
    count: int


class Health(BaseModel):
    status: str
