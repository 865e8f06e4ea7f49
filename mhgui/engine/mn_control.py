"""The mobile node core's requests and views: rebind, preferences, stop, snapshots (sans-I/O).

Mixed into :class:`mhgui.engine.mn.MobileNodeCore`; kept apart so that each file
stays readable. Errors a user caused come back as :class:`RebindDone` with a
reason in words, or as ``ValueError`` with one sentence.
"""

from __future__ import annotations

import ipaddress

from . import wire
from .mn_actions import Changed, RebindDone
from .mn_binding import UplinkPrefs

__all__ = ["MobileNodeControl"]

_IFNAME_BAD = set("/ \t\n:")


def _valid_names(names, what: str) -> tuple[str, ...]:
    out = []
    for n in names:
        if not isinstance(n, str) or not 0 < len(n) <= 15 or set(n) & _IFNAME_BAD:
            raise ValueError(f"{what}: {n!r} is not an interface name")
        if n in out:
            raise ValueError(f"{what}: {n} is listed twice")
        out.append(n)
    return tuple(out)


class MobileNodeControl:
    """Requests and views of the mobile node core (see :class:`mhgui.engine.mn.MobileNodeCore`)."""

    def _hoa(self, hoa: str):
        try:
            packed = ipaddress.IPv6Address(hoa).packed
        except ValueError:
            raise ValueError(f"{hoa!r} is not an IPv6 address") from None
        h = self.hoas.get(packed)
        if h is None:
            raise ValueError(f"{hoa} is not one of this node's home addresses")
        return h

    def rebind(self, request: int, hoa: str, ifname: str, now: float, wall: float) -> list:
        """Bind ``hoa`` through ``ifname`` now (it becomes the HoA's first preference).

        Returns actions; the request ends with a :class:`RebindDone` (at once
        when refused or already so, else when the BA comes, or after 10 s).
        """
        try:
            h = self._hoa(hoa)
        except ValueError as e:
            return [RebindDone(request, hoa, False, 0.0, None, ifname, str(e))]
        u = self.uplink_by_name(ifname)
        refuse = None
        if u is None:
            refuse = f"{ifname} is not an access interface of this node"
        elif ifname in h.prefs.never:
            refuse = f"{ifname} is marked 'never' for {h.hoa}: change the preferences first"
        elif not u.info.carrier:
            refuse = f"{ifname} has no carrier"
        elif self.path_of(u.info) is None:
            refuse = f"{ifname} has no care-of address the home agent can be reached from"
        elif u.prober.reachable is False:
            refuse = f"the home agent does not answer through {ifname}"
        if refuse is not None:
            return [RebindDone(request, h.hoa, False, 0.0, None, ifname, refuse)]
        h.prefs = h.prefs.with_first(ifname)
        h.refused_until = 0.0
        h.deregistered = False
        if h.bound is not None and h.bound.ifindex == u.info.ifindex and h.pending is None:
            return [RebindDone(request, h.hoa, True, 0.0, h.bound.coa, ifname, None)]
        out_done = [RebindDone(rid, h.hoa, False, (now - t) * 1000, None, None, "superseded by a newer request")
                    for rid, (hoa16, _i, t) in list(self._waiters.items()) if hoa16 == h.hoa16]
        for d in out_done:
            del self._waiters[d.request]
        self._waiters[request] = (h.hoa16, u.info.ifindex, now)
        out = out_done + self._evaluate(now, wall, "rebind requested")
        if h.pending is None or h.pending.ifindex != u.info.ifindex:  # chosen elsewhere (probes unknown)
            out += self._send_bu(h, u.info.ifindex, now, wall, "rebind requested")
        return out

    def _finish_waiters(self, h, now: float, ok: bool, reason: str | None) -> list:
        out = []
        for rid, (hoa16, idx, t) in list(self._waiters.items()):
            if hoa16 != h.hoa16:
                continue
            if ok and (h.bound is None or h.bound.ifindex != idx):
                continue
            del self._waiters[rid]
            u = self.uplinks.get(idx)
            out.append(RebindDone(rid, h.hoa, ok, (now - t) * 1000, h.bound.coa if ok else None,
                                  u.info.name if u else None, reason))
        return out

    def set_preferences(self, hoa: str, preference, backup, never, now: float, wall: float) -> list:
        """Replace the uplink preferences of ``hoa`` (draft 7.1/7.2); ValueError with a sentence when invalid."""
        h = self._hoa(hoa)
        pref = _valid_names(preference, "preference")
        back = _valid_names(backup, "backup")
        nev = _valid_names(never, "never")
        both = (set(pref) | set(back)) & set(nev)
        if both:
            raise ValueError(f"{', '.join(sorted(both))}: both used and marked 'never'")
        h.prefs = UplinkPrefs(tuple(n for n in pref if n not in back), back, nev)
        return [Changed("preferences", {"hoa": h.hoa})] + self._evaluate(now, wall, "preferences changed")

    def stop(self, now: float, wall: float) -> list:
        """Deregister every bound HoA (RFC 6275 §11.7.2: lifetime 0); the adapter waits briefly for the BAs."""
        out: list = []
        for h in self.hoas.values():
            if h.bound is not None and h.bound.ifindex in self.uplinks:
                out += self._send_bu(h, h.bound.ifindex, now, wall, "stopping", lifetime=0)
            h.deregistered = True
        return out

    def deregistered(self) -> bool:
        """No HoA is bound or waiting for a deregistration BA."""
        return all(h.bound is None and h.pending is None for h in self.hoas.values())

    # ------------------------------------------------------------------ views
    def bindings_view(self, now: float) -> list[dict]:
        """One dict per HoA: ``hoa``, ``prefix_len`` (home prefix), ``home_agent`` (its home address), ``state`` (registered, waiting-ack, unbound, refused), ``coa``,
        ``interface``, ``family``, ``seq``, ``lifetime`` and ``remaining`` (s), ``nat``, ``error``,
        ``pending_interface``, ``pending_coa``, ``preference``/``backup``/``never``, ``default_route``,
        ``paths`` (with several care-of addresses: one per BID, ``bid``, ``interface``, ``coa``, ``priority``
        (BID-PRI, 127 = no longer used), ``family``), ``flow_bindings`` (how many)."""
        out = []
        for h in self.hoas.values():
            b, p = h.bound, h.pending
            state = ("waiting-ack" if p is not None else "registered" if b is not None
                     else "refused" if h.last_error else "unbound")
            up = self.uplinks.get(b.ifindex) if b is not None else None
            pu = self.uplinks.get(p.ifindex) if p is not None else None
            out.append({
                "hoa": h.hoa, "prefix_len": h.prefix_len, "home_agent": wire.ntop6(self.ha_home),
                "state": state, "coa": b.coa if b else None,
                "interface": up.info.name if up else None, "ifindex": b.ifindex if b else None,
                "family": b.family if b else None, "seq": h.seq,
                "lifetime": b.lifetime if b else None,
                "remaining": max(0.0, b.expires - now) if b else None,
                "nat": b.nat if b else False,
                "error": h.last_error or ("the home agent does not answer through any uplink" if h.stranded else None),
                "pending_interface": pu.info.name if pu else None, "pending_coa": p.coa if p else None,
                "preference": list(h.prefs.preference), "backup": list(h.prefs.backup),
                "never": list(h.prefs.never), "default_route": h.default_route,
                "paths": [{"bid": mp.bid, "interface": self.uplinks[mp.ifindex].info.name
                           if mp.ifindex in self.uplinks else None, "coa": mp.coa, "priority": mp.priority,
                           "family": mp.family} for mp in h.paths.values()],
                "flow_bindings": len(h.flows),
            })
        return out

    def uplinks_view(self) -> list[dict]:
        """One dict per uplink: ``name``, ``ifindex``, ``carrier``, ``coa6``, ``coa4``, ``family`` (the one used),
        ``mtu``, ``metered``, ``reachable`` (None = not known yet), ``rtt_ms``, ``srtt_ms``, ``loss`` (0..1),
        ``probe_interval_ms``, ``probes_sent``, ``probes_answered``."""
        out = []
        for u in sorted(self.uplinks.values(), key=lambda u: u.info.ifindex):
            s = u.prober.stats()
            path = self.path_of(u.info)
            out.append({
                "name": u.info.name, "ifindex": u.info.ifindex, "carrier": u.info.carrier,
                "coa6": u.info.coa6, "coa4": u.info.coa4, "family": path[0] if path else None,
                "mtu": u.info.mtu, "metered": u.info.metered, "reachable": s.reachable,
                "rtt_ms": s.rtt_ms, "srtt_ms": s.srtt_ms, "loss": s.loss,
                "probe_interval_ms": u.prober.interval * 1000, "probes_sent": s.sent,
                "probes_answered": s.answered,
            })
        return out
