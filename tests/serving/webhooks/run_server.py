"""A belonging server on the fake predictor, as its own process (killed with SIGKILL by a test).

Usage: python -m tests.serving.webhooks.run_server DATABASE_URL PORT
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from serving.api.app import create_app
from serving.settings import Settings
from tests.serving.conftest import FakePredictor

if __name__ == "__main__":
    url, port = sys.argv[1], int(sys.argv[2])
    settings = Settings(database_url=url, bundle=Path("no-bundle"), max_wait_ms=2)
    uvicorn.run(create_app(settings, predictor=FakePredictor()), host="127.0.0.1", port=port, log_level="warning")
