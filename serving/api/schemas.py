"""Request and response schemas: the API contract, limits included (they show in /docs).

Inputs forbid unknown fields and do not coerce types (an id must be a JSON string, `store` a JSON
boolean). Lists are answered as `{data: [...], count: N}`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr

from serving.labels import Scope, ThreadStatus
from serving.timefmt import parse_rfc3339

MAX_COMMENTS = 256
MAX_TEXT_CHARS = 10_000
MAX_ID_CHARS = 200

Id = Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_CHARS)]
Rfc3339 = Annotated[datetime, BeforeValidator(parse_rfc3339)]
Lang = Annotated[StrictStr, Field(min_length=2, max_length=16, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$")]
Bucket = Literal["hour", "day"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- scoring ---


class CommentIn(Strict):
    id: Id = Field(description="Your id for the comment; unique within its community.")
    text: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    thread_id: Id | None = None
    community_id: Id | None = None
    author_id: Id | None = None
    parent_id: Id | None = Field(default=None, description="The id of the comment this one replies to.")
    created_at: Rfc3339 | None = Field(default=None, description="RFC 3339 with an offset; default: now.")
    lang: Lang | None = Field(default=None, description="Language hint (ISO 639); detected when absent.")


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


class KeyCreate(Strict):
    name: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    scopes: list[Scope] = Field(min_length=1, max_length=3)


class KeyCreated(BaseModel):
    id: int
    name: str
    key: str = Field(description="Shown once: only its hash is stored.")
    scopes: list[str]


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class KeyList(BaseModel):
    data: list[KeyOut]
    count: int


class Health(BaseModel):
    status: str
