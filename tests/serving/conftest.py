"""Serving fixtures: a fake predictor with the real Predictor's interface, apps on fresh SQLite
files (copied from one migrated template), API keys, and a PostgreSQL URL when one is configured."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from serving.api.app import create_app
from serving.engine.predictor import Encoded, Prediction
from serving.settings import Settings
from serving.storage.db import make_engine, make_sessionmaker, upgrade
from serving.storage.keys import create_key

LABELS = ["welcoming", "curious", "hostile"]
THRESHOLDS = {"welcoming": 0.5, "curious": 0.5, "hostile": 0.5}


class FakePredictor:
    """Rules instead of a model: 'welcome' -> welcoming, '?' -> curious, 'go back'/'idiot' -> hostile.

    Tokens are characters, the window is 64 of them. Records every batch it is given.
    """

    labels = LABELS
    max_length = 64
    name = "fake"
    version = "0.1"

    def __init__(self, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.bundle = SimpleNamespace(
            meta=SimpleNamespace(
                name=self.name,
                version=self.version,
                labels=LABELS,
                thresholds=THRESHOLDS,
                max_length=self.max_length,
            )
        )
        self.delay = delay
        self.fail_on = fail_on
        self.batches: list[list[int]] = []  # token lengths of each batch, in order
        self.gate = threading.Event()
        self.gate.set()

    def encode(self, texts: Sequence[str]) -> list[Encoded]:
        return [Encoded(ids=[ord(c) for c in t[: self.max_length]], truncated=len(t) > self.max_length) for t in texts]

    def predict_encoded(self, encoded: Sequence[Encoded], batch_size: int = 32) -> list[Prediction]:
        self.gate.wait(10)
        self.batches.append([len(e.ids) for e in encoded])
        if self.delay:
            time.sleep(self.delay)
        out = []
        for e in encoded:
            seen = "".join(chr(i) for i in e.ids).lower()
            if self.fail_on and self.fail_on in seen:
                raise RuntimeError("model exploded")
            scores = {
                "welcoming": 0.9 if "welcome" in seen else 0.1,
                "curious": 0.8 if "?" in seen else 0.2,
                "hostile": 0.95 if ("go back" in seen or "idiot" in seen) else 0.05,
            }
            tags = [label for label in LABELS if scores[label] >= THRESHOLDS[label]]
            out.append(Prediction(scores=scores, tags=tags, truncated=e.truncated))
        return out


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test copies it instead of migrating again."""
    path = tmp_path_factory.mktemp("template") / "belonging.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def db_url(tmp_path: Path, template_db: Path) -> str:
    target = tmp_path / "var" / "belonging.db"
    target.parent.mkdir()
    shutil.copy(template_db, target)
    return f"sqlite:///{target}"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, bundle=tmp_path / "no-bundle", max_wait_ms=2)


@pytest.fixture
def predictor() -> FakePredictor:
    return FakePredictor()


def wait_ready(client: TestClient, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.01)
    raise AssertionError(f"not ready after {timeout}s: {client.get('/readyz').json()}")


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """Build, start and wait for an app; everything is shut down at the end of the test."""
    clients: list[TestClient] = []

    def make(
        settings: Settings, predictor: object | None = None, *, ready: bool = True, **kwargs: object
    ) -> TestClient:
        client = TestClient(create_app(settings, predictor=predictor), **kwargs)  # type: ignore[arg-type]
        client.__enter__()
        clients.append(client)
        if ready:
            wait_ready(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient], settings: Settings, predictor: FakePredictor) -> TestClient:
    return make_client(settings, predictor)


@pytest.fixture
def keys(db_url: str) -> SimpleNamespace:
    """Keys with one scope each, plus an admin key."""
    engine = make_engine(db_url)
    made = {}
    with make_sessionmaker(engine).begin() as session:
        for name, scopes in {
            "score": ["score"],
            "read": ["read"],
            "admin": ["admin"],
            "both": ["score", "read"],
        }.items():
            made[name] = create_key(session, name=name, scopes=scopes).token
    engine.dispose()
    return SimpleNamespace(**made)


# --- PostgreSQL ---

POSTGRES_URL = os.environ.get("BELONG_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A freshly migrated PostgreSQL database (its public schema is recreated once per session)."""
    if not POSTGRES_URL:
        pytest.skip('BELONG_TEST_POSTGRES_URL is not set (eval "$(bash .ci/postgres.sh)")')
    engine = make_engine(POSTGRES_URL)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    engine.dispose()
    return POSTGRES_URL


def truncate_all(url: str) -> None:
    """Empty the serving tables (DELETE, not TRUNCATE: other tables may reference them)."""
    engine = make_engine(url)
    with engine.begin() as connection:
        for table in ("comments", "threads", "api_keys"):
            connection.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, db_url: str) -> str:
    """The storage tests run on both backends."""
    if request.param == "sqlite":
        return db_url
    url = request.getfixturevalue("postgres_url")
    truncate_all(url)
    return url
