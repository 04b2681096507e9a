"""The moderator pages: login, queue, thread, community, audit log, users (admins only).

Every page needs a login session (a cookie); API keys open none of them. Every POST carries the
session's CSRF token. Routes are plain `def`s: FastAPI runs them in its thread pool, where the
database and the micro-batcher (for word highlights) may block.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from serving.api.deps import DbSession, RuntimeDep
from serving.labels import ROLES, TAGS, THREAD_STATUSES
from serving.moderation import accounts, audit, queries, review
from serving.moderation.accounts import AccountError, Viewer
from serving.moderation.charts import bar_width, index_chart
from serving.moderation.explain import Explainer, segments
from serving.moderation.render import render
from serving.moderation.settings import ModerationSettings
from serving.runtime import Runtime
from serving.storage.models import Comment
from serving.storage.threads import flagged_communities

log = logging.getLogger(__name__)

PREFIX = "/moderation"
SESSION_COOKIE = "belong_session"
LOGIN_CSRF_COOKIE = "belong_login_csrf"
AUDIT_GROUPS = ("tag.", "thread.", "user.", "comment.")

NOTICES = {
    "tag.confirm": "Tag confirmed.",
    "tag.reject": "Tag rejected as a false positive.",
    "tag.add": "Missed tag added.",
    "tag.clear": "Decision cleared: the model's tag stands again.",
    "comment.accept": "All labels of the comment accepted as they stand.",
    "thread.resolve": "Thread resolved.",
    "thread.dismiss": "Thread dismissed.",
    "thread.reopen": "Thread reopened.",
    "user.create": "User created.",
    "user.role": "Role changed.",
    "user.disable": "User disabled; their sessions have ended.",
    "user.enable": "User enabled.",
    "user.password": "Password set; the user's sessions have ended.",
    "nochange": "Nothing changed: it already was so.",
}


@dataclass
class ModerationState:
    settings: ModerationSettings
    explainer: Explainer


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class PageDenied(Exception):
    def __init__(self, status: int, message: str, viewer: Viewer | None = None) -> None:
        self.status = status
        self.message = message
        self.viewer = viewer


router = APIRouter(include_in_schema=False)


# --- helpers ---


async def get_moderation(request: Request) -> ModerationState:
    state: ModerationState = request.app.state.moderation
    return state


ModerationDep = Annotated[ModerationState, Depends(get_moderation)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def safe_next(value: str | None) -> str:
    """Only local moderator paths: never an open redirect to another site."""
    if not value or not value.startswith(PREFIX) or value.startswith("//") or "\\" in value:
        return PREFIX + "/"
    if any(ord(c) < 32 for c in value):
        return PREFIX + "/"
    return value


def int_param(value: str | None, default: int, lo: int = 1, hi: int = 1_000_000) -> int:
    try:
        return max(lo, min(hi, int(value))) if value is not None else default
    except ValueError:
        return default


def text_param(value: str | None, max_len: int = 200) -> str | None:
    if value is None or value == "":
        return None
    return value[:max_len]


def date_param(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value[:10], "%Y-%m-%d")
    except ValueError:
        return None


def html(request: Request, template: str, viewer: Viewer | None, code: int = 200, **context: Any) -> HTMLResponse:
    notice = NOTICES.get(request.query_params.get("done", ""))
    body = render(
        template,
        viewer=viewer,
        notice=notice,
        path=request.url.path,
        prefix=PREFIX,
        tags=TAGS,
        error=context.pop("error", None),
        **context,
    )
    return HTMLResponse(body, status_code=code)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def pagination(page: int, total: int, size: int) -> dict[str, int]:
    pages = max(1, -(-total // size))
    return {"page": min(page, pages), "pages": pages, "total": total, "size": size}


# --- who is asking ---


def get_viewer(request: Request, runtime: RuntimeDep, state: ModerationDep) -> Viewer:
    token = request.cookies.get(SESSION_COOKIE, "")
    viewer = None
    if token:
        with runtime.sessions.begin() as db:
            viewer = accounts.resolve_session(db, token, state.settings)
    if viewer is None:
        if request.headers.get("authorization"):
            raise PageDenied(401, "API keys cannot open the moderator pages: log in with a moderator account.")
        next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(next_path if request.method == "GET" else PREFIX + "/")
    request.state.viewer = viewer
    return viewer


ViewerDep = Annotated[Viewer, Depends(get_viewer)]


def get_admin(viewer: ViewerDep) -> Viewer:
    if not viewer.is_admin:
        raise PageDenied(403, "Only admins can manage users.", viewer)
    return viewer


AdminDep = Annotated[Viewer, Depends(get_admin)]


def check_csrf(viewer: Viewer, token: str) -> None:
    if not accounts.tokens_match(viewer.csrf_token, token):
        raise PageDenied(
            403,
            "This form has expired or did not come from this site. Reload the page and try again.",
            viewer,
        )


# --- exception handlers (installed by serving.moderation.install_moderation) ---


async def login_required_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return see_other(f"{PREFIX}/login?next={quote(safe_next(exc.next_path), safe='/')}")


async def page_denied_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageDenied)
    headers = {"WWW-Authenticate": 'Cookie realm="moderation"'} if exc.status == 401 else None
    body = render(
        "error.html",
        viewer=exc.viewer,
        notice=None,
        error=None,
        path=request.url.path,
        prefix=PREFIX,
        tags=TAGS,
        status=exc.status,
        message=exc.message,
    )
    return HTMLResponse(body, status_code=exc.status, headers=headers)


# --- login ---


@router.get("/")
def root() -> RedirectResponse:
    return see_other(PREFIX + "/")


@router.get(PREFIX)
def moderation_root() -> RedirectResponse:
    return see_other(PREFIX + "/")


def _login_page(
    request: Request, state: ModerationState, status: int = 200, error: str | None = None, username: str = ""
) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = html(
        request,
        "login.html",
        None,
        status,
        error=error,
        login_csrf=token,
        username=username,
        next=safe_next(request.query_params.get("next")),
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=state.settings.cookie_secure,
    )
    return response


@router.get(PREFIX + "/login")
def login_form(request: Request, runtime: RuntimeDep, state: ModerationDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        with runtime.sessions.begin() as db:
            if accounts.resolve_session(db, token, state.settings) is not None:
                return see_other(safe_next(request.query_params.get("next")))
    return _login_page(request, state)


@router.post(PREFIX + "/login")
def login(
    request: Request,
    runtime: RuntimeDep,
    state: ModerationDep,
    username: str = Form(""),
    password: str = Form(""),
    csrf_token: str = Form(""),
    next_path: str = Form("", alias="next"),
) -> Response:
    settings = state.settings
    if not accounts.tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf_token):
        return _login_page(request, state, 403, "The login form expired. Please try again.", username[:64])
    with runtime.sessions.begin() as db:
        outcome = accounts.attempt_login(
            db,
            username,
            password,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", ""),
            settings=settings,
        )
    if outcome.retry_after is not None:
        minutes = max(1, -(-int(outcome.retry_after.total_seconds()) // 60))
        response = _login_page(
            request, state, 429, f"Too many failed logins. Try again in {minutes} minute(s).", username[:64]
        )
        response.headers["Retry-After"] = str(int(outcome.retry_after.total_seconds()) + 1)
        return response
    if not outcome.ok:
        return _login_page(request, state, 401, "Wrong username or password.", username[:64])
    log.info("moderator %s logged in from %s", outcome.user.username if outcome.user else "?", client_ip(request))
    redirect = see_other(safe_next(next_path))
    redirect.set_cookie(
        SESSION_COOKIE,
        outcome.token or "",
        max_age=int(settings.session_hours * 3600),
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )
    redirect.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return redirect


@router.post(PREFIX + "/logout")
def logout(
    request: Request, viewer: ViewerDep, runtime: RuntimeDep, state: ModerationDep, csrf_token: str = Form("")
) -> Response:
    check_csrf(viewer, csrf_token)
    with runtime.sessions.begin() as db:
        accounts.end_session(db, viewer.session_id)
    response = see_other(PREFIX + "/login")
    response.delete_cookie(
        SESSION_COOKIE, path=PREFIX, httponly=True, samesite="lax", secure=state.settings.cookie_secure
    )
    return response


# --- the queue ---


@router.get(PREFIX + "/")
def queue_page(
    request: Request, viewer: ViewerDep, runtime: RuntimeDep, state: ModerationDep, db: DbSession
) -> HTMLResponse:
    q = request.query_params
    status = q.get("status", "open")
    status = status if status in THREAD_STATUSES or status == "any" else "open"
    sort = "newest" if q.get("sort") == "newest" else "worst"
    community = q.get("community")  # "" is the comments sent without a community
    where = queries.QueueFilter(
        community_id=community[:200] if community else None,
        lang=text_param(q.get("lang"), 16),
        status=None if status == "any" else status,
        sort=sort,  # type: ignore[arg-type]
    )
    size = state.settings.page_size
    page = int_param(q.get("page"), 1)
    limits = runtime.settings.flag_limits
    rows, total = queries.queue(db, limits, where, limit=size, offset=(page - 1) * size)
    communities = flagged_communities(db, limits)
    langs = queries.language_options(db)
    return html(
        request,
        "queue.html",
        viewer,
        rows=rows,
        where=where,
        status=status,
        communities=communities,
        langs=langs,
        paging=pagination(page, total, size),
        reasons=lambda t: queries.reason_texts(t, limits),
        limits=limits,
    )


# --- a thread ---


def _explanations(
    runtime: Runtime, state: ModerationState, view: queries.ThreadView
) -> dict[int, list[tuple[str, bool]]]:
    """Marked words for the hostile comments on the page, when the serving model scored them."""
    predictor = runtime.predictor if runtime.ready else None
    if not state.settings.explain or predictor is None or runtime.batcher is None:
        return {}
    out: dict[int, list[tuple[str, bool]]] = {}
    for item in view.comments:
        c = item.comment
        if len(out) >= state.settings.explain_per_page:
            break
        if not c.hostile or (c.model_name, c.model_version) != (predictor.name, predictor.version):
            continue
        try:
            spans = state.explainer.hostile_spans(runtime.batcher, c.text)
        except Exception:  # highlights are a help, never a reason for the page to fail
            log.exception("explaining comment %s failed", c.id)
            return out
        if spans:
            out[c.id] = segments(c.text, spans)
    return out


def _thread_page(
    request: Request,
    viewer: Viewer,
    runtime: Runtime,
    state: ModerationState,
    thread_pk: int,
    status: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    page = int_param(request.query_params.get("page"), 1)
    with runtime.sessions() as db:
        thread = queries.find_thread(db, thread_pk)
        if thread is None:
            raise PageDenied(404, f"There is no thread {thread_pk}.", viewer)
        view = queries.thread_view(db, thread, page=page, page_size=state.settings.thread_page_size)
    return html(
        request,
        "thread.html",
        viewer,
        status,
        error=error,
        view=view,
        t=view.thread,
        marks=_explanations(runtime, state, view),
        bar=bar_width,
        reasons=queries.reason_texts(view.thread, runtime.settings.flag_limits),
        decoded=audit.decode,
    )


@router.get(PREFIX + "/threads/{thread_pk:int}")
def thread_page(
    request: Request, viewer: ViewerDep, runtime: RuntimeDep, state: ModerationDep, thread_pk: int
) -> HTMLResponse:
    return _thread_page(request, viewer, runtime, state, thread_pk)


@router.post(PREFIX + "/threads/{thread_pk:int}/status")
def thread_status(
    request: Request,
    viewer: ViewerDep,
    runtime: RuntimeDep,
    state: ModerationDep,
    thread_pk: int,
    action: str = Form(""),
    reason: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    check_csrf(viewer, csrf_token)
    try:
        with runtime.sessions.begin() as db:
            changed = review.set_thread_status(
                db, thread_pk=thread_pk, action=action, reason=reason, actor=viewer.actor(client_ip(request))
            )
    except review.NotFound as exc:
        raise PageDenied(404, str(exc), viewer) from exc
    except review.ReviewError as exc:
        return _thread_page(request, viewer, runtime, state, thread_pk, 400, str(exc))
    return see_other(f"{PREFIX}/threads/{thread_pk}?done={f'thread.{action}' if changed else 'nochange'}")


@router.post(PREFIX + "/comments/{comment_pk:int}/review")
def comment_review(
    request: Request,
    viewer: ViewerDep,
    runtime: RuntimeDep,
    state: ModerationDep,
    comment_pk: int,
    action: str = Form(""),
    csrf_token: str = Form(""),
    page: str = Form("1"),
) -> Response:
    check_csrf(viewer, csrf_token)
    verb, _, tag = action.partition(":")
    try:
        with runtime.sessions.begin() as db:
            changed = review.review_comment(
                db, comment_pk=comment_pk, action=verb, tag=tag or None, actor=viewer.actor(client_ip(request))
            )
            comment = db.get(Comment, comment_pk)
            assert comment is not None
            thread_pk = queries.thread_pk_of(db, comment.community_id, comment.thread_id)
    except review.NotFound as exc:
        raise PageDenied(404, str(exc), viewer) from exc
    except review.ReviewError as exc:
        with runtime.sessions() as db:
            comment = db.get(Comment, comment_pk)
            thread_pk = queries.thread_pk_of(db, comment.community_id, comment.thread_id) if comment else None
        if thread_pk is None:
            raise PageDenied(400, str(exc), viewer) from exc
        return _thread_page(request, viewer, runtime, state, thread_pk, 400, str(exc))
    done = ("comment.accept" if verb == "accept" else f"tag.{verb}") if changed else "nochange"
    if thread_pk is None:
        return see_other(f"{PREFIX}/audit?done={done}")
    return see_other(f"{PREFIX}/threads/{thread_pk}?page={int_param(page, 1)}&done={done}#c{comment_pk}")


# --- a community ---


@router.get(PREFIX + "/community")
def community_page(request: Request, viewer: ViewerDep, runtime: RuntimeDep, db: DbSession) -> HTMLResponse:
    q = request.query_params
    community_id = (q.get("id") or "")[:200]
    days = int_param(q.get("days"), 30, 1, 365)
    days = days if days in queries.SPANS else 30
    limits = runtime.settings.flag_limits
    if not queries.community_exists(db, community_id):
        raise PageDenied(404, "No stored comments in this community.", viewer)
    report = queries.community_report(db, community_id, limits, days=days)
    rates = report.totals.rates
    reply_rates = report.reception.replies.rates
    chart = index_chart(report.points, bucket=report.bucket)
    return html(
        request,
        "community.html",
        viewer,
        report=report,
        chart=chart,
        rates=rates,
        reply_rates=reply_rates,
        bar=bar_width,
        spans=queries.SPANS,
        reasons=lambda t: queries.reason_texts(t, limits),
    )


# --- the audit log ---


@router.get(PREFIX + "/audit")
def audit_page(request: Request, viewer: ViewerDep, state: ModerationDep, db: DbSession) -> HTMLResponse:
    q = request.query_params
    action = q.get("action") or None
    if action is not None and action not in audit.ACTIONS and action not in AUDIT_GROUPS:
        action = None
    since, until = date_param(q.get("since")), date_param(q.get("until"))
    where = audit.AuditFilter(
        actor=text_param(q.get("actor"), 100),
        action=action,
        community_id=text_param(q.get("community")),
        thread_id=text_param(q.get("thread")),
        since=since,
        until=until + timedelta(days=1) if until else None,
    )
    size = state.settings.page_size
    page = int_param(q.get("page"), 1)
    entries, total = audit.list_entries(db, where, limit=size, offset=(page - 1) * size)
    actors = audit.actors(db)
    thread_pks = {(e.community_id, e.thread_id): queries.thread_pk_of(db, e.community_id, e.thread_id) for e in entries}
    return html(
        request,
        "audit.html",
        viewer,
        entries=entries,
        where=where,
        actors=actors,
        actions=audit.ACTIONS,
        paging=pagination(page, total, size),
        decoded=audit.decode,
        thread_pks=thread_pks,
        since=q.get("since", "")[:10],
        until=q.get("until", "")[:10],
    )


# --- users (admins) ---


def _users_page(
    request: Request, viewer: Viewer, runtime: Runtime, status: int = 200, error: str | None = None
) -> HTMLResponse:
    with runtime.sessions() as db:
        users = accounts.list_users(db)
    return html(request, "users.html", viewer, status, error=error, users=users, roles=ROLES)


@router.get(PREFIX + "/admin/users")
def users_page(request: Request, viewer: AdminDep, runtime: RuntimeDep) -> HTMLResponse:
    return _users_page(request, viewer, runtime)


@router.post(PREFIX + "/admin/users")
def users_create(
    request: Request,
    viewer: AdminDep,
    runtime: RuntimeDep,
    username: str = Form(""),
    role: str = Form("moderator"),
    password: str = Form(""),
    password2: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    check_csrf(viewer, csrf_token)
    if password != password2:
        return _users_page(request, viewer, runtime, 400, "The two passwords differ.")
    try:
        with runtime.sessions.begin() as db:
            accounts.create_user(db, username, password, role, actor=viewer.actor(client_ip(request)))
    except AccountError as exc:
        return _users_page(request, viewer, runtime, 400, str(exc))
    return see_other(f"{PREFIX}/admin/users?done=user.create")


@router.post(PREFIX + "/admin/users/{user_pk:int}")
def users_change(
    request: Request,
    viewer: AdminDep,
    runtime: RuntimeDep,
    user_pk: int,
    action: str = Form(""),
    password: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    check_csrf(viewer, csrf_token)
    actor = viewer.actor(client_ip(request))
    try:
        with runtime.sessions.begin() as db:
            if action.startswith("role:"):
                changed, done = accounts.set_role(db, user_pk, action[5:], actor=actor), "user.role"
            elif action in ("disable", "enable"):
                if action == "disable" and user_pk == viewer.user_id:
                    raise AccountError("you cannot disable your own account")
                changed = accounts.set_active(db, user_pk, action == "enable", actor=actor)
                done = f"user.{action}"
            elif action == "password":
                accounts.set_password(db, user_pk, password, actor=actor)
                changed, done = True, "user.password"
            else:
                raise AccountError(f"unknown action {action!r}")
    except AccountError as exc:
        return _users_page(request, viewer, runtime, 400, str(exc))
    if action == "password" and user_pk == viewer.user_id:
        return see_other(f"{PREFIX}/login")
    return see_other(f"{PREFIX}/admin/users?done={done if changed else 'nochange'}")
