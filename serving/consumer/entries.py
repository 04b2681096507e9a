"""Stream entries in and out: a Redis Streams entry -> a comment (or the reason it is malformed),
and a scored comment -> the fields published to the output stream.

An entry carries one comment, in either form:
- flat fields, one per comment field: `id`, `text`, and optionally `community_id`, `thread_id`,
  `author_id`, `parent_id`, `created_at` (RFC 3339 with an offset), `lang`; an empty value means
  the field is absent (Redis has no null);
- or one field `comment` holding the comment as a JSON object, exactly as in `POST /v1/score`
  (handy when bridging from Kafka, whose records are a single value).
Either way it is validated by the API's own schema (`CommentIn`), so a comment refused over HTTP
is refused here with the same message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError

from serving.api.schemas import CommentIn
from serving.engine.batching import Scored
from serving.storage.comments import Key, StoredResult

COMMENT_FIELDS = ("id", "text", "community_id", "thread_id", "author_id", "parent_id", "created_at", "lang")
JSON_FIELD = "comment"


@dataclass(frozen=True)
class Entry:
    entry_id: str
    fields: dict[bytes, bytes]


@dataclass(frozen=True)
class Malformed:
    entry: Entry
    reason: str


def describe(exc: ValidationError) -> str:
    """`field: message` for each problem, as the API names them."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'comment'}: {err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    )


def decode_fields(entry: Entry) -> dict[str, str] | str:
    """Field names and values as text, or the reason they are not UTF-8."""
    decoded: dict[str, str] = {}
    for raw_name, raw_value in entry.fields.items():
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            return f"a field name is not UTF-8: {raw_name!r}"
        try:
            decoded[name] = raw_value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"field {name!r} is not UTF-8 (invalid byte at {exc.start})"
    return decoded


def parse_entry(entry: Entry) -> CommentIn | Malformed:
    fields = decode_fields(entry)
    if isinstance(fields, str):
        return Malformed(entry, fields)
    if JSON_FIELD in fields:
        if len(fields) > 1:
            others = sorted(set(fields) - {JSON_FIELD})
            return Malformed(entry, f"a `comment` entry carries no other fields, got {others}")
        try:
            payload = json.loads(fields[JSON_FIELD])
        except json.JSONDecodeError as exc:
            return Malformed(entry, f"`comment` is not valid JSON: {exc.msg} at character {exc.pos}")
        if not isinstance(payload, dict):
            return Malformed(entry, f"`comment` must be a JSON object, got {type(payload).__name__}")
    else:
        unknown = sorted(set(fields) - set(COMMENT_FIELDS))
        if unknown:
            return Malformed(entry, f"unknown field(s) {unknown}; a comment has {list(COMMENT_FIELDS)}")
        payload = {name: value for name, value in fields.items() if value != ""}
    try:
        return CommentIn.model_validate(payload)
    except ValidationError as exc:
        return Malformed(entry, describe(exc))


def key_of(comment: CommentIn) -> Key:
    """The store's key, as /v1/score uses it: (community_id or "", id)."""
    return (comment.community_id or "", comment.id)


def result_fields(
    entry_id: str, comment: CommentIn, result: Scored | StoredResult, *, model: str, version: str
) -> dict[str, str]:
    """What the output stream gets for one comment: the input entry id, the comment's key, the
    result as `/v1/score` answers it (JSON-encoded where it is not a plain string), the model."""
    return {
        "entry": entry_id,
        "id": comment.id,
        "community_id": comment.community_id or "",
        "scores": json.dumps(result.scores, separators=(",", ":")),
        "tags": json.dumps(result.tags, separators=(",", ":")),
        "lang": result.lang,
        "truncated": json.dumps(result.truncated),
        "model": model,
        "model_version": version,
    }


def dead_letter_fields(malformed: Malformed, *, stream: str, consumer: str) -> dict[str, str]:
    """The dead-letter stream keeps the reason and the original fields (bytes shown with escapes)."""
    original = {
        name.decode("utf-8", "backslashreplace"): value.decode("utf-8", "backslashreplace")
        for name, value in malformed.entry.fields.items()
    }
    return {
        "entry": malformed.entry.entry_id,
        "stream": stream,
        "reason": malformed.reason,
        "fields": json.dumps(original, ensure_ascii=False),
        "consumer": consumer,
    }
