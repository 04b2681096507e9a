"""Moderator pages served by the scoring app: review flagged threads, correct tags, read the audit log.

Usage (in `serving.api.app.create_app`, after the API routers):
    install_moderation(app)     # pages under /moderation, static files, security headers

Accounts come from `belong users add NAME --role moderator|admin`. See docs/moderation.md.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from serving.moderation.explain import Explainer
from serving.moderation.pages import (
    PREFIX,
    LoginRequired,
    ModerationState,
    PageDenied,
    login_required_handler,
    page_denied_handler,
    router,
)
from serving.moderation.security import SecurityHeadersMiddleware
from serving.moderation.settings import ModerationSettings
from serving.settings import is_loopback

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"

__all__ = ["ModerationSettings", "install_moderation"]


def install_moderation(app: FastAPI, settings: ModerationSettings | None = None) -> None:
    """Add the pages, their static files, their error pages and their security headers to `app`."""
    settings = settings or ModerationSettings()
    app.state.moderation = ModerationState(settings=settings, explainer=Explainer())
    app.include_router(router)
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC), name="moderation-static")
    app.add_exception_handler(LoginRequired, login_required_handler)
    app.add_exception_handler(PageDenied, page_denied_handler)
    app.add_middleware(SecurityHeadersMiddleware, prefix=PREFIX)
    runtime = getattr(app.state, "runtime", None)
    if runtime is not None and not settings.cookie_secure and not is_loopback(runtime.settings.host):
        log.warning(
            "moderator pages on %s without BELONG_MOD_COOKIE_SECURE=true: serve them over HTTPS "
            "and set it, or session cookies travel in clear text",
            runtime.settings.host,
        )
