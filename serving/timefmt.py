"""Time helpers: the database keeps naive UTC; the API speaks RFC 3339 with an offset."""

from __future__ import annotations

import re
from datetime import datetime, timezone

# RFC 3339 date-time: a full date, a time and a mandatory offset ("Z" or +hh:mm).
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def utcnow() -> datetime:
    """Now, naive UTC, as stored."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_db(value: datetime) -> datetime:
    """An aware datetime as naive UTC for storage."""
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def from_db(value: datetime) -> datetime:
    """A stored naive UTC datetime as an aware one."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 date-time; ValueError names what was expected."""
    if not isinstance(value, str) or not RFC3339.match(value):
        raise ValueError(f"expected an RFC 3339 date-time such as 2025-01-31T18:04:05Z, got {value!r}")
    text = value.replace("z", "Z").replace("t", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python reads at most microseconds: trim extra fractional digits.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError as exc:
        raise ValueError(f"expected an RFC 3339 date-time, got {value!r}: {exc}") from exc
