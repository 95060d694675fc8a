"""Which contacts a re-permission campaign asks, by the proof already held for them.

Revalidating a list (the EU subscribers of an old tool, say) should ask only the
people whose consent cannot be proven well enough: a campaign's ``proof`` target
narrows its audience, per purpose of the campaign, using the purpose states the run
reads anyway (no extra request per contact):

- ``weak``: an acceptance imported with evidence grade B or C (``consent.imports``);
- ``none``: no decision and no imported evidence at all;
- ``weak_or_none``: either.

A contact is asked when at least one purpose of the campaign matches; a refusal,
imported or ours, is never "weak proof" (nobody who said no is asked again by this).
Without a target the campaign asks as before: everyone not already accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TARGETS = ("weak", "none", "weak_or_none")
WEAK_GRADES = ("B", "C")


def weak(state: Mapping[str, Any]) -> bool:
    """An acceptance resting on imported evidence of grade B or C."""
    return (
        state.get("source") == "imported"
        and state.get("state") == "accepted"
        and state.get("grade") in WEAK_GRADES
    )


def targeted(target: str, purposes: Iterable[str], states: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether a person with these purpose ``states`` is in the target."""
    for purpose in purposes:
        state = states.get(purpose) or {}
        if target in ("weak", "weak_or_none") and weak(state):
            return True
        if target in ("none", "weak_or_none") and not state.get("state"):
            return True
    return False
