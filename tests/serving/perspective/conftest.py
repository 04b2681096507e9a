"""A real HTTP server on the fake predictor, for clients that speak HTTP themselves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from serving.api.app import create_app
from serving.settings import Settings
from tests.live_server import serve_in_thread
from tests.serving.conftest import FakePredictor


@pytest.fixture
def live_url(settings: Settings, keys) -> Iterator[str]:
    with serve_in_thread(create_app(settings, predictor=FakePredictor())) as url:
        yield url
