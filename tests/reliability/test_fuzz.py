"""Schemathesis against the app's own OpenAPI schema, on a live server with a tiny real bundle:
no 5xx for anything generated (valid and invalid data), and every answer as the schema says."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from serving.api.app import create_app
from serving.settings import Settings
from serving.storage.db import make_engine, make_sessionmaker
from serving.storage.keys import create_key
from tests.live_server import serve_in_thread

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 30  # per operation and generation mode: ~700 requests in all, under a minute on 2 cores


@schemathesis.serializer("application/x-ndjson")
def ndjson(_ctx: object, value: object) -> bytes:
    """The stream's body is a string in the schema: sent as it is (surrogates too, as raw bytes);
    what negative generation puts there instead (numbers, objects, null) is sent as JSON text."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value).encode()


def admin_key(db_url: str) -> str:
    """An admin key with a high id: fuzzed DELETE /v1/keys/{id} mostly picks small ids and revokes decoys."""
    engine = make_engine(db_url)
    with make_sessionmaker(engine).begin() as session:
        for i in range(40):
            create_key(session, name=f"decoy{i}", scopes=["read"])
        token = create_key(session, name="fuzz", scopes=["admin"]).token
    engine.dispose()
    return token


@pytest.fixture(scope="module")
def live(tiny_bundle, tmp_path_factory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{folder / 'belonging.db'}"
    settings_ = Settings(bundle=tiny_bundle, database_url=url, rate_limit_enabled=False, threads=1)
    app = create_app(settings_)
    with serve_in_thread(app, timeout=60) as base:
        yield base, admin_key(url)


def fuzz_operation(operation, base: str, key: str, mode: GenerationMode, examples: int) -> list[str]:
    """Run `examples` generated cases of one operation; the failures, as text."""
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        try:
            case.call_and_validate(base_url=base, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)
        except (Exception, FailureGroup) as exc:  # collect every failure, not only the first of each operation
            failures.append(f"{operation.label} ({mode.value}): {exc}"[:2000])

    try:
        run()
    except Unsatisfiable:  # every generated case was filtered out: nothing was sent
        assert mode is GenerationMode.NEGATIVE
    return failures


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_5xx_and_answers_match_the_schema(live, mode):
    base, key = live
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    if mode is GenerationMode.NEGATIVE:  # negative generation needs something to make invalid
        operations = [op for op in operations if op.path_parameters or op.query or op.headers or op.body]
    failures = [f for op in operations for f in fuzz_operation(op, base, key, mode, EXAMPLES)]
    assert not failures, "\n\n".join(failures[:5])
