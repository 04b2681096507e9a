"""Who may open what: sessions only (never API keys), admins only for users, CSRF on every POST."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from serving.moderation.pages import safe_next
from serving.moderation.security import CSP
from serving.storage.models import Thread
from serving.storage.moderation import AuditEntry, CommentLabel, Moderator
from tests.serving.moderation.conftest import ADMIN_PASSWORD, bearer, comment_pk, csrf_of, login, thread_pk

PAGES = [
    "/moderation/",
    "/moderation/threads/1",
    "/moderation/community?id=c1",
    "/moderation/audit",
    "/moderation/admin/users",
]


@pytest.mark.parametrize("path", PAGES)
def test_without_a_session_pages_redirect_to_login(seeded, path):
    response = seeded.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/moderation/login?next=/moderation/")


@pytest.mark.parametrize("path", PAGES)
def test_api_keys_cannot_open_pages(seeded, keys, path):
    response = seeded.get(path, headers=bearer(keys.admin))
    assert response.status_code == 401
    assert "API keys cannot open the moderator pages" in response.text
    assert response.headers["content-type"].startswith("text/html")


def test_api_keys_cannot_post_either(seeded, keys, sessions):
    pk = thread_pk(sessions, "c1", "t1")
    response = seeded.post(
        f"/moderation/threads/{pk}/status",
        data={"action": "resolve", "reason": "x"},
        headers=bearer(keys.admin),
    )
    assert response.status_code == 401
    with sessions() as db:
        assert db.get(Thread, pk).status == "open"


def test_the_root_and_bare_prefix_lead_to_the_queue(seeded):
    assert seeded.get("/").headers["location"] == "/moderation/"
    assert seeded.get("/moderation").headers["location"] == "/moderation/"


def test_login_page_redirects_a_logged_in_user(moderator):
    response = moderator.get("/moderation/login?next=/moderation/audit")
    assert response.status_code == 303 and response.headers["location"] == "/moderation/audit"


def test_a_moderator_cannot_open_admin_pages(moderator, sessions, users):
    page = moderator.get("/moderation/")
    assert 'href="/moderation/admin/users"' not in page.text  # not even linked
    assert moderator.get("/moderation/admin/users").status_code == 403
    token = csrf_of(page.text)
    create = moderator.post(
        "/moderation/admin/users",
        data={
            "username": "eve",
            "role": "admin",
            "password": "x" * 20,
            "password2": "x" * 20,
            "csrf_token": token,
        },
    )
    assert create.status_code == 403
    promote = moderator.post(
        f"/moderation/admin/users/{users.moderator_id}", data={"action": "role:admin", "csrf_token": token}
    )
    assert promote.status_code == 403
    assert "Only admins can manage users." in promote.text
    with sessions() as db:
        assert db.scalar(select(Moderator.role).where(Moderator.id == users.moderator_id)) == "moderator"
        assert db.scalar(select(Moderator).where(Moderator.username == "eve")) is None


def test_an_admin_manages_users(seeded, users, sessions):
    login(seeded, users.admin, ADMIN_PASSWORD)
    page = seeded.get("/moderation/admin/users")
    assert page.status_code == 200 and "<bdi>mia</bdi>" in page.text
    token = csrf_of(page.text)
    created = seeded.post(
        "/moderation/admin/users",
        data={
            "username": "Noor",
            "role": "moderator",
            "password": "noor's passphrase",
            "password2": "noor's passphrase",
            "csrf_token": token,
        },
    )
    assert created.status_code == 303 and created.headers["location"] == "/moderation/admin/users?done=user.create"
    mismatch = seeded.post(
        "/moderation/admin/users",
        data={
            "username": "x1",
            "role": "moderator",
            "password": "a" * 12,
            "password2": "b" * 12,
            "csrf_token": token,
        },
    )
    assert mismatch.status_code == 400 and "The two passwords differ." in mismatch.text
    disabled = seeded.post(
        f"/moderation/admin/users/{users.moderator_id}", data={"action": "disable", "csrf_token": token}
    )
    assert disabled.status_code == 303
    self_disable = seeded.post(
        f"/moderation/admin/users/{users.admin_id}", data={"action": "disable", "csrf_token": token}
    )
    assert self_disable.status_code == 400 and "you cannot disable your own account" in self_disable.text
    with sessions() as db:
        assert db.scalar(select(Moderator).where(Moderator.username == "noor")).role == "moderator"
        assert db.scalar(select(Moderator.disabled_at).where(Moderator.id == users.moderator_id)) is not None
        actions = db.scalars(select(AuditEntry.action).where(AuditEntry.actor == "ada")).all()
        assert sorted(actions) == ["user.create", "user.disable"]


def test_every_post_checks_the_csrf_token(moderator, sessions, users):
    pk = thread_pk(sessions, "c1", "t1")
    cpk = comment_pk(sessions, "c1", "2")
    for path, data in [
        (f"/moderation/threads/{pk}/status", {"action": "resolve", "reason": "spam"}),
        (f"/moderation/comments/{cpk}/review", {"action": "reject:hostile"}),
        ("/moderation/logout", {}),
    ]:
        for token in (None, "forged"):
            response = moderator.post(path, data={**data, **({"csrf_token": token} if token else {})})
            assert response.status_code == 403, path
            assert "This form has expired or did not come from this site." in response.text
    with sessions() as db:
        assert db.get(Thread, pk).status == "open"
        assert db.scalars(select(CommentLabel)).all() == []
    assert moderator.get("/moderation/").status_code == 200  # the forged logout did not log out


def test_another_sessions_csrf_token_is_refused(seeded, users, sessions):
    login(seeded, users.admin, ADMIN_PASSWORD)
    admin_token = csrf_of(seeded.get("/moderation/").text)
    seeded.cookies.clear()
    login(seeded, users.moderator, "correct horse battery staple")
    pk = thread_pk(sessions, "c1", "t1")
    response = seeded.post(
        f"/moderation/threads/{pk}/status",
        data={"action": "resolve", "reason": "x", "csrf_token": admin_token},
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "value,expected",
    [
        ("/moderation/audit?x=1", "/moderation/audit?x=1"),
        ("https://evil.example/", "/moderation/"),
        ("//evil.example/moderation", "/moderation/"),
        ("/moderation\\@evil", "/moderation/"),
        ("/docs", "/moderation/"),
        ("", "/moderation/"),
    ],
)
def test_next_never_leaves_the_pages(value, expected):
    assert safe_next(value) == expected


def test_login_next_is_not_an_open_redirect(seeded, users):
    page = seeded.get("/moderation/login?next=https://evil.example/")
    assert 'name="next" value="/moderation/"' in page.text
    response = seeded.post(
        "/moderation/login",
        data={
            "username": "mia",
            "password": "correct horse battery staple",
            "csrf_token": csrf_of(page.text),
            "next": "//evil.example",
        },
    )
    assert response.headers["location"] == "/moderation/"


def test_pages_carry_the_security_headers(moderator):
    for path in ("/moderation/", "/moderation/login", "/moderation/audit"):
        response = moderator.get(path, follow_redirects=True)
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in CSP and "object-src 'none'" in CSP and "base-uri 'none'" in CSP
    assert "frame-ancestors 'none'" in CSP and "unsafe-inline" not in CSP


def test_static_css_is_served_locally_with_the_policy(seeded):
    response = seeded.get("/moderation/static/moderation.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert response.headers["content-security-policy"] == CSP
    assert "no-store" not in response.headers.get("cache-control", "")


def test_the_api_keeps_its_own_headers(seeded, keys):
    response = seeded.get("/v1/info", headers=bearer(keys.read))
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers
