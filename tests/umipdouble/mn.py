"""Mobile node: care-of address choice, binding update list, BU/BA exchange, ``bul``.

CoA choice (umip.md section 3, ``mn_make_ho_verdict``/``mn_get_iface``/``mn_get_coa``):
candidates are the interfaces listed with ``MnIfPreference`` > 0 (or every
non-loopback interface with ``MnUseAllInterfaces``, unlisted ones at 10) that
are up with carrier, have a global, non-tentative address and an IPv6 default
router (``Tunnel enabled`` interfaces need no router). The lowest preference
number wins; on a tie the current interface is kept. On that interface the
current CoA is kept while it is still preferred (not deprecated), else the
first preferred address, else the first valid one. **One** decision for every
HoA. A CoA inside a HoA's home prefix means at home: that HoA is deregistered
(lifetime 0), unless ``NoHomeReturn``.

Preferences are looked up when an interface is first seen; after SIGHUP the new
``Interface`` list only applies to interfaces that appear later (umip.md
"Reload scope").

Timers (protocol.md, umip.md): a new BU waits ``InitialBindackTimeoutFirstReg``
(1.5 s) for a first registration, ``InitialBindackTimeoutReReg`` (1.0 s)
otherwise, doubling on every resend up to 32 s; every BU, resends included,
carries a new sequence number. An acknowledged binding is refreshed at 95 % of
the granted lifetime.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import random
import socket

from . import mh, netstate
from .config import Config, InterfaceConf
from .vt import Command, Session, nip6

log = logging.getLogger("umipdouble")

MAX_BINDACK_TIMEOUT = 32.0
BU_REFRESH_FRACTION = 0.95
BACKSTOP_POLL = 2.0
EVENT_SETTLE = 0.005


class BulEntry:
    def __init__(self, hoa: ipaddress.IPv6Address, ha: ipaddress.IPv6Address, prefix: ipaddress.IPv6Network,
                 flags: int) -> None:
        self.hoa = hoa
        self.ha = ha
        self.prefix = prefix
        self.flags = flags
        self.coa: ipaddress.IPv6Address | None = None  # shown as "Care-of address"
        self.src: ipaddress.IPv6Address | None = None  # source of the BU (the CoA; at home the home-prefix address)
        self.last_coa: ipaddress.IPv6Address | None = None
        self.ifindex = 0
        self.ifname = ""
        self.seq = random.randrange(0, 0x10000)
        self.lifetime = 0
        self.lastsent = 0.0
        self.resend = 0
        self.delay = 0.0
        self.expires_at = 0.0  # when the timer fires (loop time)
        self.timer: asyncio.TimerHandle | None = None
        self.acked = False
        self.registered = False  # the HA holds a binding for us (a BA with lifetime > 0 came)
        self.dereg = False

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class MobileNode:
    def __init__(self, conf: Config, sock: mh.MHSocket, stats) -> None:
        self.conf = conf
        self.sock = sock
        self.stats = stats
        self.iface_conf: dict[str, InterfaceConf] = dict(conf.interfaces)
        self.seen: dict[int, tuple[str, int, bool]] = {}  # ifindex -> (name, preference, tunnel)
        self.bul: dict[ipaddress.IPv6Address, BulEntry] = {}
        self.current: tuple[int, str, ipaddress.IPv6Address] | None = None
        self.ready = False
        self._eval_task: asyncio.Task | None = None
        self._dirty = False
        self._tasks: list[asyncio.Task] = []
        self.monitor = netstate.Monitor(self.request_evaluation)
        self.links: dict[int, netstate.Link] = {}
        self.homes = []
        for hl in conf.home_links:
            if hl.hoa is None:
                log.warning("MnHomeLink \"%s\" without HomeAddress: ignored", hl.ifname)
                continue
            if hl.ha is None or hl.ha == ipaddress.IPv6Address("::"):
                log.warning("HoA %s: dynamic HA discovery (DHAAD) is not implemented by the double", hl.hoa)
                continue
            self.homes.append(hl)

    # -- life cycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.monitor.start()
        loop.add_reader(self.sock.fileno(), self._on_readable)
        self._tasks.append(asyncio.create_task(self._init_delay()))
        self._tasks.append(asyncio.create_task(self._backstop()))

    async def _init_delay(self) -> None:
        await asyncio.sleep(max(0.0, self.conf.interface_initial_init_delay))
        self.ready = True
        self.request_evaluation()

    async def _backstop(self) -> None:
        while True:
            await asyncio.sleep(BACKSTOP_POLL)
            self.request_evaluation()

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.sock.fileno())
        for e in self.bul.values():
            e.cancel()
        for t in self._tasks + ([self._eval_task] if self._eval_task else []):
            t.cancel()
        await self.monitor.stop()

    def reload_interfaces(self, conf: Config) -> None:
        """SIGHUP: take the new Interface list (used by interfaces that appear from now on)."""
        self.iface_conf = dict(conf.interfaces)
        log.info("got SIGHUP: Interface list re-read (%d entries)", len(self.iface_conf))
        self.request_evaluation()

    # -- movement detection
    def request_evaluation(self) -> None:
        if not self.ready:
            return
        if self._eval_task is not None and not self._eval_task.done():
            self._dirty = True
            return
        self._eval_task = asyncio.create_task(self._evaluate())

    async def _evaluate(self) -> None:
        while True:
            self._dirty = False
            await asyncio.sleep(EVENT_SETTLE)
            try:
                links = await netstate.snapshot()
            except Exception as e:
                log.warning("netlink dump failed: %r", e)
                links = None
            if links is not None:
                self.links = links
                self._decide(links)
            if not self._dirty:
                return

    def _preference(self, link: netstate.Link) -> tuple[int, bool]:
        known = self.seen.get(link.index)
        if known is not None and known[0] == link.name:
            return known[1], known[2]
        ic = self.iface_conf.get(link.name)
        if ic is not None:
            pref, tunnel = ic.preference, ic.tunnel
        elif self.conf.mn_use_all_interfaces and not (link.flags & netstate.IFF_LOOPBACK):
            pref, tunnel = 10, False
        else:
            pref, tunnel = 0, False
        self.seen[link.index] = (link.name, pref, tunnel)
        return pref, tunnel

    def choose(self, links: dict[int, netstate.Link]) -> tuple[int, str, ipaddress.IPv6Address] | None:
        cands: list[tuple[int, netstate.Link]] = []
        for idx in sorted(links):
            link = links[idx]
            pref, tunnel = self._preference(link)
            if pref <= 0 or link.flags & netstate.IFF_LOOPBACK or not link.up:
                continue
            if not any(a.usable for a in link.addrs):
                continue
            if not tunnel and not link.routers:
                continue
            cands.append((pref, link))
        if not cands:
            return None
        best = min(p for p, _ in cands)
        top = [link for p, link in cands if p == best]
        chosen = top[0]
        if self.current is not None:
            for link in top:
                if link.index == self.current[0]:
                    chosen = link
                    break
        usable = [a for a in chosen.addrs if a.usable]
        coa = None
        if self.current is not None and self.current[0] == chosen.index:
            for a in usable:
                if a.address == self.current[2] and a.preferred_now:
                    coa = a.address
        if coa is None:
            pref_addrs = [a for a in usable if a.preferred_now]
            coa = (pref_addrs or usable)[0].address
        return chosen.index, chosen.name, coa

    def _decide(self, links: dict[int, netstate.Link]) -> None:
        verdict = self.choose(links)
        if verdict == self.current:
            return
        old = self.current
        self.current = verdict
        if verdict is None:
            log.info("no usable interface: bindings left as they are")
            return
        log.info("handoff to %s CoA %s (was %s)", verdict[1], verdict[2], old and f"{old[1]} {old[2]}")
        for hl in self.homes:
            self._move(hl, verdict)

    def _move(self, hl, verdict) -> None:
        ifindex, ifname, coa = verdict
        e = self.bul.get(hl.hoa)
        at_home = coa in hl.prefix
        if at_home and not self.conf.no_home_return:
            if e is None:
                return
            if e.dereg and e.src == coa:
                return
            e.last_coa = e.coa
            e.coa, e.src, e.ifindex, e.ifname = hl.hoa, coa, ifindex, ifname
            e.dereg = True
            self._send_new(e)
            return
        if at_home:  # NoHomeReturn: keep whatever binding there is
            return
        if e is None:
            flags = mh.BU_A | mh.BU_H
            if self.conf.key_mng_mob_capability and self.conf.use_mn_ha_ipsec:
                flags |= mh.BU_K
            if hl.is_mob_rtr:
                flags |= mh.BU_R
            e = BulEntry(hl.hoa, hl.ha, hl.prefix, flags)
            self.bul[hl.hoa] = e
        elif e.coa == coa and not e.dereg and e.ifindex == ifindex:
            return
        e.last_coa = e.coa if e.coa is not None and not e.dereg else coa
        e.coa, e.src, e.ifindex, e.ifname = coa, coa, ifindex, ifname
        e.dereg = False
        self._send_new(e)

    # -- binding updates
    def _requested_lifetime(self) -> int:
        life = min(self.conf.mn_max_ha_binding_life, mh.MAX_LIFETIME_UNITS * 4)
        return max(4, life // 4 * 4)  # 0 would be a deregistration

    def _send_new(self, e: BulEntry) -> None:
        """A fresh BU (movement, refresh, deregistration): new sequence, initial timeout."""
        e.cancel()
        e.acked = False
        e.resend = 0
        e.lifetime = 0 if e.dereg else self._requested_lifetime()
        e.delay = (self.conf.initial_bindack_timeout_rereg if e.registered
                   else self.conf.initial_bindack_timeout_first_reg)
        e.seq = (e.seq + 1) & 0xFFFF
        self._transmit(e)
        self._arm(e, e.lastsent + e.delay)

    def _arm(self, e: BulEntry, when: float) -> None:
        loop = asyncio.get_running_loop()
        e.cancel()
        e.expires_at = when
        e.timer = loop.call_at(when, self._on_timer, e)

    def _transmit(self, e: BulEntry) -> None:
        e.lastsent = asyncio.get_running_loop().time()
        msg = mh.Message(mh.MH_BU, seq=e.seq, flags=e.flags, lifetime_units=e.lifetime // 4, hoa=e.hoa)
        try:
            self.sock.send(mh.encode(msg), e.src, e.ha, e.ifindex)
            self.stats.out(mh.MH_BU)
            log.debug("BU seq %d HoA %s CoA %s via %s lifetime %d", e.seq, e.hoa, e.src, e.ifname, e.lifetime)
        except OSError as err:
            log.debug("BU to %s from %s: %s", e.ha, e.src, err.strerror)

    def _on_timer(self, e: BulEntry) -> None:
        e.timer = None
        if self.bul.get(e.hoa) is not e:
            return
        if e.acked:  # refresh at 95 % of the lifetime
            self._send_new(e)
            return
        limit = self.conf.mn_max_ha_consecutive_resends
        if limit and e.resend >= limit:
            log.info("HoA %s: no BA after %d resends; giving up", e.hoa, e.resend)
            return
        e.resend += 1
        e.delay = min(e.delay * 2, MAX_BINDACK_TIMEOUT)
        e.seq = (e.seq + 1) & 0xFFFF
        self._transmit(e)
        self._arm(e, e.lastsent + e.delay)

    # -- binding acknowledgements
    def _on_readable(self) -> None:
        while True:
            try:
                data, src, dst, _ifindex = self.sock.recv()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                log.debug("MH recv: %s", err)
                return
            try:
                msg = mh.decode(data)
            except mh.DecodeError as err:
                log.debug("bad MH from %s: %s", src, err)
                continue
            self.stats.inp(msg.mh_type)
            if msg.mh_type == mh.MH_BA:
                self._on_ba(msg, src, dst)

    def _on_ba(self, msg: mh.Message, src, dst) -> None:
        e = None
        for cand in self.bul.values():
            if cand.ha == src and (msg.hoa is None or msg.hoa == cand.hoa) and not cand.acked:
                if msg.hoa is not None or cand.seq == msg.seq:
                    e = cand
                    break
        if e is None:
            return
        if msg.status == mh.BA_SEQ_OUT_OF_WINDOW:
            log.info("HoA %s: BA 135, resynchronising sequence at %d", e.hoa, msg.seq)
            e.seq = msg.seq
            self._send_new(e)
            return
        if msg.seq != e.seq:
            return
        if msg.status >= 128:
            log.info("HoA %s: BA status %d; retrying", e.hoa, msg.status)
            return
        if e.dereg:
            e.cancel()
            e.registered = False
            del self.bul[e.hoa]
            log.info("HoA %s: deregistered (at home)", e.hoa)
            return
        e.acked = True
        e.registered = True
        e.resend = 0
        e.lifetime = msg.lifetime
        e.delay = e.lifetime * BU_REFRESH_FRACTION
        self._arm(e, e.lastsent + e.delay)
        log.info("HoA %s: BA seq %d, lifetime %d", e.hoa, msg.seq, msg.lifetime)

    # -- VT
    def dump_bul(self, sess: Session) -> str:
        now = asyncio.get_running_loop().time()
        out = []
        for e in self.bul.values():
            coa = e.coa or e.hoa
            out.append("== BUL_ENTRY ==\n")
            out.append(sess.bold_underline(f"Home address    {nip6(e.hoa)}") + "\n")
            out.append(f"Care-of address {nip6(coa)}\n")
            out.append(f"CN address      {nip6(e.ha)}\n")
            out.append(f" lifetime = {e.lifetime},  delay = {int(e.delay * 1000)}\n")
            flags = " flags: IP6_MH_BU_HOME IP6_MH_BU_ACK "
            if e.flags & mh.BU_L:
                flags += "IP6_MH_BU_LLOCAL "
            if e.flags & mh.BU_K:
                flags += "IP6_MH_BU_KEYM "
            if e.flags & mh.BU_R:
                flags += "IP6_MH_BU_MR"
            out.append(flags + "\n")
            out.append(" ack ready\n" if e.acked else " ack wait\n")
            if sess.verbose:
                dev = self._ifname(e.ifindex) or f"({e.ifindex})"
                out.append(f" dev {dev} last_coa {nip6(e.last_coa or coa)}\n")
            remaining = math.floor(e.lifetime - (now - e.lastsent))
            after = math.floor(e.expires_at - now) if e.timer is not None else 0
            out.append(f" lifetime {remaining} / {e.lifetime} seq {e.seq} resend {e.resend} "
                       f"delay {int(e.delay)}(after {after}s)\n")
            out.append("\n")  # no pending mobile prefix solicitation: the mps line is empty
        return "".join(out)

    def _ifname(self, ifindex: int) -> str | None:
        try:
            return socket.if_indextoname(ifindex)
        except OSError:
            return None

    def commands(self) -> dict[str, Command]:
        def bul(sess: Session, rest: str) -> str:
            return self.dump_bul(sess)

        def empty(sess: Session, rest: str) -> str:
            return ""

        return {
            "bul": Command(bul),
            "rr": Command(empty),  # no route optimisation: the RR list is always empty
            "bc": Command(empty),  # the MN's own (CN role) binding cache: empty
            "nonce": Command(empty),
        }
