"""Encryption at rest for the shared secrets the server must be able to use again: Coral signing
secrets and webhook `whsec_` secrets.

Usage:
    box = load_secret_box()                 # BELONG_SECRETS_KEY, else the key file (created once)
    token = box.encrypt("whsec_...")        # what the database stores
    box.decrypt(token)                      # -> "whsec_..."

Why encrypted and not hashed: an HMAC is computed *with* the secret, so a verifier (Coral's
signature) or a signer (our webhooks) needs the secret itself; a hash could never check one.
API keys and passwords are only compared, so those are hashed; these are encrypted with Fernet
(AES-128-CBC + HMAC-SHA256, from `cryptography`). The key lives outside the database: in
`BELONG_SECRETS_KEY` (comma-separated Fernet keys: the first encrypts, all decrypt, for key
rotation) or in the file `BELONG_SECRETS_KEY_FILE` (default `var/secrets.key`, created with mode
0600 on first use). A database dump or backup alone then reveals no secret.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_KEY_FILE = Path("var/secrets.key")


class SecretsKeyError(RuntimeError):
    """The encryption key is missing, malformed, or does not open a stored secret."""


class SecretsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BELONG_SECRETS_", extra="forbid", frozen=True)

    key: str | None = None  # comma-separated Fernet keys (urlsafe base64 of 32 bytes)
    key_file: Path = DEFAULT_KEY_FILE


class SecretBox:
    """Encrypt and decrypt short secrets with one or more Fernet keys."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise SecretsKeyError("no encryption key given")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError) as exc:
            raise SecretsKeyError(f"not a Fernet key (urlsafe base64 of 32 bytes): {exc}") from exc

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise SecretsKeyError(
                "a stored secret does not open with the configured key (BELONG_SECRETS_KEY or the key file): "
                "was the key changed or lost?"
            ) from exc


def _read_or_create(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # O_EXCL: two processes starting at once never overwrite each other's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key


def load_secret_box(settings: SecretsSettings | None = None) -> SecretBox:
    """The box for this installation: the keys in BELONG_SECRETS_KEY, else the key file."""
    settings = settings or SecretsSettings()
    if settings.key:
        return SecretBox([k.strip().encode("ascii") for k in settings.key.split(",") if k.strip()])
    return SecretBox([_read_or_create(settings.key_file)])
