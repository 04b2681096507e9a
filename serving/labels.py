"""The three tags this product is built on (see LABELS.md); a served bundle must carry exactly these."""

from __future__ import annotations

TAGS: tuple[str, ...] = ("welcoming", "curious", "hostile")
