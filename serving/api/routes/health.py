"""Liveness, readiness and Prometheus metrics (no key needed: meant for the orchestrator)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from serving.api.deps import MetricsDep, RuntimeDep
from serving.api.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, responses={503: {"description": "The model failed to load."}})
async def healthz(runtime: RuntimeDep) -> JSONResponse:
    """The process is alive (503 only when the model failed to load: restart it)."""
    if runtime.load_error:
        return JSONResponse({"detail": f"the model failed to load: {runtime.load_error}"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/readyz", response_model=Health, responses={503: {"description": "Still loading the model."}})
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """200 once the model is loaded and warmed up; 503 before."""
    if runtime.ready:
        return JSONResponse({"status": "ready"})
    detail = f"the model failed to load: {runtime.load_error}" if runtime.load_error else "the model is loading"
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus text format."""
    return Response(metrics.render(), media_type=metrics.content_type)
