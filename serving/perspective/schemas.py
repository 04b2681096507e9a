"""Request and response bodies of the Perspective-compatible routes, as Perspective defines them.

Field names are lowerCamelCase, and the proto field names (snake_case) are accepted too, as
Google's JSON parser accepts both. Unknown fields are refused, as Google refuses them. Values
are checked in the route (errors there carry Perspective's errorType); here only the types.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, model_validator
from pydantic.alias_generators import to_camel

from serving.storage.models import ID_LENGTH

ScoreType = Literal["SCORE_TYPE_UNSPECIFIED", "PROBABILITY", "STD_DEV_SCORE", "PERCENTILE", "RAW"]
TextType = Literal["TEXT_TYPE_UNSPECIFIED", "PLAIN_TEXT", "HTML"]
Token = StrictStr


class ProtoJson(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )


class TextEntry(ProtoJson):
    text: StrictStr | None = None
    type: TextType | None = None


class ArticleAndParentComment(ProtoJson):
    article: TextEntry | None = None
    parent_comment: TextEntry | None = None


class Context(ProtoJson):
    entries: list[TextEntry] | None = None
    article_and_parent_comment: ArticleAndParentComment | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Context:
        if self.entries is not None and self.article_and_parent_comment is not None:
            raise ValueError("give only one of context.entries and context.articleAndParentComment")
        return self


class AttributeParameters(ProtoJson):
    score_type: ScoreType | None = None
    score_threshold: float | None = None


class AnalyzeCommentRequest(ProtoJson):
    comment: TextEntry | None = None
    context: Context | None = None
    requested_attributes: dict[str, AttributeParameters] | None = None
    span_annotations: StrictBool | None = None
    languages: list[StrictStr] | None = None
    do_not_store: StrictBool | None = None
    client_token: Token | None = Field(default=None, max_length=ID_LENGTH)
    session_id: Token | None = Field(default=None, max_length=ID_LENGTH)
    community_id: Token | None = Field(default=None, max_length=ID_LENGTH)
    drop_unsupported_attributes: StrictBool | None = None


class Score(ProtoJson):
    value: float | None = None
    type: ScoreType | None = None


class SpanScore(ProtoJson):
    begin: int | None = None
    end: int | None = None
    score: Score | None = None


class AttributeScores(ProtoJson):
    summary_score: Score | None = None
    span_scores: list[SpanScore] | None = None


class AnalyzeCommentResponse(ProtoJson):
    attribute_scores: dict[str, AttributeScores] | None = None
    languages: list[str] | None = None
    detected_languages: list[str] | None = None
    client_token: str | None = None


class SuggestCommentScoreRequest(ProtoJson):
    comment: TextEntry | None = None
    context: Context | None = None
    attribute_scores: dict[str, AttributeScores] | None = None
    languages: list[StrictStr] | None = None
    community_id: Token | None = Field(default=None, max_length=ID_LENGTH)
    client_token: Token | None = Field(default=None, max_length=ID_LENGTH)
    session_id: Token | None = Field(default=None, max_length=ID_LENGTH)


class SuggestCommentScoreResponse(ProtoJson):
    client_token: str | None = None
    detected_languages: list[str] | None = None
    requested_languages: list[str] | None = None
