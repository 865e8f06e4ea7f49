"""Actions the engine cores return that are not specific to one side."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Log"]


class Log(NamedTuple):
    """One log line for the adapter to write (already rate-limited where a peer could cause it).

    ``level``: a :mod:`logging` level name (``"INFO"``, ``"WARNING"``, ``"ERROR"``).
    """

    level: str
    message: str
