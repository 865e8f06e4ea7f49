"""What both engine daemons share at start: their command line, logging (with journal priorities under
systemd), and running until SIGTERM/SIGINT.

When stderr is connected to the journal (systemd sets ``JOURNAL_STREAM``), each
line starts with ``<N>`` (sd-daemon(3) priority prefixes: 3 error, 4 warning,
6 info, 7 debug) so that ``journalctl -p err`` shows the errors.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Awaitable, Callable

__all__ = ["daemon_parser", "run_until_signal", "setup_logging"]

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
    logging.getLogger("pyroute2").setLevel(logging.WARNING)  # -v is about the engine, not every netlink message
    return logging.getLogger(name)


def daemon_parser(prog: str, description: str, default_config: str) -> argparse.ArgumentParser:
    """The options both daemons take: ``--config``, ``--check``, ``-v``."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--config", default=default_config, help="configuration file (default %(default)s)")
    p.add_argument("--check", action="store_true", help="check the configuration and key files, then exit")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]], log: logging.Logger) -> int:
    """Run ``main(stop)`` in a new event loop; SIGTERM and SIGINT set ``stop``. Exit status: 0, or 1 when the
    daemon could not run (an OSError: a TUN device, a socket, a netlink request refused), logged as an error."""
    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        asyncio.run(_main())
    except OSError as e:
        log.error("cannot run: %s", e)
        return 1
    return 0
