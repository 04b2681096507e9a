"""Webhook fixtures: a key file of the test's own, endpoints in the test database."""

from __future__ import annotations

import pytest

from serving.storage.db import make_engine, make_sessionmaker
from serving.storage.secrets import load_secret_box
from serving.storage.webhooks import add_endpoint
from serving.webhooks.signing import generate_secret


@pytest.fixture(autouse=True)
def secrets_key_file(tmp_path, monkeypatch):
    path = tmp_path / "secrets.key"
    monkeypatch.setenv("BELONG_SECRETS_KEY_FILE", str(path))
    monkeypatch.delenv("BELONG_SECRETS_KEY", raising=False)
    return path


@pytest.fixture
def sessions(db_url):
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def make_endpoint(sessions):
    def make(url: str, events: list[str], secret: str | None = None) -> tuple[int, str]:
        secret = secret or generate_secret()
        with sessions.begin() as session:
            row = add_endpoint(session, url=url, events=events, secret_ciphertext=load_secret_box().encrypt(secret))
            return row.id, secret

    return make
