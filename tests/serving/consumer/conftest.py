"""Consumer fixtures: a real Redis (BELONG_TEST_REDIS_URL, started by .ci/redis.sh), fresh stream
names per test, and a Tagger on the real tiny bundle."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from belonging import Tagger

REDIS_URL = os.environ.get("BELONG_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not REDIS_URL:
        reason = 'BELONG_TEST_REDIS_URL is not set (eval "$(bash .ci/redis.sh)")'
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Redis tests: {reason}")
        pytest.skip(reason)
    return REDIS_URL


@pytest.fixture
def redis_client(redis_url: str):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.ping()
    yield client
    client.close()


@pytest.fixture
def streams(redis_client) -> Iterator[SimpleNamespace]:
    """Stream names of one test; deleted afterwards."""
    run = uuid.uuid4().hex[:10]
    names = SimpleNamespace(source=f"t:{run}:comments", out=f"t:{run}:scores", dead=f"t:{run}:dead", group="belonging")
    yield names
    redis_client.delete(names.source, names.out, names.dead)


@pytest.fixture(scope="session")
def tagger(tiny_bundle) -> Tagger:
    return Tagger.load(tiny_bundle, threads=1)
