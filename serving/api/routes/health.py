"""Liveness, readiness and Prometheus metrics (no key needed: meant for the orchestrator)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from serving.api.deps import MetricsDep, RuntimeDep
from serving.api.errors import error_response
from serving.api.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, responses={503: {"description": "The model failed to load."}})
async def healthz(runtime: RuntimeDep) -> JSONResponse:
    """The process is alive (503 only when the model failed to load: restart it)."""
    if runtime.load_error:
        return error_response(503, f"the model failed to load: {runtime.load_error}", kind="model_failed")
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"description": "Still loading the model, or the store cannot take writes."}},
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """200 once the model is loaded and warmed up and the store takes writes; 503 with the reason otherwise."""
    if not runtime.ready:
        detail = f"the model failed to load: {runtime.load_error}" if runtime.load_error else "the model is loading"
        return error_response(503, detail, kind="model_unavailable", headers={"Retry-After": "1"})
    fault = runtime.store_fault
    if fault is not None:
        return error_response(
            503, f"the store cannot take writes: {fault}", kind="store_unavailable", headers={"Retry-After": "1"}
        )
    return JSONResponse({"status": "ready"})


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus text format."""
    return Response(metrics.render(), media_type=metrics.content_type)
