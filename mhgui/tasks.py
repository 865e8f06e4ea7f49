"""asyncio task helpers shared by the sources, the drivers and the failover service."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel ``task`` and wait for it; re-raises only when the caller itself is being cancelled.

    An exception the task ends with is logged, never raised into the caller (who is stopping).
    """
    if task is None or task.done():
        if task is not None and not task.cancelled():
            task.exception()  # mark retrieved
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        cur = asyncio.current_task()
        if cur is not None and cur.cancelling():
            raise
    except Exception:
        log.exception("task %s failed while stopping", task.get_name())
