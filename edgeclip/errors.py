"""User-facing errors.

A `UserError` is bad input the user can fix: the CLI prints its one-line message (which names
the problem and the fix) and exits 2, without a traceback. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """Bad input: one line naming the problem and the fix. The CLI exits 2."""

    exit_code = 2


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Names in `choices` that look like `word` (case-insensitive), best first."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.5)
    # Substring hits help for long registry names typed partially ("mobilenet" -> mobilenetv3_*).
    for c in choices:
        if word.lower() in c.lower() and c.lower() not in hits:
            hits.append(c.lower())
    return [lowered[h] for h in hits[:n]]


def unknown_name_error(kind: str, name: str, known: Iterable[str], fix: str = "") -> UserError:
    """`unknown student 'mobilenet'; did you mean 'mobilenetv3_small'? (known: ...)`."""
    known = sorted(known)
    hint = close_matches(name, known)
    msg = f"unknown {kind} '{name}'"
    if hint:
        msg += "; did you mean " + " or ".join(f"'{h}'" for h in hint) + "?"
    shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    msg += f" (known: {shown})"
    if fix:
        msg += f"; {fix}"
    return UserError(msg)
