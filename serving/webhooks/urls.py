"""Which URLs webhooks may be sent to: http(s) only, and only public addresses unless allowed.

Usage: `check_url("https://hooks.example.org/x", allow_private=False)` raises UnsafeURL with the
reason. Checked when an endpoint is added and again before every delivery (DNS can change).
Loopback, link-local (cloud metadata at 169.254.169.254 included), private, shared (CGNAT),
multicast, reserved and unspecified addresses are refused: a webhook must not become a way to
reach the server's own network. An egress proxy is the stronger guard where one exists.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class UnsafeURL(ValueError):
    """The URL may not receive webhooks; the message says why."""


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _refused(address.ipv4_mapped)
    for kind in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:
        return "non-public"
    return None


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeURL(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    return sorted({str(info[4][0]) for info in infos})


def check_url(url: str, *, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL(f"only http and https URLs receive webhooks, got scheme {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise UnsafeURL(f"the URL {url!r} has no host")
    if parts.username or parts.password:
        raise UnsafeURL("put no credentials in the URL: the signature authenticates each delivery")
    if allow_private:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL(f"invalid port in {url!r}") from exc
    for address in resolve(parts.hostname, port):
        reason = _refused(ipaddress.ip_address(address.split("%", 1)[0]))
        if reason:
            raise UnsafeURL(
                f"{parts.hostname} resolves to {address}, a {reason} address: refused "
                "(set BELONG_WEBHOOK_ALLOW_PRIVATE=true to deliver inside your network)"
            )
