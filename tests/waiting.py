"""Waiting in the event loop for what the code under test does (the one ``until`` the tests share)."""

from __future__ import annotations

import asyncio

__all__ = ["until"]


async def until(pred, what: str = "condition", timeout: float = 10.0, poll: float = 0.01) -> None:
    """Wait in the running event loop (where the services, sources and drivers run) until ``pred()`` is
    true, checking every ``poll`` seconds; AssertionError naming ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(poll)
