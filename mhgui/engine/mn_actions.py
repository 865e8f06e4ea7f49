"""What the mobile node core returns (actions) and takes (uplinks): plain data, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Changed", "FlowDone", "RebindDone", "SendOn", "SetMtu", "UplinkInfo", "WriteTun"]


class SendOn(NamedTuple):
    """Send ``payload`` in UDP to the home agent's ``family`` address through uplink ``ifindex``."""
    ifindex: int
    family: int
    payload: bytes


class WriteTun(NamedTuple):
    packet: bytes


class SetMtu(NamedTuple):
    mtu: int


class RebindDone(NamedTuple):
    """A rebind request ended: ``confirmed`` by a BA after ``elapsed_ms``, or not, with ``reason`` in words."""
    request: int
    hoa: str
    confirmed: bool
    elapsed_ms: float
    coa: str | None
    interface: str | None
    reason: str | None


class FlowDone(NamedTuple):
    """A flow-binding request (add, change, remove) ended: ``confirmed`` by the home agent after ``elapsed_ms``
    or not, with ``reason`` in words; ``fid`` 0 when none was assigned; ``uplinks``: what it asked for."""
    request: int
    hoa: str
    fid: int
    confirmed: bool
    elapsed_ms: float
    uplinks: tuple
    reason: str | None


class Changed(NamedTuple):
    """Something the control API shows changed: ``what`` is ``"bindings"``, ``"uplinks"`` or ``"preferences"``;
    ``detail``: a dict for the event stream (e.g. a move with its reason and timings)."""
    what: str
    detail: dict


@dataclass(frozen=True)
class UplinkInfo:
    """An access interface as netlink shows it: ``coa6``/``coa4``: its usable care-of address of each family
    (global, not tentative, deprecated or DAD-failed) or None; ``mtu``: bytes; ``metered``: probe less often."""
    ifindex: int
    name: str
    carrier: bool
    coa6: str | None = None
    coa4: str | None = None
    mtu: int = 1500
    metered: bool = False
    coa6_prefixlen: int = 64
