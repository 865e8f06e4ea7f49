"""Home-agent stand-in: answers Binding Updates, keeps a binding cache, prints ``bc``.

It serves the global addresses of the interfaces its configuration lists
(``Interface "home";``); with no ``Interface`` listed it serves every local
address. A BU to any other address is dropped without an answer.

Processing (RFC 6275 section 9.5.1, umip.md notes): HoA from the experimental
option (see :mod:`umipdouble.mh`), else the source; CoA from an Alternate
Care-of Address option, else the source. With a cache entry, a sequence number
within the 32768 values up to the last accepted one gets BA 135 carrying the
last accepted number. Lifetime 0, or CoA == HoA (as UMIP still reads it),
deletes the entry. The granted lifetime is min(requested, HaMaxBindingLife),
in 4-second units. A HoA outside every ``HaServedPrefix`` (when some are
configured) gets 132. A BA goes back when the A flag is set or the status is
an error, from the address the BU was sent to, straight to the CoA (no type 2
routing header: the kernel here could not receive it).

There is no tunnel, no proxy ND and no IPsec: only the signalling.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
from dataclasses import dataclass

from . import mh, netstate
from .config import Config
from .vt import C_SPACE, Command, Session, nip6

log = logging.getLogger("umipdouble")

BC_USAGE = ("usage: bc add|del hoa ADDR [coa ADDR] local ADDR flags [A]H[LK] "
            "[lifetime SECOND] [seq auto|NUMBER] [dad want|never]\n")


@dataclass
class Bce:
    hoa: ipaddress.IPv6Address
    coa: ipaddress.IPv6Address
    local: ipaddress.IPv6Address
    flags: int
    lifetime: int
    seq: int
    since: float
    link: str = ""


class HomeAgent:
    def __init__(self, conf: Config, sock: mh.MHSocket, stats) -> None:
        self.conf = conf
        self.sock = sock
        self.stats = stats
        self.bc: dict[ipaddress.IPv6Address, Bce] = {}
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._on_readable)

    async def stop(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        for t in list(self._tasks):
            t.cancel()

    def reload_interfaces(self, conf: Config) -> None:
        self.conf.interfaces = dict(conf.interfaces)

    def _on_readable(self) -> None:
        while True:
            try:
                data, src, dst, ifindex = self.sock.recv()
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
            if msg.mh_type == mh.MH_BU and dst is not None:
                t = asyncio.create_task(self._on_bu(msg, src, dst))
                self._tasks.add(t)
                t.add_done_callback(self._tasks.discard)

    async def _served(self, dst: ipaddress.IPv6Address) -> tuple[bool, str]:
        links = await netstate.snapshot()
        holder = ""
        for link in links.values():
            if any(a.address == dst for a in link.addrs):
                holder = link.name
        if not self.conf.interfaces:
            return True, holder
        return holder in self.conf.interfaces, holder

    async def _on_bu(self, msg: mh.Message, src, dst) -> None:
        try:
            served, link = await self._served(dst)
        except Exception as e:
            log.warning("netlink dump failed: %r", e)
            return
        if not served:
            log.debug("BU to %s: not a home agent address here; dropped", dst)
            return
        if not msg.flags & mh.BU_H:
            log.debug("BU without H from %s: not handled by the stand-in", src)
            return
        hoa = msg.hoa or src
        coa = msg.alt_coa or src
        status, seq, granted = self.process(hoa, coa, dst, msg.flags, msg.seq, msg.lifetime, link)
        if msg.flags & mh.BU_A or status >= 128:
            ba = mh.Message(mh.MH_BA, seq=seq, status=status, lifetime_units=granted // 4, hoa=hoa)
            try:
                self.sock.send(mh.encode(ba), dst, src)
                self.stats.out(mh.MH_BA)
            except OSError as err:
                log.debug("BA to %s: %s", src, err.strerror)

    def process(self, hoa, coa, local, flags: int, seq: int, lifetime: int, link: str = "") -> tuple[int, int, int]:
        """Apply one BU; returns (status, sequence for the BA, granted lifetime)."""
        now = asyncio.get_running_loop().time()
        self._expire(now)
        if self.conf.ha_served_prefixes and not any(hoa in p for p in self.conf.ha_served_prefixes):
            return mh.BA_NOT_HOME_SUBNET, seq, 0
        bce = self.bc.get(hoa)
        if bce is not None and ((bce.seq - seq) & 0xFFFF) < 0x8000:
            return mh.BA_SEQ_OUT_OF_WINDOW, bce.seq, 0
        if lifetime == 0 or coa == hoa:
            self.bc.pop(hoa, None)
            log.info("binding for %s deleted", hoa)
            return mh.BA_ACCEPTED, seq, 0
        granted = min(lifetime, self.conf.ha_max_binding_life, mh.MAX_LIFETIME_UNITS * 4) // 4 * 4
        self.bc[hoa] = Bce(hoa, coa, local, flags, granted, seq, now, link)
        log.info("binding %s -> %s lifetime %d seq %d", hoa, coa, granted, seq)
        return mh.BA_ACCEPTED, seq, granted

    def _expire(self, now: float) -> None:
        for hoa, bce in list(self.bc.items()):
            if now - bce.since > bce.lifetime:
                del self.bc[hoa]

    # -- VT
    def dump_bc(self, sess: Session) -> str:
        now = asyncio.get_running_loop().time()
        self._expire(now)
        out = []
        for b in self.bc.values():
            fl = "".join(c if b.flags & bit else "-" for c, bit in
                         (("A", mh.BU_A), ("H", mh.BU_H), ("L", mh.BU_L), ("K", mh.BU_K)))
            out.append(sess.bold_underline(f"hoa {nip6(b.hoa)}") + sess.bold(" status registered") + "\n")
            out.append(f" coa {nip6(b.coa)} flags {fl}\n")
            local = f" local {nip6(b.local)}"
            if sess.verbose and b.link:
                local += f" link {b.link}"
            out.append(local + "\n")
            rem = math.floor(b.lifetime - (now - b.since))
            line = f" lifetime {rem} / {b.lifetime} seq {b.seq} unreach 0"
            if b.flags & mh.BU_H:
                if self.conf.send_mob_pfx_advs:
                    interval = self.conf.max_mob_pfx_adv_interval
                    mpa_rem = math.floor(interval - (now - b.since) % interval)
                    line += f" mpa {mpa_rem} / {interval} retry 0"
                else:
                    line += " mpa - / 0 retry -2"
            out.append(line + "\n")
        return "".join(out)

    def _bc_change(self, sess: Session, rest: str, adding: bool) -> str:
        if not rest or rest[-1] not in C_SPACE:
            return BC_USAGE  # the key/value parser needs whitespace after the last value
        words = rest.split()
        if len(words) % 2:
            return BC_USAGE
        kv = dict(zip(words[0::2], words[1::2]))
        try:
            hoa = ipaddress.IPv6Address(kv["hoa"]) if "hoa" in kv else None
            coa = ipaddress.IPv6Address(kv["coa"]) if "coa" in kv else None
            local = ipaddress.IPv6Address(kv["local"]) if "local" in kv else None
            lifetime = int(kv.get("lifetime", "0"))
        except ValueError:
            return BC_USAGE
        if hoa is None:
            return "missing hoa\n"
        if local is None:
            return "missing local\n"
        flags = 0
        for c in kv.get("flags", ""):
            bit = {"A": mh.BU_A, "H": mh.BU_H, "L": mh.BU_L, "K": mh.BU_K}.get(c)
            if bit is None:
                return f"invalid flag:{c}\n"
            flags |= bit
        if adding:
            if coa is None:
                return "missing coa; required for adding\n"
            if lifetime == 0:
                return "lifetime is zero\n"
        elif lifetime != 0:
            return "lifetime is not zero\n"
        seq_word = kv.get("seq", "auto")
        bce = self.bc.get(hoa)
        if seq_word == "auto":
            seq = ((bce.seq + 1) & 0xFFFF) if bce else 0
        else:
            try:
                seq = int(seq_word) & 0xFFFF
            except ValueError:
                return BC_USAGE
        status, _seq, _granted = self.process(hoa, coa or hoa, local, flags, seq, lifetime)
        return f"bc status={status}\n"

    def commands(self) -> dict[str, Command]:
        def bc(sess: Session, rest: str) -> str:
            return self.dump_bc(sess)

        def bc_add(sess: Session, rest: str) -> str:
            return self._bc_change(sess, rest, True)

        def bc_del(sess: Session, rest: str) -> str:
            return self._bc_change(sess, rest, False)

        def empty(sess: Session, rest: str) -> str:
            return ""

        def thread(sess: Session, rest: str) -> str:
            return f"bu: {len(self._tasks)}\n"

        return {
            "bc": Command(bc, children={"add": Command(bc_add, takes_args=True),
                                        "del": Command(bc_del, takes_args=True)}),
            "nonce": Command(empty),
            "hal": Command(empty),  # no router advertisements are processed: empty HA list
            "pl": Command(empty),  # likewise the prefix list
            "thread": Command(thread),
        }
