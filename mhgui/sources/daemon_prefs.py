"""UMIP's ``MnIfPreference`` values, from mip6d.conf or, inside a Flatpak sandbox, from the privileged helper.

The preferences dialog shows the order in use, which needs mip6d.conf's ``MnIfPreference`` values
(:func:`mhgui.core.orderinuse.order_in_use`). A sandboxed app cannot see the host's ``/etc``
(:mod:`mhgui.sources.config`), so :func:`read_mnif` then asks the helper's
``GetInterfacePreferences() -> a{su}`` (:mod:`mhgui.helper.service`): only ``{interface: value}``, the
file and its includes as the helper reads them, nothing else of the file (mip6d.conf can name IPsec key
files). That method asks no polkit; the bus policy alone decides who may call the helper.
"""

from __future__ import annotations

import asyncio
import logging

from .config import read_interface_preferences

__all__ = ["read_mnif"]

log = logging.getLogger(__name__)


async def read_mnif(path: str | None, *, via_helper: bool, system_bus: str | None = None,
                    timeout: float = 10.0) -> dict[str, int] | None:
    """``{interface: MnIfPreference}`` of mip6d.conf ({} when it has none), or None when not known.

    ``via_helper`` (inside a sandbox, no file given): from the helper on ``system_bus`` (None: the
    environment's), waiting at most ``timeout`` s; a helper that is absent or fails gives None (logged).
    Otherwise ``path`` is read in an executor (:func:`~mhgui.sources.config.read_interface_preferences`:
    None for a missing, unreadable or malformed file). Never raises for these."""
    if not via_helper:
        return await asyncio.get_running_loop().run_in_executor(None, read_interface_preferences, path)
    from ..helper.client import HelperClient, HelperError
    try:
        async with HelperClient(system_bus, timeout=timeout) as helper:
            return await helper.interface_preferences()
    except HelperError as e:
        log.info("MnIfPreference not known: the helper did not give them: %s", e)
        return None
