"""The backup paths of the node's answer (issue 15, a new user's n1.2): with several care-of addresses
(RFC 5648, the engine's ``multiple_care_of``) every uplink carries a registration of the home address, so an
uplink that died (no carrier, or the home agent does not answer through it) is a backup gone, even while the
main path is healthy. Pure: no Qt, no I/O.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from mhgui.i18n import ngettext

from .bindings import Binding, UplinkInUse, canonical_address

__all__ = ["backups_down", "backups_text"]


def _canon(a: str) -> str:
    try:
        return canonical_address(a)
    except ValueError:
        return a


def several_coas(bindings: Iterable[Binding], hoa: str) -> bool:
    """``hoa`` is registered the RFC 5648 way: its bindings carry BIDs (one per care-of address)."""
    h = _canon(hoa)
    return any(b.bid is not None and _canon(b.hoa) == h for b in bindings)


def backups_down(bindings: Sequence[Binding], uplinks: Sequence[Mapping[str, Any]] | None, main: UplinkInUse,
                 skip: Iterable[str] = ()) -> list[str]:
    """The engine's uplinks (``GetUplinks``), other than ``main``'s and ``skip``, that are dead: no carrier
    (``carrier`` False), or the home agent does not answer through them (``reachable`` False). Only with
    several care-of addresses for ``main.hoa`` (else an uplink is no registered backup); names sorted."""
    if uplinks is None or not several_coas(bindings, main.hoa):
        return []
    skip = set(skip)
    out = set()
    for u in uplinks:
        if not isinstance(u, Mapping) or not isinstance(u.get("name"), str):
            continue
        name = u["name"]
        if name == main.interface or name in skip or (main.ifindex is not None and u.get("ifindex") == main.ifindex):
            continue
        if u.get("carrier") is False or u.get("reachable") is False:
            out.add(name)
    return sorted(out)


def backups_text(names: Sequence[str]) -> str:
    """"; backup up1 down" (appended to the answer's sentence); "" for none."""
    if not names:
        return ""
    return ngettext("; backup {ifaces} down", "; backups {ifaces} down", len(names)).format(ifaces=", ".join(names))
