"""What both engine daemons share at start: their command line, logging (with journal priorities under
systemd, :mod:`mhgui.logs`), and running until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Awaitable, Callable

from ..logs import setup_logging as _setup

__all__ = ["daemon_parser", "run_until_signal", "setup_logging"]

def setup_logging(name: str, verbose: bool = False) -> logging.Logger:
    """Configure logging for daemon ``name`` (:func:`mhgui.logs.setup_logging`); returns its logger."""
    return _setup(name, logging.DEBUG if verbose else logging.INFO)


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
