"""Comment text, author names and community ids are attacker-controlled: they render as text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markupsafe import Markup

from serving.moderation.render import reveal
from tests.serving.moderation.conftest import RLO, XSS_IMG, XSS_LINK, XSS_SCRIPT, seed, thread_pk

TEMPLATES = Path(__file__).resolve().parents[3] / "serving" / "moderation" / "templates"
EVIL_COMMUNITY = f'"><script>alert(2)</script>{RLO}'


@pytest.fixture
def evil(moderator, keys):
    seed(
        moderator,
        keys.score,
        [
            {
                "id": f"e{i}",
                "thread_id": f"<b>t</b>{RLO}",
                "community_id": EVIL_COMMUNITY,
                "author_id": XSS_SCRIPT,
                "parent_id": XSS_IMG,
                "text": f'go back {XSS_SCRIPT} {XSS_IMG} <a href="{XSS_LINK}">x</a>',
            }
            for i in range(3)
        ],
    )
    return moderator


def assert_inert(html: str) -> None:
    body = html.split("<main>", 1)[1]
    assert "<script" not in html.lower()
    assert "<img" not in body.lower()
    assert not re.search(r"\son\w+\s*=", body.replace("onerror=alert(1)&gt;", "")), "an event handler attribute"
    assert 'href="javascript' not in html.lower() and "href='javascript" not in html.lower()
    visible = re.sub(r'="[^"]*"', '=""', html)  # form values keep the real id, escaped; they never display
    assert RLO not in visible
    assert "<b>t</b>" not in html


def test_payloads_render_as_text_on_every_page(evil, sessions):
    pk = thread_pk(sessions, EVIL_COMMUNITY, f"<b>t</b>{RLO}")
    queue = evil.get("/moderation/?status=any")
    thread = evil.get(f"/moderation/threads/{pk}")
    community = evil.get("/moderation/community", params={"id": EVIL_COMMUNITY})
    for page in (queue, thread, community):
        assert page.status_code == 200
        assert_inert(page.text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in thread.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in thread.text
    assert "&lt;a href=&#34;javascript:alert(1)&#34;&gt;x&lt;/a&gt;" in thread.text
    assert '<span class="ctl" title="U+202E RLO: a hidden direction control">[RLO]</span>' in thread.text
    assert "&#34;&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in queue.text
    # the community id travels url-encoded in links, never as markup
    assert "/moderation/community?id=%22%3E%3Cscript%3Ealert%282%29%3C%2Fscript%3E%E2%80%AE" in queue.text


def test_audit_log_escapes_what_it_shows(evil, sessions):
    from tests.serving.moderation.conftest import comment_pk, csrf_of

    token = csrf_of(evil.get("/moderation/").text)
    pk = thread_pk(sessions, EVIL_COMMUNITY, f"<b>t</b>{RLO}")
    evil.post(
        f"/moderation/threads/{pk}/status",
        data={"action": "dismiss", "csrf_token": token, "reason": f"{XSS_SCRIPT}{RLO} quoted"},
    )
    evil.post(
        f"/moderation/comments/{comment_pk(sessions, EVIL_COMMUNITY, 'e1')}/review",
        data={"action": "reject:hostile", "csrf_token": token},
    )
    page = evil.get("/moderation/audit")
    assert page.status_code == 200
    assert_inert(page.text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_reveal_marks_every_bidi_control_and_escapes_the_rest():
    out = reveal("a\u202eb\u2066c\u200f<i>")
    assert isinstance(out, Markup)
    assert str(out) == (
        'a<span class="ctl" title="U+202E RLO: a hidden direction control">[RLO]</span>b'
        '<span class="ctl" title="U+2066 LRI: a hidden direction control">[LRI]</span>c'
        '<span class="ctl" title="U+200F RLM: a hidden direction control">[RLM]</span>&lt;i&gt;'
    )
    assert str(reveal(None)) == ""


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_templates_hold_no_inline_script_or_style(template):
    source = (TEMPLATES / template).read_text(encoding="utf-8")
    assert "<script" not in source
    assert "<style" not in source
    assert not re.search(r"\sstyle\s*=", source)
    assert not re.search(r"\son[a-z]+\s*=", source)
    assert "|safe" not in source and "Markup(" not in source
    assert "autoescape false" not in source
