"""What ``mhctl status`` says of UMIP's mip6d when its terminal does not answer, without the asyncio driver.

The driver (:mod:`mhgui.daemons.umip`) and the fast status path (:mod:`mhgui.status_fast`) share these:
the terminal's default port and hosts, the sentences for "nothing answers", the process probe and
the capabilities of mainline UMIP (umip.md sections 3 and 6).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mhgui.core.capabilities import DaemonCapabilities

#: ``src/vt.h``: service "7777" on "localhost"; ``--vt-service`` changes the port
DEFAULT_PORT = 7777
DEFAULT_HOSTS = ("::1", "127.0.0.1")

_ABSENT_TEXT = (
    "nothing answers on localhost port {port}: mip6d is not running, or it was built without "
    "--enable-vt (distribution packages are) or started with another --vt-service port"
)
_NO_TERMINAL_TEXT = (
    "mip6d is running but nothing answers on localhost port {port}: it was built without "
    "--enable-vt (distribution packages are) or started with another --vt-service port"
)


def mip6d_running() -> bool | None:
    """Whether a process named ``mip6d`` runs (from ``/proc``); None when that cannot be told."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for pid in entries:
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
                if f.read().strip() == "mip6d":
                    return True
        except OSError:
            continue
    return False


def umip_capabilities(reachable: bool) -> DaemonCapabilities:
    """Mainline UMIP: ``connected`` and ``failover`` (its own move to the best remaining interface) while its
    terminal answers, nothing else (umip.md sections 3 and 6)."""
    from mhgui.core.capabilities import DaemonCapabilities

    return DaemonCapabilities(
        name="umip",
        connected=reachable,
        per_hoa_choice=False,
        multiple_coas=False,
        flow_bindings=False,
        runtime_rebind=False,
        failover=reachable,  # moves every HoA by MnIfPreference when a link goes
        hoa_as_coa=False,
        home_and_foreign=False,
    )
