"""Secrets are encrypted with a key file of the test's own, never var/secrets.key."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def secrets_key_file(tmp_path, monkeypatch):
    path = tmp_path / "secrets.key"
    monkeypatch.setenv("BELONG_SECRETS_KEY_FILE", str(path))
    monkeypatch.delenv("BELONG_SECRETS_KEY", raising=False)
    return path
