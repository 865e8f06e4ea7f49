"""Logging for mhgui's services (the helper, the engine's daemons): one line per record, and journal
priorities under systemd.

When stderr is connected to the journal (systemd sets ``JOURNAL_STREAM``), each
line starts with ``<N>`` (sd-daemon(3) priority prefixes: 3 error, 4 warning,
6 info, 7 debug) so that ``journalctl -p err`` shows the errors as errors.
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


def setup_logging(name: str, level: int = logging.INFO, fmt: str | None = None) -> logging.Logger:
    """Configure the root logger for service ``name`` at ``level``; ``fmt``: the line format outside the
    journal (default: time, level, logger, message). Returns the service's logger."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter(fmt or "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pyroute2").setLevel(max(level, logging.WARNING))  # not every netlink message
    return logging.getLogger(name)
