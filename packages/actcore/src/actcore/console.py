"""What act says while it works: results on stdout, everything else through ``logging``
and progress bars on stderr, both quieted by ``act -q`` and widened by ``act -v``.

Progress bars are tqdm's, with two rules for output that is not a terminal (a log file,
CI): bars nested inside another bar stay silent (tqdm moves the cursor up to redraw them,
which leaves ``\\x1b[A`` in a file), and the outer bar redraws at most every 10 s.
"""

from __future__ import annotations

import logging
import sys

from tqdm.auto import tqdm

log = logging.getLogger("act")

QUIET, NORMAL, VERBOSE = -1, 0, 1
_verbosity = NORMAL


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (tests and notebooks replace it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure(verbosity: int = NORMAL) -> None:
    """Set up the ``act`` logger for a command: ``QUIET`` shows warnings and errors only
    (and no progress bars), ``NORMAL`` also what was written where, ``VERBOSE`` details."""
    global _verbosity
    _verbosity = verbosity
    level = {QUIET: logging.WARNING, NORMAL: logging.INFO}.get(verbosity, logging.DEBUG)
    log.setLevel(level)
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False


class Progress(tqdm):
    """A tqdm bar on stderr that follows act's verbosity and the two non-terminal rules."""

    _open = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **self.options(**kwargs))
        self._counted = not self.disable
        Progress._open += self._counted

    @staticmethod
    def options(**kwargs) -> dict:
        """tqdm keyword arguments that follow act's rules, for bars that libraries draw
        themselves (umap-learn's layout epochs)."""
        stream = kwargs.setdefault("file", sys.stderr)
        terminal = hasattr(stream, "isatty") and stream.isatty()
        if _verbosity <= QUIET or (Progress._open and not terminal):
            kwargs["disable"] = True
        if not terminal:
            kwargs.setdefault("mininterval", 10.0)
            kwargs["leave"] = True  # a closed bar that clears itself moves the cursor
        return kwargs

    def close(self) -> None:
        if getattr(self, "_counted", False):
            Progress._open -= 1
            self._counted = False
        super().close()
