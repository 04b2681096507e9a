"""The dependencies routes and pages declare: the runtime, database sessions, metrics, scoring.

Usage in a route:
    def handler(db: DbSession, runtime: RuntimeDep) -> ...        # read-only session, closed after
    def handler(db: DbTransaction) -> ...                          # committed before the answer is sent

Database work is blocking, so routes that use a session are plain `def`s (FastAPI runs them on its
thread pool). Sessions end with the route function (`scope="function"`), before the response is
sent: a client that got 201 can read what was written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from serving.api.metrics import Metrics
from serving.api.scoring import ScoringService
from serving.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def get_db(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.sessions() as session:
        yield session


def get_transaction(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.sessions.begin() as session:
        yield session


DbSession = Annotated[Session, Depends(get_db, scope="function")]
DbTransaction = Annotated[Session, Depends(get_transaction, scope="function")]


async def get_scoring(request: Request) -> ScoringService:
    service: ScoringService = request.app.state.scoring
    return service


ScoringDep = Annotated[ScoringService, Depends(get_scoring)]
