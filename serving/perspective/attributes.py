"""Perspective attribute names and the tags they are computed from.

Our own attributes are the tags; two Perspective names are mapped where a tag measures something
close enough to be useful (docs/migrating-from-perspective.md says how each one differs):
TOXICITY is our hostile probability, CURIOSITY_EXPERIMENTAL our curious probability.
"""

from __future__ import annotations

ATTRIBUTES: dict[str, str] = {
    "WELCOMING": "welcoming",
    "CURIOUS": "curious",
    "HOSTILE": "hostile",
    "TOXICITY": "hostile",
    "CURIOSITY_EXPERIMENTAL": "curious",
}

# Names Perspective serves and this server does not. Asked for, they fail the way Perspective fails
# an attribute it cannot score (LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE), which is the error callers
# already handle by dropping the attribute named in the details and retrying.
PERSPECTIVE_ONLY: frozenset[str] = frozenset(
    {
        "SEVERE_TOXICITY",
        "IDENTITY_ATTACK",
        "INSULT",
        "PROFANITY",
        "THREAT",
        "SEXUALLY_EXPLICIT",
        "FLIRTATION",
        "TOXICITY_FAST",
        "ATTACK_ON_AUTHOR",
        "ATTACK_ON_COMMENTER",
        "ATTACK_ON_PUBLISHER",
        "INCOHERENT",
        "INFLAMMATORY",
        "LIKELY_TO_REJECT",
        "OBSCENE",
        "OFF_TOPIC",
        "SPAM",
        "UNSUBSTANTIAL",
    }
)


def is_perspective_only(name: str) -> bool:
    """A Perspective attribute we do not score (incl. the *_EXPERIMENTAL families and NAME@VERSION)."""
    base = name.split("@", 1)[0]
    return base in PERSPECTIVE_ONLY or (base.endswith("_EXPERIMENTAL") and base not in ATTRIBUTES) or base != name
