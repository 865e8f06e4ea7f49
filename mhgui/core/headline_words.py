"""Words and facts for the node's answer (:mod:`mhgui.core.headline`): the interfaces that are online, the
engine's probe of an uplink in words, the daemon's and a care-of address's names. Pure: no Qt, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from mhgui.i18n import _

from .analysis import NON_ACCESS_KINDS
from .bindings import UplinkInUse
from .headline_model import DaemonLike
from .model import AddressFlag, NodeState

__all__ = ["LinkSummary", "addresses_text", "coa_text", "daemon_word", "health", "online_links", "probe_of"]


@dataclass(frozen=True, slots=True)
class LinkSummary:
    """An up access interface and what it has: ``v4``/``v6`` its first usable IPv4 / global-or-ULA IPv6
    address (None: none), ``router``: it has an IPv6 default router."""

    ifindex: int
    name: str
    v4: str | None
    v6: str | None
    router: bool


_BAD6 = AddressFlag.TENTATIVE | AddressFlag.DADFAILED


def online_links(state: NodeState, exclude: Iterable[int] = ()) -> list[LinkSummary]:
    """The up access interfaces (not loopback, tunnels or virtual links; not ``exclude``) with an address
    that reaches beyond the link: a global-scope IPv4 address (private ones too: NAT44) or a global or
    unique-local IPv6 address (not tentative or DAD-failed). In ifindex order."""
    skip = set(exclude)
    by_link: dict[int, list] = {}
    for a in state.addresses.values():
        by_link.setdefault(a.ifindex, []).append(a)
    out = []
    for ifindex in sorted(state.interfaces):
        iface = state.interfaces[ifindex]
        if ifindex in skip or not iface.up or iface.kind in NON_ACCESS_KINDS:
            continue
        v4 = v6 = None
        for a in sorted(by_link.get(ifindex, ()), key=lambda a: (a.address_class != "global", a.address)):
            if a.family == 2 and v4 is None and a.scope == 0 and a.address_class in ("global", "other") \
                    and not a.ip.is_unspecified:
                v4 = a.address
            elif a.family == 10 and v6 is None and a.address_class in ("global", "ula") \
                    and not int(a.flags) & int(_BAD6):
                v6 = a.address
        if v4 or v6:
            out.append(LinkSummary(ifindex, iface.name, v4, v6, bool(state.routers.get(ifindex))))
    return out


def addresses_text(link: LinkSummary) -> str:
    parts = []
    if link.v4:
        parts.append(_("IPv4 {address}").format(address=link.v4))
    if link.v6:
        parts.append(_("IPv6 {address}").format(address=link.v6))
    return ", ".join(parts)


def _ms(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 \
        else None


def probe_of(uplinks: Sequence[Mapping[str, Any]] | None, use: UplinkInUse) -> Mapping[str, Any] | None:
    for u in uplinks or ():
        if not isinstance(u, Mapping):
            continue
        if (use.ifindex is not None and u.get("ifindex") == use.ifindex) or \
                (use.interface is not None and u.get("name") == use.interface):
            return u
    return None


def health(probe: Mapping[str, Any] | None) -> tuple[str | None, str]:
    """(``None`` not probed / ``"ok"`` / ``"lossy"`` / ``"down"``, words) from one engine uplink."""
    if probe is None:  # the engine lists no such uplink (yet): the same as not probed, said so
        return None, _("the home agent is not probed yet")
    reachable = probe.get("reachable")
    srtt = _ms(probe.get("srtt_ms"))
    if srtt is None:
        srtt = _ms(probe.get("rtt_ms"))
    loss = _ms(probe.get("loss"))
    if reachable is False:
        return "down", _("the home agent does not answer through it")
    if reachable is not True:
        return None, _("the home agent is not probed yet")
    words = _("home agent reachable")
    if srtt is not None:
        words += ", " + _("{ms} ms").format(ms=f"{srtt:.0f}")
    if loss is not None and loss >= 0.005:
        # the engine's figure is over its last probes (mhgui.engine.probes.HISTORY), the verdict and RTT are
        # the latest: right after an outage "reachable, 1 ms, 45 % loss" read as a lossy path now (n1.2)
        words += ", " + _("{percent} % of the last probes lost").format(percent=f"{min(loss, 1.0) * 100:.0f}")
        return "lossy", words
    return "ok", words


def daemon_word(daemon: DaemonLike | None) -> str:
    if daemon is not None and daemon.name == "engine":
        return _("the mobility engine")
    if daemon is not None and daemon.name == "umip":
        return _("mip6d")
    return _("the mobility daemon")


def coa_text(coa: str) -> str:
    return (_("IPv4 CoA {address}") if ":" not in coa else _("CoA {address}")).format(address=coa)
