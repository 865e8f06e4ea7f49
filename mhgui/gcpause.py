"""Pausing Python's cyclic garbage collector around bulk work (the flows view at 50,000 sockets).

Building tens of thousands of small objects (a poll's flows, the model's rows) triggers collection
passes over the whole heap, about as costly as the building itself (``benchmarks/flows_poll.py``).
These objects hold no reference cycles, so reference counting frees them; pausing the collector
meanwhile loses nothing.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator

__all__ = ["gc_paused"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block; the collector is enabled again after it if it was before
    (when blocks overlap in two threads, the first one to pause it resumes it)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
