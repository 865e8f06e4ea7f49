"""Policy routing of the mobile node (IPv6, pyroute2): the HoA as default source, uplinks direct.

| priority | rule | why |
|---|---|---|
| 28008/28009 | the helper's steering rules (not ours) | a steered CoA-sourced flow stays direct |
| 28085 | ``from <HoA> lookup <table>``, one per HoA | nothing sourced from a HoA ever leaves outside the tunnel |
| 28090/28091 | ``to fe80::/10`` / ``to ff00::/8 lookup main`` | link-local and multicast stay on their link |
| 28095 | ``from <CoA> lookup main``, one per IPv6 CoA | outer sockets and anything bound to a CoA go direct |
| 28096 | ``to <CoA's prefix> lookup main``, one per IPv6 CoA | the uplink's own subnet stays direct |
| 28100 | ``lookup <table>`` (only if a HoA is the default source) | everything else leaves from the HoA |

Only these destinations are taken from the main table: a route that an access
network adds there (a router advertisement's on-link prefix, say 2000::/3) does
not pull traffic out of the tunnel (the "TunnelVision" trap of a rule like
``lookup main suppress_prefixlength 0``). ``<table>`` (default 4191) holds
``default dev <tun> src <HoA>``. Every call raises ``OSError`` (pyroute2's
NetlinkError is one) with the kernel's reason.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

__all__ = ["PRIO_COA", "PRIO_DEFAULT", "PRIO_HOA", "PRIO_LINK", "PRIO_ONLINK", "Routing"]

PRIO_HOA = 28085
PRIO_LINK = 28090  # and 28091
PRIO_COA = 28095
PRIO_ONLINK = 28096
PRIO_DEFAULT = 28100
OURS = (PRIO_HOA, PRIO_LINK, PRIO_LINK + 1, PRIO_COA, PRIO_ONLINK, PRIO_DEFAULT)
RT_TABLE_MAIN = 254
AF6 = socket.AF_INET6


class Routing:
    """Installs and removes the rules above; ``coas({"addr/plen", ...})`` keeps the per-CoA rules equal to the
    IPv6 care-of addresses (with their prefix lengths) given."""

    def __init__(self, table: int, tun_ifindex: int, hoas: list[str], default_source: str | None) -> None:
        self.table, self.tun, self.hoas, self.default_source = table, tun_ifindex, hoas, default_source
        self._coas: set[str] = set()

    def _ipr(self):
        from pyroute2 import IPRoute
        return IPRoute()

    def install(self) -> None:
        self.remove(quiet=True)  # a previous run that crashed left its rules
        with self._ipr() as ipr:
            if self.default_source:
                ipr.route("replace", dst="::/0", oif=self.tun, table=self.table, family=AF6,
                          prefsrc=self.default_source)
            else:
                ipr.route("replace", dst="::/0", oif=self.tun, table=self.table, family=AF6)
            for hoa in self.hoas:
                ipr.rule("add", family=AF6, priority=PRIO_HOA, table=self.table, src=hoa, src_len=128)
            ipr.rule("add", family=AF6, priority=PRIO_LINK, table=RT_TABLE_MAIN, dst="fe80::", dst_len=10)
            ipr.rule("add", family=AF6, priority=PRIO_LINK + 1, table=RT_TABLE_MAIN, dst="ff00::", dst_len=8)
            if self.default_source:
                ipr.rule("add", family=AF6, priority=PRIO_DEFAULT, table=self.table)

    def coas(self, coas: set[str]) -> None:
        add, gone = coas - self._coas, self._coas - coas
        if not add and not gone:
            return
        with self._ipr() as ipr:
            for c in gone:
                for kw in self._coa_rules(c):
                    try:
                        ipr.rule("del", family=AF6, table=RT_TABLE_MAIN, **kw)
                    except OSError as e:
                        if getattr(e, "code", None) != errno.ENOENT:
                            raise
            for c in add:
                for kw in self._coa_rules(c):
                    ipr.rule("add", family=AF6, table=RT_TABLE_MAIN, **kw)
        self._coas = set(coas)

    @staticmethod
    def _coa_rules(coa: str) -> list[dict]:
        iface = ipaddress.IPv6Interface(coa)
        return [{"priority": PRIO_COA, "src": str(iface.ip), "src_len": 128},
                {"priority": PRIO_ONLINK, "dst": str(iface.network.network_address), "dst_len": iface.network.prefixlen}]

    def remove(self, quiet: bool = False) -> None:
        """Delete every rule at our priorities and our table's routes (idempotent)."""
        try:
            with self._ipr() as ipr:
                for r in ipr.get_rules(family=AF6):
                    if r.get("FRA_PRIORITY") in OURS:
                        sel = {}
                        if r.get("FRA_SRC"):
                            sel.update(src=r.get("FRA_SRC"), src_len=r["src_len"])
                        if r.get("FRA_DST"):
                            sel.update(dst=r.get("FRA_DST"), dst_len=r["dst_len"])
                        try:
                            ipr.rule("del", family=AF6, priority=r.get("FRA_PRIORITY"),
                                     table=r.get("FRA_TABLE", r["table"]), **sel)
                        except OSError:
                            pass
                try:
                    ipr.flush_routes(table=self.table, family=AF6)
                except OSError:
                    pass
        except OSError:
            if not quiet:
                raise
        self._coas = set()
