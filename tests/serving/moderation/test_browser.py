"""The moderator pages in a real browser: Debian's Chromium, headless, driven by Playwright.

Flow: log in, see a seeded flagged thread in the queue, open it, reject a hostile tag, see the
audit entry, see the community chart render, and see XSS payloads as plain text with no dialog.
Screenshots of each page go to test-artifacts/screenshots/. Any Content-Security-Policy report in
the console fails the test: the pages must need nothing inline.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from serving.api.app import create_app
from serving.moderation import accounts
from serving.moderation.audit import Actor
from serving.storage.db import make_engine, make_sessionmaker
from tests.live_server import serve_in_thread
from tests.serving.moderation.conftest import (
    ADMIN_PASSWORD,
    PASSWORD,
    RLO,
    XSS_IMG,
    XSS_LINK,
    XSS_SCRIPT,
    FakePredictor,
    bearer,
)

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's Chromium is not at /usr/bin/chromium: run `bash .ci/chromium.sh` (apt-get install chromium)",
    ),
]

WARM = [
    "Welcome!! so glad you found us",
    "welcome, where are you from?",
    "love your drawings, welcome",
    "how do you say hello in Chinese?",
    "thanks for the tips!",
    "nice, welcome aboard",
]
COLD = ["go back to tiktok", "nobody wants you here, go back", "what an idiot"]


def community_history() -> list[dict]:
    """Two weeks of a community: belonging dips in the middle (a raid), one thread stays flagged."""
    start = datetime(2025, 1, 20, 9, tzinfo=timezone.utc)
    comments = []
    for day in range(14):
        hostile_share = 3 if 5 <= day <= 8 else 0
        for i in range(6):
            text = COLD[i % len(COLD)] if i < hostile_share else WARM[(day + i) % len(WARM)]
            comments.append(
                {
                    "id": f"d{day}-{i}",
                    "thread_id": f"daily-{day}",
                    "community_id": "rednote-newcomers",
                    "author_id": f"user{(day * 7 + i) % 23}",
                    "lang": "en",
                    "text": text,
                    "created_at": (start + timedelta(days=day, minutes=13 * i)).isoformat().replace("+00:00", "Z"),
                    **({"parent_id": f"d{day}-0"} if i else {}),
                }
            )
    return comments


def xss_thread() -> list[dict]:
    at = "2025-02-02T12:00:00Z"
    return [
        {
            "id": "evil-1",
            "thread_id": "payloads",
            "community_id": "rednote-newcomers",
            "author_id": XSS_IMG,
            "lang": "en",
            "created_at": at,
            "text": f"go back {XSS_SCRIPT}",
        },
        {
            "id": "evil-2",
            "thread_id": "payloads",
            "community_id": "rednote-newcomers",
            "author_id": "x",
            "parent_id": "evil-1",
            "lang": "en",
            "created_at": at,
            "text": f"idiot {XSS_IMG} click {XSS_LINK}",
        },
        {
            "id": "evil-3",
            "thread_id": "payloads",
            "community_id": "rednote-newcomers",
            "author_id": "y",
            "parent_id": "evil-1",
            "lang": "en",
            "created_at": at,
            "text": f"go back{RLO} gnp.exe",
        },
    ]


@pytest.fixture
def live(settings, keys, db_url) -> Iterator[str]:
    """The app with the fake predictor behind a real uvicorn, seeded, with a moderator account."""
    with serve_in_thread(create_app(settings, predictor=FakePredictor())) as url:
        comments = community_history() + xss_thread()
        for start in range(0, len(comments), 200):
            response = httpx.post(
                url + "/v1/score", json={"comments": comments[start : start + 200]}, headers=bearer(keys.score)
            )
            assert response.status_code == 200, response.text
        engine = make_engine(db_url)
        with make_sessionmaker(engine).begin() as db:
            accounts.create_user(db, "mia", PASSWORD, "moderator", actor=Actor.cli())
            accounts.create_user(db, "ada", ADMIN_PASSWORD, "admin", actor=Actor.cli())
        engine.dispose()
        yield url


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.dialogs = []  # type: ignore[attr-defined]
        page.problems = []  # type: ignore[attr-defined]

        def on_dialog(dialog) -> None:
            page.dialogs.append(dialog.message)  # type: ignore[attr-defined]
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: page.problems.append(f"page error: {exc}"))  # type: ignore[attr-defined]
        page.on(
            "console",
            lambda msg: (
                page.problems.append(msg.text)  # type: ignore[attr-defined]
                if msg.type == "error" or "Content Security Policy" in msg.text
                else None
            ),
        )
        yield page
        context.close()
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_moderator_reviews_a_flagged_thread_in_chromium(live, browser_page):
    page = browser_page

    # log in (the root URL leads to the login form)
    page.goto(live + "/")
    assert page.url == live + "/moderation/login?next=/moderation/"
    shot(page, "01-login")
    page.fill("input[name=username]", "mia")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live + "/moderation/")

    # the queue lists the raid days' threads and the payload thread
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == 5
    assert page.locator("table.queue").get_by_text("daily-5", exact=True).is_visible()
    shot(page, "02-queue")

    # open a flagged thread and reject a hostile tag
    page.locator("table.queue").get_by_text("daily-6", exact=True).click()
    page.wait_for_url("**/moderation/threads/*")
    first_hostile = page.locator("li.comment.is-hostile").first
    comment_id = first_hostile.get_attribute("id")
    assert page.locator("li.comment.is-hostile").count() == 3
    assert first_hostile.locator("mark.driver").count() >= 1  # the words behind the score
    shot(page, "03-thread")
    first_hostile.get_by_role("button", name="Reject hostile").click()
    page.wait_for_url("**done=tag.reject*")
    assert page.locator("p.notice").inner_text() == "Tag rejected as a false positive."
    rejected = page.locator(f"li#{comment_id}")
    assert "is-hostile" not in (rejected.get_attribute("class") or "")
    assert rejected.locator(".chip.hostile.state-rejected").is_visible()
    assert page.locator("li.comment.is-hostile").count() == 2
    shot(page, "04-thread-after-reject")

    # the audit log shows who did it, with the labels before and after
    page.get_by_role("link", name="Audit log").click()
    page.wait_for_url(live + "/moderation/audit")
    row = page.locator("table.audit tbody tr").first
    assert row.locator("code").inner_text() == "tag.reject"
    assert "mia" in row.inner_text() and "daily-6" in row.inner_text()
    assert row.locator("td").nth(4).locator(".chip.hostile").count() == 1  # before: hostile
    assert row.locator("td").nth(5).locator(".chip.neutral").count() == 1  # after: nothing left
    assert page.locator("table.audit button, table.audit input").count() == 0  # nothing to edit
    shot(page, "05-audit")

    # the community chart renders (server-side SVG, no script)
    page.goto(live + "/moderation/community?id=rednote-newcomers")
    chart = page.locator("svg.chart")
    assert chart.is_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 150
    assert page.locator("svg.chart polyline.line").count() >= 1
    assert page.locator("svg.chart circle.dot").count() == 14  # one per day with comments
    shot(page, "06-community")

    # payloads are text: visible verbatim, nothing executes, no element is injected
    page.goto(live + "/moderation/?community=rednote-newcomers&sort=newest")
    page.locator("table.queue").get_by_text("payloads", exact=True).click()
    page.wait_for_url("**/moderation/threads/*")
    texts = page.locator("p.text").all_inner_texts()
    assert texts[0] == f"go back {XSS_SCRIPT}"
    assert f"{XSS_IMG} click {XSS_LINK}" in texts[1]
    assert "[RLO]" in texts[2] and RLO not in texts[2]
    assert page.locator(".author").first.inner_text() == XSS_IMG
    assert page.locator("main img, main script, main a[href^='javascript']").count() == 0
    page.wait_for_timeout(300)  # give a would-be onerror handler time to fire
    shot(page, "07-xss-as-text")

    assert page.dialogs == []  # type: ignore[attr-defined]
    assert page.problems == []  # type: ignore[attr-defined]


def log_in(page, live: str, username: str, password: str) -> None:
    page.goto(live + "/moderation/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(live + "/moderation/")


def test_admin_manages_users_and_a_moderator_is_refused(live, browser_page):
    page = browser_page
    log_in(page, live, "mia", PASSWORD)
    assert page.get_by_role("link", name="Users").count() == 0
    response = page.goto(live + "/moderation/admin/users")
    assert response is not None and response.status == 403
    assert page.locator("h1").inner_text() == "Not allowed"
    shot(page, "08-moderator-refused")
    assert [p for p in page.problems if "403" not in p] == []  # type: ignore[attr-defined]
    page.problems.clear()  # type: ignore[attr-defined]  (the 403 above was the point)
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(live + "/moderation/login")

    log_in(page, live, "ada", ADMIN_PASSWORD)
    page.get_by_role("link", name="Users").click()
    page.fill("form.stack input[name=username]", "noor")
    page.fill("form.stack input[name=password]", "noor's long passphrase")
    page.fill("form.stack input[name=password2]", "noor's long passphrase")
    page.get_by_role("button", name="Add user").click()
    page.wait_for_url("**done=user.create")
    assert page.locator("table.users").get_by_text("noor", exact=True).is_visible()
    shot(page, "09-users")
    assert page.dialogs == [] and page.problems == []  # type: ignore[attr-defined]
