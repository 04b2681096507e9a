"""Server settings, read from `BELONG_*` environment variables (or passed in by tests).

Usage: `Settings(bundle="models/default")`, or `BELONG_BUNDLE=models/default belong serve`.
Unsafe combinations fail here, at start-up, not on the first request.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.engine.lang import DEFAULT_LANGUAGES
from serving.storage.threads import FlagLimits

DEFAULT_DATABASE_URL = "sqlite:///var/belonging.db"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BELONG_", extra="forbid", frozen=True)

    # --- model ---
    bundle: Path = Path("models/default")
    # Cores for the model: `threads // intra_op_threads` batches run at once, each model call on
    # `intra_op_threads` onnxruntime threads (one call per core was fastest on 2 cores: see
    # serving.engine.batching). Raise intra_op_threads for the latency of single large batches.
    threads: Annotated[int, Field(ge=1, le=256)] = os.cpu_count() or 1
    intra_op_threads: Annotated[int, Field(ge=1, le=256)] = 1

    # --- language detection (when a comment carries no `lang`) ---
    languages: str = DEFAULT_LANGUAGES  # comma-separated ISO 639-1 codes to choose among
    lang_min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.3  # below: "und"

    # --- network ---
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000

    # --- storage ---
    database_url: str = DEFAULT_DATABASE_URL
    # None: migrate SQLite at start-up, expect PostgreSQL to be migrated by `belong db upgrade`.
    auto_migrate: bool | None = None
    # How long a SQLite write waits for another writer's lock before the request gets 503.
    store_busy_timeout_ms: Annotated[int, Field(ge=10, le=600_000)] = 2000
    # While writes fail, the writer retries a harmless write this often; /readyz is 503 meanwhile.
    store_probe_ms: Annotated[int, Field(ge=10, le=60_000)] = 250

    # --- access ---
    # Only allowed on a loopback host: a public server always checks keys.
    auth_disabled: bool = False
    key_cache_seconds: Annotated[float, Field(ge=0, le=3600)] = 30.0

    # --- micro-batching ---
    max_batch_size: Annotated[int, Field(ge=1, le=1024)] = 32
    max_wait_ms: Annotated[float, Field(ge=0, le=1000)] = 2.0
    max_queue: Annotated[int, Field(ge=1)] = 8192  # queued comments before answering 503
    # With a backlog, take up to this many batches' worth at once and sort them by token length.
    pool_batches: Annotated[int, Field(ge=1, le=64)] = 4
    # The fixed cost of one model call, in tokens of one row: sorted batches are cut where padding
    # would cost more than that (see serving.engine.batching.plan_batches). 0: never pad; large: always full batches.
    batch_overhead: Annotated[float, Field(ge=0, le=100_000)] = 32.0

    @property
    def model_threads(self) -> int:
        """How many model calls run at once (batcher threads sharing one onnxruntime session)."""
        return max(1, self.threads // self.intra_op_threads)

    # --- rate limits per API key (a key's own, set through /v1/keys, override these) ---
    rate_limit_enabled: bool = True
    rate_limit_requests: Annotated[int, Field(ge=1, le=1_000_000)] = 100  # requests per second
    rate_limit_comments: Annotated[int, Field(ge=1, le=1_000_000)] = 1000  # comments per second (10 s window)
    # limits' storage URI: memory:// is this process only; redis://host:6379 is shared by several.
    rate_limit_storage: str = "memory://"

    # --- overload: refuse scoring work that would wait longer than this (503 + Retry-After) ---
    max_queue_wait_ms: Annotated[float, Field(ge=1, le=600_000)] = 1000.0

    # --- request limits ---
    # (at most 256 comments of 1 to 10,000 characters: fixed in serving/api/schemas.py, the API contract)
    max_body_bytes: Annotated[int, Field(ge=1024)] = 2 * 1024 * 1024
    max_line_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024  # one NDJSON line of /v1/stream
    stream_window: Annotated[int, Field(ge=1, le=4096)] = 64  # /v1/stream lines scored ahead of output

    # --- moderation flags: a thread is flagged when either limit is reached ---
    flag_hostile_count: Annotated[int, Field(ge=1)] = 3
    flag_hostile_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    flag_min_comments: Annotated[int, Field(ge=1)] = 2  # the share only counts from this many comments

    @model_validator(mode="after")
    def _refuse_open_server_without_keys(self) -> Settings:
        if self.auth_disabled and not is_loopback(self.host):
            raise ValueError(
                f"auth_disabled=true is only allowed on a loopback host (127.0.0.1, ::1, localhost), "
                f"got host={self.host!r}"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def migrate_on_start(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @property
    def flag_limits(self) -> FlagLimits:
        """The flag limits, as the API (`/v1/flags`) and the moderator queue both apply them."""
        return FlagLimits(self.flag_hostile_count, self.flag_hostile_share, self.flag_min_comments)
