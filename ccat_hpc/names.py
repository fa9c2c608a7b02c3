"""Messages for a name that matches nothing: the closest match and the valid choices (pure).

Used wherever a user names an instrument, module, obs unit, program, location or site,
so every such error reads the same::

    unknown instrument 'PrimeKam'; did you mean 'PrimeCam'? (known: CHAI, PrimeCam)
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

#: Up to this many choices are listed in full; above it, the count and the closest ones.
MAX_LISTED = 12
#: How many close matches a long list is summarised with.
MAX_CLOSEST = 3
#: How alike a choice must be to be suggested (difflib's ratio, 0..1).
CUTOFF = 0.6


def closest_names(name: str, choices: Sequence[str], n: int = MAX_CLOSEST) -> list[str]:
    """The choices most like ``name``, best first, compared without regard to case."""
    by_folded: dict[str, str] = {}
    for choice in sorted(set(choices)):
        by_folded.setdefault(choice.casefold(), choice)
    matches = difflib.get_close_matches(name.casefold(), list(by_folded), n=n, cutoff=CUTOFF)
    return [by_folded[match] for match in matches]


def _known(choices: list[str], closest: list[str]) -> str:
    if not choices:
        return "(none known)"
    if len(choices) <= MAX_LISTED:
        return f"(known: {', '.join(choices)})"
    if closest:
        return f"({len(choices)} known; closest: {', '.join(closest)})"
    return f"({len(choices)} known; first: {', '.join(choices[:MAX_CLOSEST])}, …)"


def unknown_name_message(what: str, name: str, choices: Sequence[str]) -> str:
    """One line saying ``name`` is not a known ``what``, with a suggestion and the choices."""
    known = sorted(set(choices), key=lambda choice: (choice.casefold(), choice))
    closest = closest_names(name, known)
    suggestion = f"; did you mean {closest[0]!r}?" if closest else ""
    return f"unknown {what} {name!r}{suggestion} {_known(known, closest)}"
