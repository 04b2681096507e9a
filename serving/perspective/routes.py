"""Perspective-compatible routes: comments:analyze, comments:suggestscore and the discovery document.

    POST /v1alpha1/comments:analyze?key=KEY    (also /comments:analyze, for clients configured
    POST /v1alpha1/comments:suggestscore?key=KEY        without the version segment)
    GET  /$discovery/rest?version=v1alpha1

Same server, keys (`score` scope) and model as /v1/score. A comment analyzed without
`doNotStore: true` is stored like one sent to /v1/score, in community `communityId`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Final

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serving.api.auth import RateLimiterDep
from serving.api.deps import RuntimeDep, ScoringDep
from serving.api.schemas import CommentIn
from serving.engine.batching import BatcherStopped, Item
from serving.perspective.attributes import ATTRIBUTES, is_perspective_only
from serving.perspective.auth import PerspectiveKey
from serving.perspective.discovery import VERSION, discovery_document
from serving.perspective.errors import GOOGLE_ERRORS_OPENAPI, GoogleError, GoogleErrorRoute, PerspectiveError, invalid
from serving.perspective.schemas import (
    AnalyzeCommentRequest,
    AnalyzeCommentResponse,
    AttributeScores,
    Score,
    SpanScore,
    SuggestCommentScoreRequest,
    SuggestCommentScoreResponse,
    TextEntry,
)
from serving.perspective.spans import sentence_spans, utf16_length
from serving.storage.perspective import NewSuggestion, add_suggestion

router = APIRouter(route_class=GoogleErrorRoute, tags=["perspective"])

MAX_TEXT_BYTES = 20_480  # Perspective's limit: 20 KB of UTF-8
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$")
PROBABILITY: Final = "PROBABILITY"

ERRORS = {
    400: {
        "description": "Invalid request, in Google's error envelope with a commentanalyzer errorType.",
        "model": GoogleError,
    },
    401: {"description": "Missing or unknown API key."},
    403: {"description": "The key lacks the `score` scope."},
    429: {"description": "A rate limit applies: RATE_LIMIT_EXCEEDED, with Retry-After."},
    503: {"description": "The model is loading or the server is busy (Retry-After)."},
}


@dataclass(frozen=True)
class Wanted:
    name: str
    tag: str
    threshold: float | None


def comment_text(comment: TextEntry | None) -> str:
    if comment is None or comment.text is None or not comment.text.strip():
        raise invalid("Comment must be non-empty.", "COMMENT_EMPTY")
    if comment.type == "HTML":
        raise invalid("comment.type HTML is not supported: send PLAIN_TEXT (strip the markup first).")
    if len(comment.text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise invalid(f"Comment text too long. (at most {MAX_TEXT_BYTES} bytes of UTF-8)", "COMMENT_TOO_LONG")
    return comment.text


def languages_of(languages: list[str] | None) -> list[str]:
    out = []
    for code in languages or []:
        if not LANGUAGE.match(code):
            raise invalid(f"Invalid value at 'languages': {code!r} is not an ISO 639 or BCP-47 language code.")
        out.append(code)
    return out


def primary(code: str) -> str:
    return re.split(r"[-_]", code, maxsplit=1)[0].lower()


def wanted_attributes(request: AnalyzeCommentRequest, languages: list[str]) -> list[Wanted]:
    requested = request.requested_attributes or {}
    if not requested:
        raise invalid("No requested attributes: name at least one in requestedAttributes.", "NO_REQUESTED_ATTRIBUTES")
    drop = bool(request.drop_unsupported_attributes)
    out = []
    for name, params in requested.items():
        tag = ATTRIBUTES.get(name)
        if tag is None:
            if drop:
                continue
            served = ", ".join(sorted(ATTRIBUTES))
            if is_perspective_only(name):
                shown = ",".join(languages) or "any"
                raise invalid(
                    f"Attribute {name} does not support request languages: {shown} "
                    f"(this server scores {served}; set dropUnsupportedAttributes to leave it out)",
                    "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE",
                    languageNotSupportedByAttributeError={"detectedLanguages": languages, "attribute": name},
                )
            raise invalid(f"Unknown requested attribute: {name} (this server scores {served})")
        if params.score_type not in (None, "SCORE_TYPE_UNSPECIFIED", PROBABILITY):
            raise invalid(f"scoreType {params.score_type} is not supported for {name}: only {PROBABILITY} is served.")
        threshold = params.score_threshold
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise invalid(f"scoreThreshold of {name} must be between 0 and 1, got {threshold}.")
        out.append(Wanted(name, tag, threshold))
    return out


def stored_comment_id(request: AnalyzeCommentRequest, text: str) -> str:
    """Perspective requests carry no comment id: one derived from what identifies the call, so a
    retried request is stored once."""
    key = json.dumps([request.client_token, request.session_id, text], ensure_ascii=False)
    return "perspective:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def _score(value: float) -> Score:
    return Score(value=value, type=PROBABILITY)


@router.post(
    f"/{VERSION}/comments:analyze",
    openapi_extra=GOOGLE_ERRORS_OPENAPI,
    response_model=AnalyzeCommentResponse,
    response_model_exclude_none=True,
    responses=ERRORS,  # type: ignore[arg-type]
)
@router.post(
    "/comments:analyze",
    response_model=AnalyzeCommentResponse,
    response_model_exclude_none=True,
    include_in_schema=False,
)
async def analyze(
    request: AnalyzeCommentRequest,
    service: ScoringDep,
    runtime: RuntimeDep,
    principal: PerspectiveKey,
    limiter: RateLimiterDep,
) -> AnalyzeCommentResponse:
    """Perspective's AnalyzeComment: TOXICITY is our hostile probability, CURIOSITY_EXPERIMENTAL our
    curious one; WELCOMING, CURIOUS and HOSTILE are the tags themselves."""
    text = comment_text(request.comment)
    languages = languages_of(request.languages)
    wanted = wanted_attributes(request, languages)
    service.check_ready()
    await limiter.hit_comments(principal, 1)
    batcher = runtime.batcher
    if batcher is None:
        raise BatcherStopped("the model is not ready")
    hint = primary(languages[0]) if languages else None
    comment = CommentIn.model_construct(
        id=stored_comment_id(request, text),
        text=text,
        community_id=request.community_id or None,
        thread_id=None,
        author_id=None,
        parent_id=None,
        created_at=None,
        lang=hint,
    )
    spans = sentence_spans(text) if request.span_annotations and wanted else []
    whole_call = service.score([comment], store=not request.do_not_store)
    if len(spans) > 1:
        scored, span_results = await asyncio.gather(
            whole_call, batcher.score([Item(s.text, hint or "und") for s in spans])
        )
        per_span = [r.scores for r in span_results]
    else:
        scored = await whole_call
        per_span = []
    result = scored[0]
    detected = result.lang if hint is None else await to_thread.run_sync(runtime.detect_language, text)
    if not per_span:  # one span: the whole text (Perspective's answer without span annotations)
        spans, per_span = [], [result.scores]
        bounds = [(0, utf16_length(text))]
    else:
        bounds = [(s.begin, s.end) for s in spans]
    attribute_scores: dict[str, AttributeScores] = {}
    for want in wanted:
        value = result.scores[want.tag]
        if want.threshold is not None and value < want.threshold:
            continue
        span_scores = [
            SpanScore(begin=b, end=e, score=_score(s[want.tag]))
            for (b, e), s in zip(bounds, per_span, strict=True)
            if want.threshold is None or s[want.tag] >= want.threshold
        ]
        attribute_scores[want.name] = AttributeScores(summary_score=_score(value), span_scores=span_scores or None)
    return AnalyzeCommentResponse(
        attribute_scores=attribute_scores or None,
        languages=languages or [detected],
        detected_languages=[detected],
        client_token=request.client_token,
    )


def suggested_labels(request: SuggestCommentScoreRequest) -> dict[str, int]:
    scores = request.attribute_scores or {}
    if not scores:
        raise invalid("attributeScores must not be empty.")
    labels: dict[str, int] = {}
    for name, given in scores.items():
        tag = ATTRIBUTES.get(name)
        summary = given.summary_score
        if summary is None or summary.value is None:
            if given.span_scores:
                raise invalid(f"attributeScores.{name}: span-only suggestions are not kept; give summaryScore.value.")
            raise invalid(f"attributeScores.{name}.summaryScore.value is required.")
        if not 0.0 <= summary.value <= 1.0:
            raise invalid(f"attributeScores.{name}.summaryScore.value must be between 0 and 1, got {summary.value}.")
        if tag is None:
            continue  # kept in the stored request, not a label of ours
        label = int(summary.value >= 0.5)
        if labels.get(tag, label) != label:
            raise invalid(f"attributeScores disagree on {tag}: {name} says {label}, another attribute the opposite.")
        labels[tag] = label
    if not labels:
        raise invalid(f"None of the suggested attributes is one this server learns: give one of {sorted(ATTRIBUTES)}.")
    return labels


@router.post(
    f"/{VERSION}/comments:suggestscore",
    openapi_extra=GOOGLE_ERRORS_OPENAPI,
    response_model=SuggestCommentScoreResponse,
    response_model_exclude_none=True,
    responses=ERRORS,  # type: ignore[arg-type]
)
@router.post(
    "/comments:suggestscore",
    response_model=SuggestCommentScoreResponse,
    response_model_exclude_none=True,
    include_in_schema=False,
)
async def suggestscore(
    request: SuggestCommentScoreRequest, runtime: RuntimeDep, principal: PerspectiveKey
) -> SuggestCommentScoreResponse:
    """Keep suggested scores as a review (source perspective-suggest) for `belong feedback export`.
    Values of 0.5 and above suggest the tag, lower ones its absence; unmapped attributes are kept
    with the request but label nothing."""
    text = comment_text(request.comment)
    languages = languages_of(request.languages)
    labels = suggested_labels(request)
    detected = await to_thread.run_sync(runtime.detect_language, text)
    suggestion = NewSuggestion(
        community_id=request.community_id or "",
        text=text,
        lang=primary(languages[0]) if languages else (detected if detected != "und" else None),
        labels=labels,
        attributes={k: v.model_dump(exclude_none=True) for k, v in (request.attribute_scores or {}).items()},
        client_token=request.client_token,
        session_id=request.session_id,
        key_name=principal.name,
    )

    def save() -> None:
        with runtime.sessions.begin() as session:
            add_suggestion(session, suggestion)

    await to_thread.run_sync(save)
    return SuggestCommentScoreResponse(
        client_token=request.client_token, detected_languages=[detected], requested_languages=languages or None
    )


@router.get(
    "/$discovery/rest",
    tags=["perspective"],
    openapi_extra=GOOGLE_ERRORS_OPENAPI,
    responses={404: {"description": "No discovery document for that version (only v1alpha1)."}},
)
async def discovery(request: Request, version: str = VERSION) -> JSONResponse:
    """The Comment Analyzer discovery document with `rootUrl` set to this server."""
    if version != VERSION:
        raise PerspectiveError(404, f"Discovery document not found for API service: commentanalyzer {version}")
    return JSONResponse(discovery_document(str(request.base_url)))
