"""Where this process runs and where its system bus is, without D-Bus or asyncio (``mhctl status``'s fast path
and :mod:`mhgui.sources.access` share these).

:func:`read_sandbox` reads ``/.flatpak-info`` (``$MHGUI_FLATPAK_INFO`` or the ``path`` argument
overrides it, for tests); :func:`system_bus_address` is the address a connection to the system bus uses.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: `mhctl status` checks the bus address before loading the core
    from ..core.access import Sandbox

FLATPAK_INFO = "/.flatpak-info"
#: environment variable naming another flatpak-info file (tests)
FLATPAK_INFO_ENV = "MHGUI_FLATPAK_INFO"
_MAX_INFO = 1 << 20


def flatpak_info_path() -> str:
    return os.environ.get(FLATPAK_INFO_ENV) or FLATPAK_INFO


def read_sandbox(path: str | None = None) -> Sandbox:
    """The sandbox this process runs in: :data:`NO_SANDBOX` when ``path`` does not exist."""
    from ..core.access import NO_SANDBOX, Sandbox, parse_flatpak_info

    path = path or flatpak_info_path()
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_INFO + 1)
    except FileNotFoundError:
        return NO_SANDBOX
    except OSError as e:
        return Sandbox("flatpak", path=path, error=f"cannot read {path}: {e.strerror or e}")
    if len(data) > _MAX_INFO:
        return Sandbox("flatpak", path=path, error=f"{path} is larger than 1 MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return Sandbox("flatpak", path=path, error=f"{path} is not UTF-8 (byte {e.start})")
    return parse_flatpak_info(text, path)


def system_bus_address(given: str | None = None) -> str:
    """The system bus address a connection uses: ``given``, else ``$DBUS_SYSTEM_BUS_ADDRESS``, else the
    default socket (``unix:path=/var/run/dbus/system_bus_socket``, as dbus-fast and libdbus use)."""
    return given or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or "unix:path=/var/run/dbus/system_bus_socket"
