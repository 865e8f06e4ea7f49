"""Logging for the engine daemons: one line per record, with journal priorities under systemd.

When stderr is connected to the journal (systemd sets ``JOURNAL_STREAM``), each
line starts with ``<N>`` (sd-daemon(3) priority prefixes: 3 error, 4 warning,
6 info, 7 debug) so that ``journalctl -p err`` shows the errors.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["setup_logging"]

_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def setup_logging(name: str, verbose: bool = False) -> logging.Logger:
    """Configure the root logger for daemon ``name``; returns its logger."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return logging.getLogger(name)
