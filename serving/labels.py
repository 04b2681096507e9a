"""The product's fixed vocabularies, each written once: tags, thread statuses, key scopes, roles.

A served bundle must carry exactly TAGS (in any order); the tables check these values too (their
CHECK constraints are built from these tuples, the migrations spell them out as they were then).
"""

from __future__ import annotations

from typing import Literal, get_args

Tag = Literal["welcoming", "curious", "hostile"]
TAGS: tuple[str, ...] = get_args(Tag)

# A flagged thread's review status: open until a moderator resolves or dismisses it.
ThreadStatus = Literal["open", "resolved", "dismissed"]
THREAD_STATUSES: tuple[str, ...] = get_args(ThreadStatus)

# What an API key may do; `admin` implies the other scopes.
Scope = Literal["score", "read", "admin"]
SCOPES: tuple[str, ...] = get_args(Scope)
ADMIN = "admin"

# Moderator accounts: admins also manage accounts.
Role = Literal["moderator", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
