"""POST /v1/score: score up to 256 comments, store them unless `store` is false."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from serving.api.auth import RateLimiterDep, ScoreKey
from serving.api.deps import ScoringDep
from serving.api.errors import ApiError, describe_errors, summarize
from serving.api.schemas import CommentIn, ModelRef, ScoreRequest, ScoreResponse
from serving.api.scoring import key_of
from serving.engine.batching import BatcherStopped, Overloaded

router = APIRouter(tags=["scoring"])

ERRORS = {
    400: {"description": "Invalid JSON."},
    401: {"description": "Missing or unknown API key."},
    403: {"description": "The key lacks the `score` scope."},
    409: {"description": "A comment id already stored with a different text (`detail` names it)."},
    413: {"description": "More than 256 comments, or a body over the size limit."},
    422: {"description": "A field is invalid; `detail` names it and the comment's id."},
    429: {"description": "The key's request or comment rate is exceeded (Retry-After)."},
    503: {"description": "The model is loading, the server is overloaded, or the store is unavailable (Retry-After)."},
}


def reject_duplicates(comments: list[CommentIn]) -> None:
    """The same (community_id, id) twice in one request is a client mistake."""
    first_at: dict[tuple[str, str], int] = {}
    errors = []
    for i, comment in enumerate(comments):
        key = key_of(comment)
        if key in first_at:
            errors.append(
                {
                    "loc": ("body", "comments", i, "id"),
                    "msg": f"duplicates comments[{first_at[key]}] (same id in the same community)",
                    "type": "duplicate_id",
                }
            )
        else:
            first_at[key] = i
    if errors:
        body = {"comments": [c.model_dump() for c in comments]}
        described = describe_errors(errors, body)
        raise ApiError(422, summarize(described), errors=described)


@router.post("/v1/score", response_model=ScoreResponse, responses=ERRORS)  # type: ignore[arg-type]
async def score(
    request: ScoreRequest, service: ScoringDep, principal: ScoreKey, limiter: RateLimiterDep, http: Request
) -> ScoreResponse:
    """Scores per tag are calibrated probabilities; `tags` are those at or above the tag's threshold."""
    reject_duplicates(request.comments)
    service.check_ready()
    await limiter.hit_comments(principal, len(request.comments))
    try:
        data = await service.score(request.comments, store=request.store)
    except Overloaded as exc:
        raise HTTPException(503, f"server busy: {exc}; retry shortly", headers={"Retry-After": "1"}) from exc
    except BatcherStopped as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from exc
    return ScoreResponse(
        data=data, count=len(data), model=ModelRef(name=service.model_name, version=service.model_version)
    )
