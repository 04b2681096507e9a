"""Coral's external moderation phase: the request, its signature, and our decision.

Coral (coralproject/talk) POSTs each new or edited comment with `X-Coral-Signature:
sha256=<hex HMAC-SHA256(secret, raw body)>`, one comma-separated entry per active secret while a
secret rotates. We check every entry against every active secret in constant time, then answer
204 (no decision) or 200 with Coral's response shape: a FLAG action with COMMENT_DETECTED_TOXIC
and, when the integration says so, status SYSTEM_WITHHELD.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from serving.storage.integrations import ActiveSecret, CoralPolicy

SIGNATURE_HEADER = "x-coral-signature"
STAFF_ROLES = frozenset({"STAFF", "MODERATOR", "ADMIN"})
FLAG_TOXIC = {"actionType": "FLAG", "reason": "COMMENT_DETECTED_TOXIC"}


class _Coral(BaseModel):
    # Coral may add fields in later releases: ignore what we do not read.
    model_config = ConfigDict(extra="ignore")


class CoralComment(_Coral):
    body: StrictStr
    parentID: StrictStr | None = None  # noqa: N815 (Coral's field name)


class CoralAuthor(_Coral):
    id: StrictStr = Field(min_length=1, max_length=200)
    role: StrictStr


class CoralStory(_Coral):
    id: StrictStr = Field(min_length=1, max_length=200)
    url: StrictStr | None = None


class CoralSite(_Coral):
    id: StrictStr = Field(min_length=1, max_length=190)


class CoralRequest(_Coral):
    action: Literal["NEW", "EDIT"]
    comment: CoralComment
    author: CoralAuthor
    story: CoralStory
    site: CoralSite
    tenantID: StrictStr  # noqa: N815
    tenantDomain: StrictStr | None = None  # noqa: N815


def signatures(header: str | None) -> list[str]:
    """The hex digests in an X-Coral-Signature header (entries without `sha256=` are ignored)."""
    out = []
    for part in (header or "").split(","):
        scheme, _, digest = part.strip().partition("=")
        if scheme == "sha256" and digest:
            out.append(digest.strip().lower())
    return out


def sign(secret: str, body: bytes) -> str:
    """The header Coral sends for one secret (tests and `belong integrations coral` use it too)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(header: str | None, body: bytes, secrets: Sequence[ActiveSecret]) -> ActiveSecret | None:
    """The active secret that signed `body`, or None. Every pair is compared, in constant time."""
    given = signatures(header)
    matched: ActiveSecret | None = None
    for secret in secrets:
        expected = hmac.new(secret.secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        for digest in given:
            if hmac.compare_digest(expected, digest) and matched is None:
                matched = secret
    return matched


def comment_key(request: CoralRequest) -> str:
    """Coral sends no comment id before the comment exists: one derived from the request, so a
    resent request is stored once (an edit, with another body, is a new row)."""
    fields = [
        request.tenantID,
        request.site.id,
        request.story.id,
        request.author.id,
        request.comment.parentID,
        request.action,
        request.comment.body,
    ]
    digest = hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()
    return f"coral:{digest[:40]}"


def community_of(request: CoralRequest, policy: CoralPolicy) -> str:
    return policy.community_id or f"coral:{request.site.id}"


def decide(
    policy: CoralPolicy, request: CoralRequest, hostile: float, default_threshold: float
) -> dict[str, Any] | None:
    """Coral's response body, or None for "no decision" (answered 204)."""
    threshold = policy.hostile_threshold if policy.hostile_threshold is not None else default_threshold
    if hostile < threshold:
        return None
    if request.author.role in STAFF_ROLES and not policy.flag_staff:
        return None
    response: dict[str, Any] = {"actions": [dict(FLAG_TOXIC)]}
    if policy.withhold:
        response["status"] = "SYSTEM_WITHHELD"
    return response
