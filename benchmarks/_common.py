"""Shared by the benchmarks (run as scripts: `python benchmarks/NAME.py`)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Callable

_cleanups: list[Callable[[], None]] = []


def on_sigterm_cleanup(*cleanups: Callable[[], None]) -> None:
    """On SIGTERM (from `timeout`), run ``cleanups`` (e.g. delete namespaces) and exit 143.

    The cleanups run in the signal handler itself: an exception raised there could be
    swallowed by an event loop (Qt's) and leave namespaces behind. pyroute2's forked
    helpers inherit the handler and just end as SIGTERM ends them. Without cleanups,
    SIGTERM raises SystemExit so that ``finally`` blocks run.
    """
    main_pid = os.getpid()
    _cleanups.extend(cleanups)

    def handler(signum, frame):
        if os.getpid() != main_pid:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        if not _cleanups:
            sys.exit(143)
        for c in _cleanups:
            try:
                c()
            except Exception as e:  # keep cleaning
                print(f"cleanup failed: {e}", file=sys.stderr)
        os._exit(143)

    signal.signal(signal.SIGTERM, handler)
