"""POST /v1/integrations/coral: Coral's external moderation phase, signed with X-Coral-Signature.

Configure in Coral (Admin > Configure > Moderation > Phases): callback URL
`https://HOST/v1/integrations/coral`, then give its signing secret to
`belong integrations coral add NAME`. Unsigned or wrongly signed calls get 401 and change nothing.
"""

from __future__ import annotations

import time
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from serving.api.deps import RuntimeDep, ScoringDep
from serving.api.errors import describe_errors, summarize
from serving.api.schemas import CommentIn
from serving.engine.batching import BatcherStopped, Overloaded
from serving.integrations.coral import CoralRequest, comment_key, community_of, decide, verify
from serving.integrations.html import html_to_text
from serving.runtime import Runtime
from serving.storage.integrations import ActiveSecret, active_coral_secrets
from serving.storage.secrets import SecretBox, load_secret_box

router = APIRouter(tags=["integrations"])


class SecretCache:
    """Active Coral secrets, decrypted, re-read at most every `seconds` (revocations show within that)."""

    def __init__(self, runtime: Runtime, box: SecretBox, seconds: float) -> None:
        self.runtime, self.box, self.seconds = runtime, box, seconds
        self._value: list[ActiveSecret] = []
        self._until = 0.0

    def _load(self) -> list[ActiveSecret]:
        with self.runtime.sessions() as session:
            return active_coral_secrets(session, self.box)

    async def get(self) -> list[ActiveSecret]:
        now = time.monotonic()
        if now >= self._until:
            self._value = await to_thread.run_sync(self._load)
            self._until = now + self.seconds
        return self._value


def secret_cache(request: Request, runtime: Runtime) -> SecretCache:
    cache: SecretCache | None = getattr(request.app.state, "coral_secrets", None)
    if cache is None:
        cache = SecretCache(runtime, load_secret_box(), runtime.settings.key_cache_seconds)
        request.app.state.coral_secrets = cache
    return cache


ERRORS = {
    401: {"description": "X-Coral-Signature missing, or signed with no active secret."},
    422: {"description": "The body is not Coral's external moderation request; `detail` names the field."},
    503: {"description": "The model is loading or the server is busy (Coral then skips the phase)."},
}


@router.post(
    "/v1/integrations/coral",
    status_code=204,
    responses={200: {"description": "Coral's moderation response: FLAG and maybe SYSTEM_WITHHELD."}, **ERRORS},  # type: ignore[dict-item]
)
async def coral_moderation(
    request: Request,
    runtime: RuntimeDep,
    service: ScoringDep,
    x_coral_signature: Annotated[str | None, Header()] = None,
) -> Response:
    """Score and store the comment (story as thread, parent as parent, author as author) and answer
    by the integration's policy: hostile -> FLAG COMMENT_DETECTED_TOXIC (+ SYSTEM_WITHHELD); else 204."""
    body = await request.body()
    if not x_coral_signature:
        raise HTTPException(401, "missing X-Coral-Signature header: configure a signing secret in Coral")
    signed_by = verify(x_coral_signature, body, await secret_cache(request, runtime).get())
    if signed_by is None:
        raise HTTPException(401, "X-Coral-Signature matches no active secret (see `belong integrations coral list`)")
    try:
        coral = CoralRequest.model_validate_json(body)
    except ValidationError as exc:
        raise HTTPException(422, summarize(describe_errors([dict(e) for e in exc.errors(include_url=False)]))) from exc
    text = html_to_text(coral.comment.body)
    if not text:
        return Response(status_code=204)  # nothing to score (an image or an embed alone)
    service.check_ready()
    comment = CommentIn.model_construct(
        id=comment_key(coral),
        text=text,
        community_id=community_of(coral, signed_by.policy),
        thread_id=coral.story.id,
        author_id=coral.author.id,
        parent_id=coral.comment.parentID,
        created_at=None,
        lang=None,
    )
    try:
        scored = (await service.score([comment], store=True))[0]
    except (Overloaded, BatcherStopped) as exc:
        raise HTTPException(503, f"server busy: {exc}", headers={"Retry-After": "1"}) from exc
    decision = decide(signed_by.policy, coral, scored.scores["hostile"], float(runtime.meta.thresholds["hostile"]))
    if decision is None:
        return Response(status_code=204)
    return JSONResponse(decision)
