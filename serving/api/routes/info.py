"""The served model: name, version, labels, thresholds, limits."""

from __future__ import annotations

from fastapi import APIRouter

from serving.api.auth import ReadKey
from serving.api.deps import RuntimeDep
from serving.api.schemas import MAX_COMMENTS, MAX_TEXT_CHARS, Info, Limits

router = APIRouter(tags=["model"])


@router.get("/v1/info", response_model=Info, responses={401: {}, 403: {}})
async def info(runtime: RuntimeDep, _: ReadKey) -> Info:
    meta = runtime.meta
    return Info(
        name=meta.name,
        version=meta.version,
        labels=list(meta.labels),
        thresholds=dict(meta.thresholds),
        max_length=meta.max_length,
        limits=Limits(
            max_comments=MAX_COMMENTS,
            max_text_chars=MAX_TEXT_CHARS,
            max_body_bytes=runtime.settings.max_body_bytes,
        ),
    )
