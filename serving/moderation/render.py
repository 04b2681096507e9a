"""Jinja2 templates (autoescape always on) and the filters that show untrusted text safely.

Usage: `html = render("queue.html", viewer=viewer, rows=rows)`.

Comment text, author names and community ids are attacker-controlled. Autoescaping turns markup
into text; `reveal` also replaces the invisible bidirectional controls (U+202E RIGHT-TO-LEFT
OVERRIDE and friends) by visible markers, so a comment cannot make itself or its neighbours read
backwards, and moderators see that the trick was tried.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

TEMPLATES = Path(__file__).resolve().parent / "templates"

BIDI_CONTROLS = {
    "\u061c": "ALM",
    "\u200e": "LRM",
    "\u200f": "RLM",
    "\u202a": "LRE",
    "\u202b": "RLE",
    "\u202c": "PDF",
    "\u202d": "LRO",
    "\u202e": "RLO",
    "\u2066": "LRI",
    "\u2067": "RLI",
    "\u2068": "FSI",
    "\u2069": "PDI",
}
BIDI_RE = re.compile("[" + "".join(BIDI_CONTROLS) + "]")


def reveal(value: Any) -> Markup:
    """Escape `value`; show each bidi control character as a visible, inert marker."""
    text = "" if value is None else str(value)
    out: list[str] = []
    at = 0
    for match in BIDI_RE.finditer(text):
        out.append(str(escape(text[at : match.start()])))
        char = match.group()
        code = f"U+{ord(char):04X}"
        out.append(
            f'<span class="ctl" title="{code} {BIDI_CONTROLS[char]}: a hidden direction control">'
            f"[{BIDI_CONTROLS[char]}]</span>"
        )
        at = match.end()
    out.append(str(escape(text[at:])))
    return Markup("".join(out))


def plain(value: Any) -> str:
    """For places that cannot hold markup (<title>): bidi controls as [RLO]-style text."""
    text = "" if value is None else str(value)
    return BIDI_RE.sub(lambda m: f"[{BIDI_CONTROLS[m.group()]}]", text)


def when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def iso(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def query(path: str, **params: Any) -> str:
    """`path?k=v...` with the given non-empty parameters, url-encoded (autoescape then escapes the &)."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return path + ("?" + urlencode(kept) if kept else "")


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template, whatever its name
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(reveal=reveal, plain=plain, when=when, iso=iso, pct=pct, signed=signed)
    env.globals.update(query=query)
    return env


ENV = _env()


def render(template: str, **context: Any) -> str:
    return ENV.get_template(template).render(**context)
