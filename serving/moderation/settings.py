"""Settings of the moderator pages, read from `BELONG_MOD_*` environment variables.

Usage: `ModerationSettings()`, or `BELONG_MOD_COOKIE_SECURE=true belong serve` behind HTTPS.
They live apart from `serving.settings.Settings` so the scoring server's settings stay its own.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ModerationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BELONG_MOD_", extra="forbid", frozen=True)

    # --- sessions ---
    # true behind HTTPS: the browser then only sends the session cookie over TLS.
    cookie_secure: bool = False
    session_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 12.0  # absolute lifetime of a login
    idle_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 120.0  # logged out after this long unused

    # --- login throttling: this many failures per (username, IP) lock that pair for lock_minutes ---
    max_failures: Annotated[int, Field(ge=1, le=100)] = 5
    lock_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 15.0
    # and this many failures from one IP (any usernames) lock the IP: stops username spraying
    max_failures_per_ip: Annotated[int, Field(ge=1, le=10_000)] = 50

    # --- pages ---
    page_size: Annotated[int, Field(ge=5, le=500)] = 25  # queue and audit rows per page
    thread_page_size: Annotated[int, Field(ge=10, le=1000)] = 100  # comments per thread page
    # Mark the words that drove a hostile score (occlusion through the served model).
    explain: bool = True
    explain_per_page: Annotated[int, Field(ge=0, le=200)] = 12  # hostile comments explained per page
