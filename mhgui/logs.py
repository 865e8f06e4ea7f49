"""Logging for mhgui's services (the helper, the engine's daemons): one line per record, and journal
priorities under systemd.

When stderr is the journal's stream (systemd sets ``JOURNAL_STREAM`` to its ``DEVICE:INODE``,
and sd-daemon(3) says to compare it with stderr's: a child whose stderr went elsewhere inherits the
variable), each line starts with ``<N>`` (sd-daemon(3) priority prefixes: 2 critical, 3 error,
4 warning, 6 info, 7 debug) so that ``journalctl -p err`` shows the errors as errors. A record of
several lines (a traceback, a message with a newline) becomes several journal entries: each line
carries the record's prefix, so a traceback is an error all the way down, not info after its first
line.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Mapping, TextIO

__all__ = ["journal_priority", "setup_logging", "stream_is_journal"]


def journal_priority(levelno: int) -> int:
    """The sd-daemon(3) priority of a logging level; a level between two named ones takes the lower's."""
    for level, priority in ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6)):
        if levelno >= level:
            return priority
    return 7


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{journal_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def stream_is_journal(stream: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``stream`` is the one ``$JOURNAL_STREAM`` names (``DEVICE:INODE``, decimal)."""
    try:
        device, inode = (int(part) for part in environ.get("JOURNAL_STREAM", "").split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def setup_logging(name: str, level: int = logging.INFO, fmt: str | None = None) -> logging.Logger:
    """Configure the root logger for service ``name`` at ``level``; ``fmt``: the line format outside the
    journal (default: time, level, logger, message). Returns the service's logger."""
    handler = logging.StreamHandler(sys.stderr)
    if stream_is_journal(sys.stderr):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter(fmt or "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pyroute2").setLevel(max(level, logging.WARNING))  # not every netlink message
    return logging.getLogger(name)
