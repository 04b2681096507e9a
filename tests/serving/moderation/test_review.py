"""The queue, the thread view, review actions and the audit log they write."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select, text

from serving.moderation import review
from serving.moderation.audit import Actor
from serving.moderation.queries import reply_order
from serving.moderation.settings import ModerationSettings
from serving.storage.models import Comment, Thread
from serving.storage.moderation import AuditEntry, AuditLogIsAppendOnly, CommentLabel
from tests.serving.moderation.conftest import comment_pk, csrf_of, seed, thread_pk

ROW_RE = re.compile(r'<a href="/moderation/threads/(\d+)"><bdi>([^<]*)</bdi></a>')


def queue_threads(html: str) -> list[str]:
    return [name for _, name in ROW_RE.findall(html)]


def audit_entries(sessions) -> list[AuditEntry]:
    with sessions() as db:
        return list(db.scalars(select(AuditEntry).where(AuditEntry.action.not_like("user.%")).order_by(AuditEntry.id)))


def test_queue_lists_flagged_threads_worst_first(moderator):
    page = moderator.get("/moderation/")
    assert page.status_code == 200
    assert queue_threads(page.text) == ["t1", "t3"]  # t2 is calm; t1 has 3 hostile comments, t3 two
    assert '<span class="lang">en</span>' in page.text and '<span class="lang">es</span>' in page.text
    assert "3 hostile ≥ 3" in page.text and "100% hostile ≥ 50%" in page.text
    newest = moderator.get("/moderation/?sort=newest")
    assert queue_threads(newest.text) == ["t3", "t1"]


def test_queue_filters(moderator, sessions):
    assert queue_threads(moderator.get("/moderation/?community=c2").text) == ["t3"]
    assert queue_threads(moderator.get("/moderation/?lang=en").text) == ["t1"]
    assert queue_threads(moderator.get("/moderation/?lang=fr").text) == []
    assert "No flagged threads match these filters." in moderator.get("/moderation/?lang=fr").text
    with sessions.begin() as db:
        db.get(Thread, thread_pk(sessions, "c1", "t1")).status = "resolved"
    assert queue_threads(moderator.get("/moderation/").text) == ["t3"]
    assert queue_threads(moderator.get("/moderation/?status=resolved").text) == ["t1"]
    assert queue_threads(moderator.get("/moderation/?status=any").text) == ["t1", "t3"]
    assert queue_threads(moderator.get("/moderation/?status=bogus&page=x").text) == ["t3"]  # bad input: defaults


def test_queue_paginates(moderator, keys):
    seed(
        moderator,
        keys.score,
        [
            {"id": f"p{i}-{j}", "thread_id": f"p{i}", "community_id": "c3", "text": "go back", "lang": "en"}
            for i in range(30)
            for j in range(3)
        ],
    )
    first = moderator.get("/moderation/?community=c3")
    assert len(queue_threads(first.text)) == 25
    assert "page 1 of 2 · 30 threads" in first.text
    assert 'href="/moderation/?page=2&amp;status=open&amp;community=c3&amp;sort=worst"' in first.text
    second = moderator.get("/moderation/?community=c3&page=2")
    assert len(queue_threads(second.text)) == 5
    assert not set(queue_threads(first.text)) & set(queue_threads(second.text))


def test_thread_shows_comments_in_reply_order(moderator, sessions):
    page = moderator.get(f"/moderation/threads/{thread_pk(sessions, 'c1', 't1')}")
    assert page.status_code == 200
    ids = re.findall(r'<span class="small muted id">#<bdi>([^<]+)</bdi>', page.text)
    assert ids == ["1", "2", "4", "3", "5"]  # 2 and 3 answer 1, 4 answers 2, 5 starts anew
    depths = re.findall(r'class="comment (depth-\d)', page.text)
    assert depths == ["depth-0", "depth-1", "depth-2", "depth-1", "depth-0"]
    assert page.text.count("is-hostile") == 3
    assert '<mark class="driver" title="drove the hostile score">idiot</mark>' in page.text


def test_reply_order_survives_cycles_and_missing_parents():
    def c(i, parent=None):
        return Comment(comment_id=i, parent_id=parent)

    ordered = reply_order([c("a", "b"), c("b", "a"), c("r"), c("x", "gone"), c("y", "r")])
    assert [(x.comment_id, d, orphan) for x, d, orphan in ordered] == [
        ("r", 0, False),
        ("y", 1, False),
        ("x", 0, True),
        ("a", 0, True),
        ("b", 0, True),
    ]


def test_unknown_thread_is_404(moderator):
    response = moderator.get("/moderation/threads/9999")
    assert response.status_code == 404
    assert "There is no thread 9999." in response.text
    assert moderator.get("/moderation/threads/abc").status_code == 404


def post_review(client, sessions, comment_id: str, action: str, community: str = "c1"):
    pk = comment_pk(sessions, community, comment_id)
    token = csrf_of(client.get("/moderation/").text)
    return client.post(f"/moderation/comments/{pk}/review", data={"action": action, "csrf_token": token})


def test_reject_a_hostile_tag_writes_an_audit_entry(moderator, sessions, users):
    response = post_review(moderator, sessions, "2", "reject:hostile")
    tpk = thread_pk(sessions, "c1", "t1")
    cpk = comment_pk(sessions, "c1", "2")
    assert response.status_code == 303
    assert response.headers["location"] == f"/moderation/threads/{tpk}?page=1&done=tag.reject#c{cpk}"
    with sessions() as db:
        label = db.scalar(select(CommentLabel))
        assert (label.comment_id, label.tag, label.label, label.model_label) == ("2", "hostile", False, True)
        assert label.moderator_id == users.moderator_id
        assert db.get(Comment, cpk).hostile is True  # the model's output is never rewritten
    (entry,) = audit_entries(sessions)
    assert (
        entry.actor,
        entry.actor_id,
        entry.action,
        entry.community_id,
        entry.thread_id,
        entry.comment_id,
        entry.tag,
    ) == ("mia", users.moderator_id, "tag.reject", "c1", "t1", "2", "hostile")
    assert json.loads(entry.before) == {"welcoming": 0, "curious": 0, "hostile": 1}
    assert json.loads(entry.after) == {"welcoming": 0, "curious": 0, "hostile": 0}
    page = moderator.get(response.headers["location"])
    assert "Tag rejected as a false positive." in page.text
    assert "chip hostile state-rejected" in page.text
    assert page.text.count("is-hostile") == 2
    assert "−1 rejected" in moderator.get("/moderation/").text
    log = moderator.get("/moderation/audit")
    assert "tag.reject" in log.text and f'href="/moderation/threads/{tpk}"' in log.text


def test_confirm_add_clear_and_accept(moderator, sessions):
    assert post_review(moderator, sessions, "2", "confirm:hostile").status_code == 303
    assert post_review(moderator, sessions, "1", "add:welcoming").status_code == 303
    again = post_review(moderator, sessions, "1", "add:welcoming")
    assert again.headers["location"].endswith("done=nochange#c" + str(comment_pk(sessions, "c1", "1")))
    assert post_review(moderator, sessions, "1", "clear:welcoming").status_code == 303
    assert post_review(moderator, sessions, "3", "accept").status_code == 303
    entries = audit_entries(sessions)
    assert [e.action for e in entries] == ["tag.confirm", "tag.add", "tag.clear", "comment.accept"]
    assert json.loads(entries[1].after) == {"welcoming": 1, "curious": 0, "hostile": 0}
    assert json.loads(entries[2].after) == {"welcoming": 0, "curious": 0, "hostile": 0}
    with sessions() as db:
        accepted = {(r.tag, r.label) for r in db.scalars(select(CommentLabel).where(CommentLabel.comment_id == "3"))}
    assert accepted == {("welcoming", True), ("curious", True), ("hostile", False)}


@pytest.mark.parametrize(
    "action,message",
    [
        ("confirm:welcoming", "the model did not tag this comment welcoming: use add for a missed tag"),
        ("reject:curious", "the model did not tag this comment curious: clear an added tag instead"),
        ("add:hostile", "the model already tagged this comment hostile: confirm it instead"),
        ("reject:rude", "unknown tag &#39;rude&#39;"),
        ("delete:hostile", "unknown action &#39;delete&#39;"),
    ],
)
def test_refused_review_actions(moderator, sessions, action, message):
    response = post_review(moderator, sessions, "2", action)
    assert response.status_code == 400
    assert message in response.text
    assert audit_entries(sessions) == []


def test_review_of_unknown_comment_is_404(moderator):
    token = csrf_of(moderator.get("/moderation/").text)
    response = moderator.post("/moderation/comments/9999/review", data={"action": "accept", "csrf_token": token})
    assert response.status_code == 404


def test_resolve_needs_a_reason_and_is_audited(moderator, sessions):
    pk = thread_pk(sessions, "c1", "t1")
    token = csrf_of(moderator.get(f"/moderation/threads/{pk}").text)
    missing = moderator.post(
        f"/moderation/threads/{pk}/status", data={"action": "resolve", "reason": "  ", "csrf_token": token}
    )
    assert missing.status_code == 400 and "give a reason to resolve a thread" in missing.text
    done = moderator.post(
        f"/moderation/threads/{pk}/status",
        data={"action": "resolve", "reason": "troll warned", "csrf_token": token},
    )
    assert done.status_code == 303 and done.headers["location"] == f"/moderation/threads/{pk}?done=thread.resolve"
    page = moderator.get(done.headers["location"])
    assert "Thread resolved." in page.text and "troll warned" in page.text
    assert 'value="reopen"' in page.text and 'value="resolve"' not in page.text
    reopen = moderator.post(f"/moderation/threads/{pk}/status", data={"action": "reopen", "csrf_token": token})
    assert reopen.status_code == 303
    dismiss = moderator.post(
        f"/moderation/threads/{pk}/status",
        data={"action": "dismiss", "reason": "banter", "csrf_token": token},
    )
    assert dismiss.status_code == 303
    entries = audit_entries(sessions)
    assert [(e.action, json.loads(e.before), json.loads(e.after), e.reason) for e in entries] == [
        ("thread.resolve", {"status": "open"}, {"status": "resolved"}, "troll warned"),
        ("thread.reopen", {"status": "resolved"}, {"status": "open"}, None),
        ("thread.dismiss", {"status": "open"}, {"status": "dismissed"}, "banter"),
    ]
    with sessions() as db:
        assert db.get(Thread, pk).status == "dismissed"


def test_audit_page_filters(moderator, sessions):
    post_review(moderator, sessions, "2", "reject:hostile")
    post_review(moderator, sessions, "x2", "confirm:hostile", community="c2")
    everything = moderator.get("/moderation/audit")
    assert everything.text.count("<code>tag.") == 2
    by_action = moderator.get("/moderation/audit?action=tag.reject")
    assert by_action.text.count("<code>tag.") == 1 and "<code>tag.reject</code>" in by_action.text
    by_community = moderator.get("/moderation/audit?community=c2")
    assert by_community.text.count("<code>tag.") == 1 and "<code>tag.confirm</code>" in by_community.text
    assert moderator.get("/moderation/audit?actor=nobody").text.count("<code>tag.") == 0
    assert moderator.get("/moderation/audit?since=2999-01-01").text.count("<code>tag.") == 0
    group = moderator.get("/moderation/audit?action=tag.")
    assert group.text.count("<code>tag.") == 2
    assert "<th>IP</th>" not in everything.text  # only admins see addresses


def test_audit_page_offers_no_way_to_edit(moderator, sessions):
    post_review(moderator, sessions, "2", "reject:hostile")
    page = moderator.get("/moderation/audit")
    assert "<form" in page.text  # the filter form, which only GETs
    assert 'method="post"' not in page.text.split("<main>")[1].split("</table>")[0]


def test_audit_log_is_append_only(seeded, sessions, users):
    with sessions.begin() as db:
        review.review_comment(
            db,
            comment_pk=_any_comment(db),
            action="accept",
            tag=None,
            actor=Actor(id=users.moderator_id, name="mia"),
        )
    with sessions() as db, pytest.raises(AuditLogIsAppendOnly):
        entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "comment.accept"))
        entry.reason = "rewritten"
        db.flush()
    with sessions() as db, pytest.raises(AuditLogIsAppendOnly):
        db.delete(db.scalar(select(AuditEntry)))
        db.flush()
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with sessions.begin() as db, pytest.raises(Exception, match="append-only"):
            db.execute(text(statement))
    with sessions() as db:
        assert db.query(AuditEntry).filter(AuditEntry.actor == "someone else").count() == 0


def _any_comment(db) -> int:
    return db.scalar(select(Comment.id).limit(1))


def test_a_failed_audit_write_rolls_back_the_change(seeded, sessions, users, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(review, "record", broken)
    pk = comment_pk(sessions, "c1", "2")
    with pytest.raises(RuntimeError, match="disk full"), sessions.begin() as db:
        review.review_comment(
            db, comment_pk=pk, action="reject", tag="hostile", actor=Actor(id=users.moderator_id, name="mia")
        )
    with pytest.raises(RuntimeError, match="disk full"), sessions.begin() as db:
        review.set_thread_status(
            db,
            thread_pk=thread_pk(sessions, "c1", "t1"),
            action="resolve",
            reason="x",
            actor=Actor(id=users.moderator_id, name="mia"),
        )
    with sessions() as db:
        assert db.scalars(select(CommentLabel)).all() == []
        assert db.get(Thread, thread_pk(sessions, "c1", "t1")).status == "open"


def test_thread_pages_split_long_threads(moderator, sessions, keys):
    moderator.app.state.moderation.settings = ModerationSettings(thread_page_size=10)
    seed(
        moderator,
        keys.score,
        [
            {
                "id": f"L{i:02d}",
                "thread_id": "long",
                "community_id": "c4",
                "text": "go back" if i % 2 else "ok",
            }
            for i in range(25)
        ],
    )
    pk = thread_pk(sessions, "c4", "long")
    first = moderator.get(f"/moderation/threads/{pk}")
    assert first.text.count('class="comment ') == 10 and "page 1 of 3 · 25 comments" in first.text
    last = moderator.get(f"/moderation/threads/{pk}?page=3")
    assert last.text.count('class="comment ') == 5
