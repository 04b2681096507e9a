"""Stream entries -> comments: both forms, and a clear reason for every malformed entry."""

from __future__ import annotations

import json

import pytest

from serving.api.schemas import CommentIn
from serving.consumer.entries import Entry, Malformed, dead_letter_fields, parse_entry


def entry(**fields: str | bytes) -> Entry:
    return Entry("1-0", {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()})


def test_flat_fields_make_a_comment_and_empty_values_are_absent():
    parsed = parse_entry(entry(id="c1", text="Welcome!", community_id="rn", thread_id="t1", parent_id="", lang="en"))
    assert isinstance(parsed, CommentIn)
    assert (parsed.id, parsed.text, parsed.community_id, parsed.thread_id, parsed.parent_id, parsed.lang) == (
        "c1",
        "Welcome!",
        "rn",
        "t1",
        None,
        "en",
    )


def test_a_json_comment_field_is_the_api_comment():
    parsed = parse_entry(
        entry(comment=json.dumps({"id": "c2", "text": "滚回去", "created_at": "2025-01-02T03:04:05Z"}))
    )
    assert isinstance(parsed, CommentIn) and parsed.id == "c2" and parsed.created_at is not None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"text": "no id"}, "id: Field required"),
        ({"id": "c", "text": ""}, "text: Field required"),
        ({"id": "c", "text": "x", "txt": "typo"}, "unknown field(s) ['txt']; a comment has ['id', 'text',"),
        ({"id": "c", "text": b"\xff\xfe"}, "field 'text' is not UTF-8 (invalid byte at 0)"),
        ({"comment": "{not json"}, "`comment` is not valid JSON: Expecting property name enclosed in double quotes"),
        ({"comment": "[1, 2]"}, "`comment` must be a JSON object, got list"),
        ({"comment": "{}", "id": "c"}, "a `comment` entry carries no other fields, got ['id']"),
        ({"id": "c", "text": "x", "created_at": "yesterday"}, "created_at: "),
        ({"id": "c", "text": "x" * 10_001}, "text: String should have at most 10000 characters"),
    ],
)
def test_malformed_entries_say_why(fields, reason):
    parsed = parse_entry(entry(**fields))
    assert isinstance(parsed, Malformed) and reason in parsed.reason


def test_a_dead_letter_keeps_the_original_fields_and_the_reason():
    malformed = parse_entry(entry(id="c", text=b"ok \xff"))
    assert isinstance(malformed, Malformed)
    fields = dead_letter_fields(malformed, stream="comments", consumer="a")
    assert fields["entry"] == "1-0" and fields["stream"] == "comments" and fields["consumer"] == "a"
    assert json.loads(fields["fields"]) == {"id": "c", "text": "ok \\xff"}
    assert fields["reason"] == "field 'text' is not UTF-8 (invalid byte at 3)"
