"""Which router a packet with a given source leaves through (pure; used by :mod:`mhgui.core.steering`).

On a link with several routers, each serving its own prefix, the next hop must
be the router that advertised the source address's prefix: the others drop
the packet at their ingress filter (draft-montavont-mobileip-multihoming-pb-statement
section 6.1.2; RFC 8028 section 3). The advertisements come from
:class:`mhgui.core.ra.RouterTable`; the kernel's default routes of the link
are the fallback for a static setup.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..i18n import _
from .ra import Advert

__all__ = ["NextHop", "next_hop"]


@dataclass(frozen=True)
class NextHop:
    """The choice for one source address.

    ``router``: the next hop (None: no router on the link, destinations are
    reached on-link); ``note``: what the user should know about the choice
    ("" when the router advertised the source's prefix); ``refusal``: non-empty
    when no router can be matched to the source (then ``router`` is None and
    nothing may be routed from that source on that link).
    """

    router: str | None
    note: str = ""
    refusal: str = ""


def _ordered(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def next_hop(source: str, interface: str, routers: Sequence[str], adverts: Iterable[Advert]) -> NextHop:
    """The router that packets from ``source`` (an IPv6 address of ``interface``) must leave through.

    ``routers``: the link's default routers as the kernel has them (main table,
    best first); ``adverts``: what routers on this link advertised
    (:meth:`mhgui.core.ra.RouterTable.adverts`, this link's only).

    1. Routers that advertised a prefix holding ``source`` (the longest such
       prefix first) and are default routers: the one the kernel ranks first
       among them, else the lowest address.
    2. Advertised, but only by routers with router lifetime 0: refused (they
       do not forward off-link traffic, RFC 4861 section 6.3.4).
    3. No advertisement for it (a static setup, or none heard yet): the link's
       only router, with a note saying so; no router: on-link (None); two or
       more: refused, since nothing tells which one accepts the source.

    Raises ValueError when ``source`` is not an IPv6 address.
    """
    src = ipaddress.IPv6Address(source)
    adverts = list(adverts)
    mine = [(ipaddress.IPv6Network(a.prefix), a) for a in adverts if src in ipaddress.IPv6Network(a.prefix)]
    rank = {r: i for i, r in enumerate(_ordered(routers))}
    if mine:
        usable = [(net, a) for net, a in mine if a.default_router]
        if not usable:
            names = ", ".join(_ordered(a.router for _net, a in mine))
            prefix = max(mine, key=lambda m: m[0].prefixlen)[0]
            return NextHop(None, refusal=_(
                "{prefix} (the prefix of source {source}) was advertised on {interface} only by {routers}, which "
                "does not forward traffic (router lifetime 0): no router takes packets from {source}").format(
                    prefix=prefix, source=src, interface=interface, routers=names))
        best = min(usable, key=lambda m: (-m[0].prefixlen, rank.get(m[1].router, len(rank)),
                                          ipaddress.IPv6Address(m[1].router)))
        return NextHop(best[1].router)
    link = _ordered(list(routers) + [a.router for a in sorted(adverts) if a.default_router])
    if not link:
        return NextHop(None)
    if len(link) == 1:
        return NextHop(link[0], note=_(
            "no router advertisement names the prefix of {source}; {interface} has one router, {router}, "
            "which is used").format(source=src, interface=interface, router=link[0]))
    served = sorted({a.prefix for a in adverts if a.default_router})
    hint = _("; advertised prefixes: {prefixes}").format(prefixes=", ".join(served)) if served else ""
    return NextHop(None, refusal=_(
        "{interface} has {n} routers ({routers}) and none advertised a prefix holding "
        "source {source}: a packet from it could reach a router whose ingress filter drops it "
        "(draft 6.1.2); use a source from a prefix a router advertised").format(
            interface=interface, n=len(link), routers=", ".join(link), source=src) + hint)
