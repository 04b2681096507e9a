"""Webhook settings, read from `BELONG_WEBHOOK_*` environment variables.

Usage: `WebhookSettings()`, or `BELONG_WEBHOOK_ALLOW_PRIVATE=true belong serve` to deliver to
hosts on a private network. Kept apart from `serving.settings.Settings`, like the pages' own.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BELONG_WEBHOOK_", extra="forbid", frozen=True)

    # --- targets ---
    # Loopback, link-local, private and other non-public addresses are refused unless this is true.
    allow_private: bool = False

    # --- delivery ---
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 15.0
    poll_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0  # how often the worker looks for due deliveries
    lease_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0  # a sender that died is replaced after this
    # Retry n waits base * 2**(n-1) seconds, at most max_delay, times a random factor in [0.5, 1]
    # (equal jitter); after max_attempts tries the delivery is given up (status failed).
    retry_base_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    retry_max_delay_seconds: Annotated[float, Field(gt=0, le=7 * 86400)] = 6 * 3600.0
    max_attempts: Annotated[int, Field(ge=1, le=50)] = 15

    # --- community.hostility_spike: see docs/webhooks.md ---
    spike_window_minutes: Annotated[float, Field(gt=0, le=7 * 24 * 60)] = 60.0
    spike_baseline_days: Annotated[float, Field(gt=0, le=365)] = 7.0
    spike_margin: Annotated[float, Field(gt=0, le=1)] = 0.15  # share points above the baseline
    spike_min_comments: Annotated[int, Field(ge=1)] = 20  # in the window
    spike_min_baseline_comments: Annotated[int, Field(ge=1)] = 100  # in the baseline
    spike_check_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
