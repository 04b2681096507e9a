"""Security headers for the moderator pages (the JSON API and /docs keep their own).

The Content-Security-Policy allows scripts, styles, images and forms from this origin only: no
inline script, no inline style attribute, no plugins, no <base>, no framing. The templates hold no
script at all; bars and charts are SVG shapes sized by attributes, colours come from the CSS file.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
PAGE_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
NO_STORE = (b"cache-control", b"no-store")


class SecurityHeadersMiddleware:
    """Add PAGE_HEADERS to every response under `prefix` (and to `/`, which redirects there);
    pages also get `Cache-Control: no-store`, static files keep their own caching."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self.static = prefix + "/static/"

    def _applies(self, path: str) -> bool:
        return path == "/" or path == self.prefix or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._applies(scope["path"]):
            await self.app(scope, receive, send)
            return
        is_page = not scope["path"].startswith(self.static)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers += [h for h in PAGE_HEADERS if h[0] not in names]
                if is_page:
                    headers = [h for h in headers if h[0].lower() != b"cache-control"] + [NO_STORE]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
