"""Signatures verified by the `standardwebhooks` reference package; URL checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from serving.webhooks.signing import generate_secret, secret_key, sign, signed_headers
from serving.webhooks.urls import UnsafeURL, check_url


def test_standardwebhooks_verifies_our_signature():
    secret = generate_secret()
    body = b'{"type":"thread.flagged","timestamp":"2026-01-01T00:00:00.000000Z","data":{"thread_id":"t1"}}'
    headers = signed_headers(secret, "msg_1", int(time.time()), body)
    assert Webhook(secret).verify(body, headers)["data"] == {"thread_id": "t1"}
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"t1", b"t2"), headers)


def test_signature_is_the_spec_hmac_of_id_timestamp_body():
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    expected = base64.b64encode(hmac.new(b"k" * 32, b"msg_x.1700000000.{}", hashlib.sha256).digest()).decode()
    assert sign(secret, "msg_x", 1700000000, b"{}") == "v1," + expected


def test_secrets_are_whsec_base64_of_24_to_64_bytes():
    assert len(secret_key(generate_secret())) == 32
    for bad, why in [
        ("abc", "starts with"),
        ("whsec_!!", "base64"),
        ("whsec_" + base64.b64encode(b"x" * 8).decode(), "24 to 64"),
    ]:
        with pytest.raises(ValueError, match=why):
            secret_key(bad)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.org/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http://127.0.0.1:8000/x", "loopback"),
        ("http://localhost/x", "loopback"),
        ("http://[::1]/x", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://10.1.2.3/x", "private"),
        ("http://192.168.0.10/x", "private"),
        ("http://[::ffff:10.0.0.1]/x", "private"),
        ("http://0.0.0.0/x", "unspecified"),
        ("http://user:pw@example.org/x", "no credentials"),
    ],
)
def test_unsafe_urls_are_refused(url, why):
    with pytest.raises(UnsafeURL, match=why):
        check_url(url, allow_private=False)


def test_public_addresses_pass_and_private_ones_when_allowed():
    check_url("https://8.8.8.8/hook", allow_private=False)  # a literal address: no DNS needed
    check_url("http://127.0.0.1:9/hook", allow_private=True)
    with pytest.raises(UnsafeURL, match="only http"):
        check_url("gopher://127.0.0.1/", allow_private=True)
