"""Coral integrations: each has a moderation policy and one or more signing secrets (encrypted).

Usage (inside a session):
    integration = add_coral_secret(session, box, name="news", secret="ems_...", withhold=True)
    active = active_coral_secrets(session, box)      # [(integration, secret_id, plain secret), ...]
    revoke_coral(session, "news", secret_id=None)    # revoke every secret of "news"

Coral signs each request with every active secret of its phase while it rotates one, so an
integration keeps several secrets: add the new one, then revoke the old one once Coral stops
using it. Revoked rows stay for the record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from serving.storage.models import ID_LENGTH, Base
from serving.storage.secrets import SecretBox
from serving.timefmt import utcnow

NAME_LENGTH = 64


class CoralIntegration(Base):
    """One Coral installation (or phase) sending comments to POST /v1/integrations/coral."""

    __tablename__ = "coral_integrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    # Where its comments are stored; None: "coral:<site id>" from each request.
    community_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    # Flag at this hostile probability; None: the served bundle's hostile threshold.
    hostile_threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    withhold: Mapped[bool] = mapped_column(Boolean)  # also answer status SYSTEM_WITHHELD
    flag_staff: Mapped[bool] = mapped_column(Boolean)  # flag STAFF/MODERATOR/ADMIN authors too
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (UniqueConstraint("name", name="uq_coral_integrations_name"),)


class CoralSecret(Base):
    """A signing secret Coral shows its admin, stored Fernet-encrypted (see serving.storage.secrets)."""

    __tablename__ = "coral_secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    integration_id: Mapped[int] = mapped_column(Integer, ForeignKey("coral_integrations.id"))
    ciphertext: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(16))  # sha256 prefix, to tell secrets apart in listings
    created_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (Index("ix_coral_secrets_integration", "integration_id"),)


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class CoralPolicy:
    integration_id: int
    name: str
    community_id: str | None
    hostile_threshold: float | None
    withhold: bool
    flag_staff: bool


@dataclass(frozen=True)
class ActiveSecret:
    policy: CoralPolicy
    secret_id: int
    secret: str


def policy_of(row: CoralIntegration) -> CoralPolicy:
    return CoralPolicy(row.id, row.name, row.community_id, row.hostile_threshold, row.withhold, row.flag_staff)


def find_coral(session: Session, name: str) -> CoralIntegration | None:
    return session.scalar(select(CoralIntegration).where(CoralIntegration.name == name))


def add_coral_secret(
    session: Session,
    box: SecretBox,
    *,
    name: str,
    secret: str,
    community_id: str | None = None,
    hostile_threshold: float | None = None,
    withhold: bool | None = None,
    flag_staff: bool | None = None,
) -> tuple[CoralIntegration, CoralSecret]:
    """Add a signing secret to integration `name`, creating it when new; policy options given
    (not None) replace the stored ones. ValueError for an empty secret or one already active."""
    secret = secret.strip()
    if not secret:
        raise ValueError("the signing secret is empty")
    if hostile_threshold is not None and not 0.0 < hostile_threshold <= 1.0:
        raise ValueError(f"the hostile threshold must be in (0, 1], got {hostile_threshold}")
    row = find_coral(session, name)
    if row is None:
        row = CoralIntegration(
            name=name, withhold=bool(withhold), flag_staff=bool(flag_staff), created_at=utcnow(), community_id=None
        )
        session.add(row)
        session.flush()
    if community_id is not None:
        row.community_id = community_id or None
    if hostile_threshold is not None:
        row.hostile_threshold = hostile_threshold
    if withhold is not None:
        row.withhold = withhold
    if flag_staff is not None:
        row.flag_staff = flag_staff
    digest = fingerprint(secret)
    for existing in session.scalars(
        select(CoralSecret).where(CoralSecret.integration_id == row.id, CoralSecret.revoked_at.is_(None))
    ):
        if existing.fingerprint == digest and box.decrypt(existing.ciphertext) == secret:
            raise ValueError(f"this secret is already active for {name!r} (secret {existing.id})")
    stored = CoralSecret(integration_id=row.id, ciphertext=box.encrypt(secret), fingerprint=digest, created_at=utcnow())
    session.add(stored)
    session.flush()
    return row, stored


def list_coral(session: Session) -> list[tuple[CoralIntegration, list[CoralSecret]]]:
    out = []
    for row in session.scalars(select(CoralIntegration).order_by(CoralIntegration.name)):
        secrets = list(
            session.scalars(select(CoralSecret).where(CoralSecret.integration_id == row.id).order_by(CoralSecret.id))
        )
        out.append((row, secrets))
    return out


def revoke_coral(session: Session, name: str, secret_id: int | None = None) -> int:
    """Revoke one secret (by id) or every active secret of `name`; return how many were revoked.
    LookupError when there is no such integration or secret."""
    row = find_coral(session, name)
    if row is None:
        raise LookupError(f"no Coral integration named {name!r}")
    query = select(CoralSecret).where(CoralSecret.integration_id == row.id, CoralSecret.revoked_at.is_(None))
    if secret_id is not None:
        query = query.where(CoralSecret.id == secret_id)
    found = list(session.scalars(query))
    if secret_id is not None and not found:
        raise LookupError(f"{name!r} has no active secret {secret_id}")
    now = utcnow()
    for secret in found:
        secret.revoked_at = now
    return len(found)


def active_coral_secrets(session: Session, box: SecretBox) -> list[ActiveSecret]:
    """Every active secret with its integration's policy, decrypted."""
    rows = session.execute(
        select(CoralIntegration, CoralSecret)
        .join(CoralSecret, CoralSecret.integration_id == CoralIntegration.id)
        .where(CoralSecret.revoked_at.is_(None))
        .order_by(CoralSecret.id)
    ).all()
    return [ActiveSecret(policy_of(i), s.id, box.decrypt(s.ciphertext)) for i, s in rows]
