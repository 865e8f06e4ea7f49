"""Policy routing of the mobile node (IPv6, pyroute2): the HoA as default source, uplinks direct.

| priority | rule | why |
|---|---|---|
| 28008/28009 | the helper's steering rules (not ours) | a steered CoA-sourced flow stays direct |
| 28090 | ``lookup main suppress_prefixlength 0`` | on-link and link-local destinations stay direct |
| 28095 | ``from <CoA> lookup main``, one per IPv6 CoA | outer sockets and anything bound to a CoA go direct |
| 28099 | ``from <HoA> lookup <table>``, one per HoA | a socket bound to a HoA goes through the tunnel |
| 28100 | ``lookup <table>`` (only if a HoA is the default source) | new connections leave from the HoA |

``<table>`` (default 4191) holds ``default dev <tun> src <HoA>``. Every call
raises ``OSError`` (pyroute2's NetlinkError is one) with the kernel's reason.
"""

from __future__ import annotations

import errno
import socket

__all__ = ["PRIO_COA", "PRIO_HOA", "PRIO_DEFAULT", "PRIO_SUPPRESS", "Routing"]

PRIO_SUPPRESS = 28090
PRIO_COA = 28095
PRIO_HOA = 28099
PRIO_DEFAULT = 28100
RT_TABLE_MAIN = 254
AF6 = socket.AF_INET6


class Routing:
    """Installs and removes the rules above; ``coas(set)`` keeps the per-CoA rules equal to the set given."""

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
            ipr.rule("add", family=AF6, priority=PRIO_SUPPRESS, table=RT_TABLE_MAIN, suppress_prefixlen=0)
            for hoa in self.hoas:
                ipr.rule("add", family=AF6, priority=PRIO_HOA, table=self.table, src=hoa, src_len=128)
            if self.default_source:
                ipr.rule("add", family=AF6, priority=PRIO_DEFAULT, table=self.table)

    def coas(self, coas: set[str]) -> None:
        add, gone = coas - self._coas, self._coas - coas
        if not add and not gone:
            return
        with self._ipr() as ipr:
            for c in gone:
                try:
                    ipr.rule("del", family=AF6, priority=PRIO_COA, table=RT_TABLE_MAIN, src=c, src_len=128)
                except OSError as e:
                    if getattr(e, "code", None) != errno.ENOENT:
                        raise
            for c in add:
                ipr.rule("add", family=AF6, priority=PRIO_COA, table=RT_TABLE_MAIN, src=c, src_len=128)
        self._coas = set(coas)

    def remove(self, quiet: bool = False) -> None:
        """Delete every rule at our priorities and our table's routes (idempotent)."""
        try:
            with self._ipr() as ipr:
                for r in ipr.get_rules(family=AF6):
                    if r.get("FRA_PRIORITY") in (PRIO_SUPPRESS, PRIO_COA, PRIO_HOA, PRIO_DEFAULT):
                        try:
                            ipr.rule("del", family=AF6, priority=r.get("FRA_PRIORITY"),
                                     table=r.get("FRA_TABLE", r["table"]),
                                     **({"src": r.get("FRA_SRC"), "src_len": r["src_len"]} if r.get("FRA_SRC") else {}))
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
