"""The exceptions act raises for bad input.

Every user-facing problem is an :class:`ActError`; the ``act`` command prints its
message on stderr and exits with status 2, without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ActError(Exception):
    """Base class of every error caused by input a user gave act."""


class ParseError(ActError, ValueError):
    """A malformed expression or schema.

    ``text`` is the input and ``position`` the 0-based character offset of the problem;
    the message shows the input with a caret under that position.
    """

    def __init__(self, message: str, text: str, position: int):
        self.text = text
        self.position = position
        self.reason = message
        caret = " " * position + "^"
        super().__init__(f"{message} at position {position}\n  {text}\n  {caret}")


class UnknownNameError(ActError, LookupError):
    """A name that no installed plugin provides; the message lists close matches."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind = kind
        self.name = name
        known = sorted(known)
        self.suggestions = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        message = f"unknown {kind} {name!r}"
        if self.suggestions:
            message += f"; did you mean {', '.join(map(repr, self.suggestions))}?"
        elif known:
            shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
            message += f"; known: {shown}"
        else:
            message += f"; no {kind} is registered (is the plugin that provides it installed?)"
        super().__init__(message)

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return self.args[0]


class PluginError(ActError):
    """A plugin that cannot be used as installed, e.g. two plugins claiming one name."""
