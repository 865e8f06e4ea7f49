"""mhgui's engine in ``mhctl status``'s fast path (issue 14): what the runtime makes of the engine driver's
first reads (:class:`mhgui.status_bus.EngineRead`), without asyncio or dbus-fast.

The same steps as :class:`mhgui.daemons.engine.EngineDriver` and :class:`mhgui.runtime.Runtime` take:
the driver's status and capabilities, the engine's home addresses (they win over mip6d.conf's), the
bindings mapped by :func:`mhgui.daemons.engine_facts.bindings_from_json`, the bound CoAs in the store
(:class:`~mhgui.core.state.BoundCoAsSet`) and each binding's interface named from the live model
(:func:`~mhgui.core.bindings.fill_interfaces`, as ``push_live`` does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .daemons.engine_facts import _ABSENT_TEXT, bindings_from_json, engine_capabilities, engine_home_addresses

if TYPE_CHECKING:
    from .core.analysis import Analysis
    from .core.model import NodeState
    from .core.state import StateStore
    from .status_bus import EngineRead

__all__ = ["engine_state", "engine_bindings", "named_bindings"]


def engine_state(e: EngineRead):
    """``(DaemonState, capabilities, home addresses)`` of the driver after these reads: "absent" (nobody
    owns the name), "error" (a read failed: the driver's sentence) or "connected"."""
    from .status_fast import DaemonState
    if e.absent:
        return DaemonState("engine", None, False, "absent", _ABSENT_TEXT), engine_capabilities({}, False), ()
    if e.error is not None or e.raw is None:
        return DaemonState("engine", None, False, "error", e.error), engine_capabilities(e.status, False), ()
    return DaemonState("engine", "mn", True, "connected", None), engine_capabilities(e.status, True), \
        engine_home_addresses(e.raw)


def engine_bindings(e: EngineRead, store: StateStore, clock: Callable[[], float]) -> tuple:
    """The engine's bindings (not yet named from the live model); their bound CoAs go to ``store``."""
    from .core.bindings import bound_coas
    from .core.state import BoundCoAsSet
    out = bindings_from_json(e.raw or (), peer=e.status.get("home_agent"), uplinks=e.uplinks,
                             observed_at=e.observed_at)
    store.apply(BoundCoAsSet(bound_coas(out)))
    return out


def named_bindings(bindings: tuple, state: NodeState, an: Analysis) -> tuple:
    """``bindings`` with the interface of their CoA where the engine named none (the driver's ``set_live``
    with :meth:`mhgui.daemons.base.LiveView.coa_interfaces`)."""
    from .core.analysis import ROLE_COA
    from .core.bindings import fill_interfaces
    coas: dict[str, str] = {}
    for key, role in an.roles.items():
        addr, iface = state.addresses.get(key), state.interfaces.get(key.ifindex)
        if role.role == ROLE_COA and addr is not None and iface is not None:
            coas[addr.address] = iface.name
    return tuple(fill_interfaces(bindings, coas))
