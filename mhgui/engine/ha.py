"""Home agent protocol core (sans-I/O): Binding Updates in, Binding Acks and forwarding decisions out.

Feed it what the UDP socket and the TUN device gave, with the clock; it returns
:class:`Send` (a UDP payload for an outer address), :class:`Deliver` (an inner
packet for the TUN), :class:`BindingChanged` and :class:`Log` actions. The
adapter (:mod:`mhgui.engine.had`) does the I/O. Design and wire contract:
``docs/engine-design.md``.

Rules (RFC 6275 §10.3, RFC 4285 §5-6, RFC 5555 §4, RFC 5847):

- a Binding Update is taken only when its MN-HA authenticator verifies with a
  key (SPI) of the identity in its MN Identifier option, its timestamp is newer
  than the last one taken for that identity (the first one after a start must
  be newer than the start) and within ``skew`` seconds of our clock, and its
  sequence number is newer (modulo 2^16) than the cached one;
- an unknown identity or SPI, a bad authenticator, a malformed or truncated
  datagram: silence (counted, logged once per source per ``log_rate`` s);
- every reply is sent to the observed outer address and port (NAT) and is never
  longer than the datagram it answers;
- decapsulated data is delivered only when it authenticates, is not a replay,
  and its inner source is the sender's registered home address;
- a binding's outer address moves only on a Binding Update, or a keepalive
  frame that authenticates and is the newest the session has seen.
"""

from __future__ import annotations

import collections
import ipaddress
import os
from dataclasses import dataclass
from typing import Callable, NamedTuple

from . import dataplane as dp
from .actions import Log
from .ha_binding import MAX_PATHS, HaBinding, HaPath
from .limits import KeyedBuckets, TokenBucket, source_prefix
from . import wire
from .packets import inner_addresses
from .session import SESSION_GRACE_S, parse_session_option, session_option

__all__ = ["BindingChanged", "Deliver", "HaBinding", "HaNode", "HaPath", "HomeAgentCore", "Log", "Send",
           "STATUS_AUTH_ID_MISMATCH", "STATUS_MESG_ID_REQUIRED"]

STATUS_ACCEPTED = 0
STATUS_UNSPECIFIED = 128
STATUS_PROHIBITED = 129
STATUS_NOT_HOME_SUBNET = 132
STATUS_SEQ_OUT_OF_WINDOW = 135
STATUS_INSUFFICIENT_RESOURCES = 130
STATUS_MCOA_MALFORMED = 164  # RFC 5648 §6.2
STATUS_MCOA_NON_MCOA_EXISTS = 165
STATUS_AUTH_ID_MISMATCH = 144  # RFC 4285 §8: timestamp not acceptable (the BA carries our time)
STATUS_MESG_ID_REQUIRED = 145  # RFC 4285 §8: no Replay Protection option

ERROR_BA_PER_SECOND = 4  # error BAs to one (identity, source) per second, at most
HEARTBEATS_PER_SECOND = 40  # heartbeat replies to one identity (4 a second per uplink by default)
REGISTRATIONS_PER_SECOND = 10  # accepted BUs of one identity (RFC 6275 §11.8: a node sends at most 3/s)
LOG_LINES_PER_SECOND = 5  # all refusal log lines together (bursts of 20)


class Send(NamedTuple):
    """Send ``payload`` in UDP to ``peer`` = (address text, port)."""
    payload: bytes
    peer: tuple[str, int]


class Deliver(NamedTuple):
    """Write ``packet`` (an inner IPv6 packet) into the TUN device."""
    packet: bytes


class BindingChanged(NamedTuple):
    """The binding of ``hoa`` was created, moved, refreshed (``binding``) or removed (None)."""
    hoa: str
    binding: "HaBinding | None"


@dataclass
class HaNode:
    """A mobile node the home agent serves: ``keys`` = {SPI: key bytes} (two during a rotation)."""
    identity: str
    home_addresses: frozenset[bytes]
    keys: dict[int, bytes]
    last_timestamp: int = 0


def seq_newer(a: int, b: int) -> bool:
    """RFC 6275 §9.5.1: ``a`` is newer than ``b`` modulo 2^16."""
    d = (a - b) & 0xFFFF
    return 0 < d < 0x8000


def ntp_now(wall: float) -> int:
    """Replay Protection timestamp (RFC 4285 §6): seconds since 1970 in the high 32 bits, fraction in the low 32."""
    return int(wall * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


class HomeAgentCore:
    """The home agent: binding cache, authentication, replay checks, forwarding decisions.

    ``address``: the home agent's own address on the home prefix (inner
    destination of signalling, text); ``home_prefix``: an IPv6 network text;
    ``nodes``: the served nodes; ``max_lifetime``: s; ``skew``: s;
    ``start_wall``: the wall clock at start (s since 1970); ``restart_counter``:
    RFC 5847 restart counter (persisted and incremented by the adapter).
    ``random``: a ``bytes``-returning function (tests pass a seeded one).
    """

    def __init__(self, *, address: str, home_prefix: str, nodes: list[HaNode], max_lifetime: int = 600,
                 skew: float = 7.0, start_wall: float, restart_counter: int, log_rate: float = 60.0,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self.address = wire.addr16(address)
        self.address_text = ipaddress.IPv6Address(self.address).compressed
        self.prefix = ipaddress.IPv6Network(home_prefix)
        self.max_lifetime = max_lifetime
        self.skew = skew
        self.restart_counter = restart_counter
        self.log_rate = log_rate
        self._random = random
        self._floor = ntp_now(start_wall)
        self.by_identity: dict[str, HaNode] = {}
        self.by_hoa: dict[bytes, HaNode] = {}
        for n in nodes:
            n.last_timestamp = max(n.last_timestamp, self._floor)
            self.by_identity[n.identity] = n
            for h in n.home_addresses:
                self.by_hoa[h] = n
        self.cache: dict[bytes, HaBinding] = {}
        # receiver index -> (binding's hoa, receiver, valid until or None while current)
        self._sessions: dict[int, tuple[bytes, dp.Receiver, float | None]] = {}
        self._retiring: collections.deque[tuple[float, int]] = collections.deque()  # (until, index), in order
        self.counters: collections.Counter[str] = collections.Counter()
        # what others can make us do, bounded: log lines (per reason and source /64, and in all), error BAs
        # (per identity and source), heartbeat replies and registrations (per identity)
        self._log_seen = KeyedBuckets(1.0 / log_rate, 1.0)
        self._log_all = TokenBucket(LOG_LINES_PER_SECOND, 4 * LOG_LINES_PER_SECOND)
        self._log_suppressed = 0
        self._error_bas = KeyedBuckets(ERROR_BA_PER_SECOND, ERROR_BA_PER_SECOND)
        self._heartbeats = KeyedBuckets(HEARTBEATS_PER_SECOND, HEARTBEATS_PER_SECOND)
        self._registrations = KeyedBuckets(REGISTRATIONS_PER_SECOND, REGISTRATIONS_PER_SECOND)

    # ------------------------------------------------------------------ helpers
    def _log(self, now: float, reason: str, source: str, message: str, level: str = "WARNING") -> list:
        """One line per (reason, source /64) per ``log_rate`` s, and :data:`LOG_LINES_PER_SECOND` lines in all:
        many sources cannot flood the log or grow memory (the per-source table is bounded)."""
        if not self._log_seen.take((reason, source_prefix(source)), now):
            return []
        if not self._log_all.take(now):
            self._log_suppressed += 1
            return []
        out = []
        if self._log_suppressed:
            out.append(Log("WARNING", f"{self._log_suppressed} further refusals were not logged (too many at once)"))
            self._log_suppressed = 0
        out.append(Log(level, f"{message} (from {source}; further ones from there are not logged for "
                              f"{self.log_rate:g} s)"))
        return out

    def _drop(self, now: float, reason: str, peer: tuple[str, int], message: str) -> list:
        self.counters[reason] += 1
        return self._log(now, reason, peer[0], message)

    def bindings(self) -> list[HaBinding]:
        return list(self.cache.values())

    # ------------------------------------------------------------------ input
    def datagram(self, payload: bytes, peer: tuple[str, int], now: float, wall: float) -> list:
        """One UDP payload from ``peer``; ``now``: monotonic s; ``wall``: s since 1970."""
        if not payload:
            return self._drop(now, "malformed", peer, "empty datagram dropped")
        nibble = payload[0] >> 4
        if nibble == 0:
            return self._data(payload, peer, now)
        if nibble == 6:
            return self._signalling(payload, peer, now, wall)
        return self._drop(now, "malformed", peer, "datagram that is neither signalling nor data dropped")

    def tun_packet(self, packet: bytes, now: float) -> list:
        """An inner packet read from the TUN (traffic to a home address): seal it to the binding's peer."""
        if len(packet) < 40 or packet[0] >> 4 != 6:
            self.counters["tun-not-ipv6"] += 1
            return []
        b = self.cache.get(packet[24:40])
        paths = b.paths_for(packet, now) if b is not None else None
        if not paths:
            self.counters["no-binding"] += 1
            return []
        self.counters["down-packets"] += 1
        frame = b.sender.seal(packet)  # sealed once: every copy has the same counter (the receiver keeps one)
        if len(paths) == 1:
            return [Send(frame, paths[0].peer)]
        out, seen = [], set()
        for p in paths:  # one copy per outer address at most: no host gets a packet twice (no amplification)
            if p.peer[0] not in seen:
                seen.add(p.peer[0])
                out.append(Send(frame, p.peer))
        self.counters["down-copies"] += len(out) - 1
        return out

    def tick(self, now: float) -> list:
        """Expire bindings and old sessions; call about once a second."""
        out: list = []
        for hoa, b in list(self.cache.items()):
            gone = [p for p in b.paths.values() if p.expires <= now]
            if not gone:
                continue
            if len(gone) == len(b.paths):
                out += self._remove(hoa, now)
                out.append(Log("INFO", f"binding of {b.hoa} ({b.identity}) expired"))
                continue
            for p in gone:
                del b.paths[p.bid]
                out.append(Log("INFO", f"binding of {b.hoa} ({b.identity}) through {p.coa} (BID {p.bid}) expired"))
            out.append(BindingChanged(b.hoa, b))
        while self._retiring and self._retiring[0][0] <= now:
            _t, idx = self._retiring.popleft()
            entry = self._sessions.get(idx)
            if entry is not None and entry[2] is not None and entry[2] <= now:
                del self._sessions[idx]
        return out

    # ------------------------------------------------------------------ data
    def _data(self, frame: bytes, peer: tuple[str, int], now: float) -> list:
        idx = dp.frame_receiver_index(frame)
        entry = self._sessions.get(idx) if idx is not None else None
        if entry is None:
            self.counters["data-unknown-session"] += 1
            return []
        hoa, receiver, _until = entry
        opened = receiver.open(frame)
        if opened is None:
            self.counters["data-unauthenticated"] += 1
            return []
        ftype, inner, counter = opened
        b = self.cache.get(hoa)
        if ftype == dp.FRAME_KEEPALIVE:
            self.counters["keepalives"] += 1
            if b is None or b.receiver is not receiver:
                return []
            # the keepalive names its path (BID, u16) when the node has several; an empty one is the only path's
            path = b.paths.get(int.from_bytes(inner, "big")) if inner else (
                next(iter(b.paths.values())) if len(b.paths) == 1 else None)
            if path is None or path.peer == peer:
                if path is not None:
                    path.last_counter = max(path.last_counter, counter)
                return []
            # a path moves only on a keepalive newer than anything that came through it (the replay window
            # refused a copy already seen); a path with no outer address yet takes its first fresh one
            if path.peer is not None and counter <= path.last_counter:
                return []
            path.last_counter = counter
            old, path.peer = path.peer, peer
            try:
                path.nat = wire.addr16(peer[0]) != wire.addr16(path.coa)
            except wire.WireError:
                path.nat = True
            was = f"{old[0]}:{old[1]}" if old else "not yet known"
            return [BindingChanged(b.hoa, b),
                    Log("INFO", f"{b.hoa}: outer address of BID {path.bid} ({path.coa}) {was} -> "
                                f"{peer[0]}:{peer[1]} (authenticated keepalive)")]
        addrs = inner_addresses(inner)
        if addrs is None or addrs[0] != 6 or addrs[1] != hoa:
            return self._drop(now, "spoofed-source", peer,
                              "authenticated data whose inner source is not the node's home address dropped")
        self.counters["up-packets"] += 1
        if b is not None and len(b.paths) > 1:
            b.learn_upstream(inner, peer, counter)
        return [Deliver(inner)]

    # ------------------------------------------------------------------ signalling
    def _signalling(self, payload: bytes, peer: tuple[str, int], now: float, wall: float) -> list:
        try:
            src, dst, mh = wire.decode_packet(payload)
            msg = wire.decode_mh(mh, src, dst)
        except wire.WireError as e:
            return self._drop(now, "malformed", peer, f"malformed signalling dropped: {e}")
        if dst != self.address:
            return self._drop(now, "not-for-us", peer, "signalling for another home agent address dropped")
        mnid = msg.option(wire.MobileNodeId)
        auth = msg.option(wire.MobilityAuth)
        node = self.by_identity.get(mnid.identifier) if mnid is not None else None
        if node is None or auth is None:
            return self._drop(now, "unknown-identity", peer, "signalling from an unknown identity dropped")
        key = node.keys.get(auth.spi)
        if key is None:
            return self._drop(now, "unknown-spi", peer, f"{node.identity}: unknown SPI {auth.spi} dropped")
        coa = None
        if isinstance(msg, wire.BindingUpdate):
            c4 = msg.option(wire.IPv4CareOf)
            c6 = msg.option(wire.AlternateCareOf)
            bid = msg.option(wire.BindingIdentifier)  # MCoA (RFC 5648): the first BID's CoA is the one it came on
            coa = bid.coa if bid is not None and bid.coa is not None else (
                c6.address if c6 is not None else (c4.address if c4 is not None else None))
        if not wire.verify_authenticator(mh, coa=coa, hoa=src, key=key):
            return self._drop(now, "auth-failed", peer, f"{node.identity}: authenticator does not verify, dropped")
        if isinstance(msg, wire.Heartbeat):
            return self._heartbeat(msg, node, auth.spi, key, src, peer, len(payload), now)
        if isinstance(msg, wire.BindingUpdate):
            return self._binding_update(msg, node, auth.spi, key, src, coa, peer, len(payload), now, wall)
        return self._drop(now, "unexpected-type", peer, f"{node.identity}: mobility header type not handled here")

    def _reply(self, msg, node: HaNode, spi: int, key: bytes, hoa: bytes, coa, peer, limit: int) -> list:
        try:
            mh = wire.encode_authenticated(msg, self.address, hoa, coa=coa, key=key, spi=spi,
                                           identity=node.identity, hoa=hoa)
        except wire.WireError:  # longer than a Mobility Header can be: no answer rather than a crash
            self.counters["reply-too-long"] += 1
            return []
        packet = wire.encode_packet(mh, self.address, hoa)
        if len(packet) > limit:  # never amplify (cannot happen with our own option sets; checked anyway)
            self.counters["reply-suppressed"] += 1
            return []
        return [Send(packet, peer)]

    def _heartbeat(self, msg: wire.Heartbeat, node, spi, key, hoa, peer, size, now: float) -> list:
        if msg.response:
            return []
        if msg.option(wire.RestartCounter) is None:  # our replies must not be longer than the request
            self.counters["heartbeat-without-counter"] += 1
            return []
        if not self._heartbeats.take(node.identity, now):  # a replayed request reflected at someone
            self.counters["heartbeat-rate-limited"] += 1
            return []
        self.counters["heartbeats"] += 1
        reply = wire.Heartbeat(msg.seq, response=True, options=(wire.RestartCounter(self.restart_counter),))
        return self._reply(reply, node, spi, key, hoa, None, peer, size)

    def _error(self, status: int, msg, node, spi, key, hoa, coa, peer, size, now, wall, why: str) -> list:
        # per identity AND source: a replayer elsewhere spends its own budget, not the node's
        if not self._error_bas.take((node.identity, peer), now):
            self.counters["error-ba-rate-limited"] += 1
            return []
        self.counters[f"ba-{status}"] += 1
        # RFC 4285 §6: our time, so the node can resynchronise; never earlier than what we last took from it,
        # or a node whose last timestamp was ahead of our clock (within the skew) could not get past it
        opts = ((wire.ReplayProtection(max(ntp_now(wall), node.last_timestamp + 1)),)
                if status == STATUS_AUTH_ID_MISMATCH else ())
        seq = self.cache[hoa].seq if status == STATUS_SEQ_OUT_OF_WINDOW and hoa in self.cache else msg.seq
        ba = wire.BindingAck(status, seq, 0, options=opts)
        return self._reply(ba, node, spi, key, hoa, coa, peer, size) + self._log(
            now, f"ba-{status}", peer[0], f"{node.identity}: BU refused ({status}: {why})")

    def _binding_update(self, msg: wire.BindingUpdate, node: HaNode, spi: int, key: bytes, hoa: bytes,
                        coa, peer, size: int, now: float, wall: float) -> list:
        args = (msg, node, spi, key, hoa, coa, peer, size, now, wall)
        rp = msg.option(wire.ReplayProtection)
        if rp is None:
            return self._error(STATUS_MESG_ID_REQUIRED, *args, "no replay protection option")
        if rp.timestamp <= node.last_timestamp or abs(rp.timestamp - ntp_now(wall)) > int(self.skew * (1 << 32)):
            return self._error(STATUS_AUTH_ID_MISMATCH, *args, "timestamp not newer than the last one, or outside "
                               f"±{self.skew:g} s of our clock")
        if not self._registrations.take(node.identity, now):  # an insider's flood: no state, no answer
            self.counters["bu-rate-limited"] += 1
            return []
        if not msg.flags & wire.BU_H:
            return self._error(131, *args, "not a home registration")
        if hoa not in node.home_addresses:
            return self._error(STATUS_PROHIBITED, *args, "home address not assigned to this identity")
        old = self.cache.get(hoa)
        if old is not None and not seq_newer(msg.seq, old.seq):
            node.last_timestamp = rp.timestamp
            return self._error(STATUS_SEQ_OUT_OF_WINDOW, *args, f"sequence {msg.seq} not newer than {old.seq}")
        node.last_timestamp = rp.timestamp  # taken: a replay of this BU is refused from now on
        hoa_text = wire.ntop6(hoa)
        bid_opts = msg.options_of(wire.BindingIdentifier)
        if bid_opts:
            problem = _bid_problem(bid_opts, msg.lifetime)
            if problem:
                return self._error(STATUS_MCOA_MALFORMED, *args, problem)
            if old is not None and not old.mcoa:
                return self._error(STATUS_MCOA_NON_MCOA_EXISTS, *args,
                                   "a binding without BID exists for this home address (deregister it first)")
        home = coa is not None and not bid_opts and wire.addr16(coa) == hoa
        if msg.lifetime == 0 or home:  # RFC 6275 §11.5.4 returning home; RFC 5648 §5.6 one BID deregistered
            out: list = []
            if old is not None and bid_opts:
                for o in bid_opts:
                    old.paths.pop(o.bid, None)
                out = self._remove(hoa, now) if not old.paths else [BindingChanged(hoa_text, old)]
            elif old is not None:
                out = self._remove(hoa, now)
            self.counters["deregistrations"] += 1
            opts = [wire.ReplayProtection(rp.timestamp)] + [wire.BindingIdentifier(o.bid) for o in bid_opts]
            ba = wire.BindingAck(STATUS_ACCEPTED, msg.seq, 0, options=tuple(opts))
            what = f"BID {', '.join(str(o.bid) for o in bid_opts)} of {hoa_text}" if bid_opts else hoa_text
            return out + self._reply(ba, node, spi, key, hoa, coa, peer, size) + [
                Log("INFO", f"{node.identity}: {what} deregistered")]
        sess = parse_session_option(msg.option(wire.VendorSpecific))
        if sess is None or coa is None:
            return self._error(STATUS_UNSPECIFIED, *args, "no session option or no care-of address option")
        mn_nonce, mn_index = sess
        ha_nonce = self._random(16)
        ha_index = int.from_bytes(self._random(4), "big")
        while ha_index in self._sessions or ha_index == 0:
            ha_index = int.from_bytes(self._random(4), "big")
        k_up, k_down = dp.derive_keys(key, mn_nonce, ha_nonce)
        lifetime = min(msg.lifetime * 4, self.max_lifetime) // 4 * 4
        paths = self._paths(old, bid_opts, coa, peer, lifetime, now)
        if len(paths) > MAX_PATHS:  # each path may get a copy of a packet: bounded
            return self._error(STATUS_INSUFFICIENT_RESOURCES, *args,
                               f"{len(paths)} care-of addresses for one home address, at most {MAX_PATHS}")
        b = HaBinding(hoa_text, node.identity, msg.seq, now, dp.Sender(k_down, mn_index),
                      dp.Receiver(k_up, ha_index), ha_index, paths, bool(bid_opts))
        if old is not None:  # in-flight frames of the previous registration still open for a moment
            b.flows = old.flows
            b.learned = old.learned  # load-shared flows keep their path (those of gone BIDs fall back)
            self._retire(old, now)
        flows = b.apply_flows(list(msg.options_of(wire.FlowIdentification)),
                              sum((f.fids for f in msg.options_of(wire.FlowSummary)), ()))
        self._sessions[ha_index] = (hoa, b.receiver, None)
        self.cache[hoa] = b
        self.counters["registrations"] += 1
        first = paths[bid_opts[0].bid] if bid_opts else paths[0]
        opts: list = [wire.ReplayProtection(rp.timestamp), session_option(ha_nonce, ha_index)]
        if first.nat:
            opts.append(wire.NatDetection(True, 20))
        opts += [wire.BindingIdentifier(o.bid, 0, False, o.priority) for o in bid_opts]
        # per-flow results (RFC 6089 §6.2): refusals first, then the flows that were bound; a flow the BA
        # leaves out was bound. Never longer than the BU: the room is counted once (8 octets per result)
        fid_opts = [wire.FlowIdentification(fid, pri, status) for fid, pri, status, _w in
                    sorted(flows, key=lambda f: f[2] == 0)]
        base = wire.BindingAck(STATUS_ACCEPTED, msg.seq, lifetime // 4, options=tuple(opts))
        sized = self._reply(base, node, spi, key, hoa, coa, peer, 65535)
        room = max(0, (size - len(sized[0].payload)) // 8 - 1) if sized else 0
        ba = wire.BindingAck(STATUS_ACCEPTED, msg.seq, lifetime // 4, options=tuple(opts + fid_opts[:room]))
        reply = self._reply(ba, node, spi, key, hoa, coa, peer, size) or self._reply(base, node, spi, key, hoa,
                                                                                    coa, peer, size)
        moved = old is None or old.peer != b.peer or old.coa != b.coa or set(old.paths) != set(paths)
        shown = list(paths.values())[:4]
        logs = [Log("INFO", f"{node.identity}: {hoa_text} bound to " + ", ".join(
            f"{p.coa}" + (f" (BID {p.bid}, BID-PRI {p.priority})" if b.mcoa else "")
            + (f" via {p.peer[0]}:{p.peer[1]}" if p.peer else " (outer address not yet seen)")
            + (" (NAT)" if p.nat else "") for p in shown)
            + (f" and {len(paths) - len(shown)} more" if len(paths) > len(shown) else "")
            + f", {lifetime} s")] if moved else []
        bad = [(fid, status, words) for fid, _p, status, words in flows if status]
        refused = [Log("WARNING", f"{node.identity}: {hoa_text} flow binding {fid} refused ({status}: {words})")
                   for fid, status, words in bad[:3]]
        if len(bad) > 3:
            refused.append(Log("WARNING", f"{node.identity}: {hoa_text}: {len(bad) - 3} more flow bindings refused"))
        return [BindingChanged(hoa_text, b)] + reply + logs + refused

    @staticmethod
    def _paths(old: HaBinding | None, bid_opts: tuple, coa: str, peer: tuple[str, int], lifetime: int,
               now: float) -> dict[int, HaPath]:
        """The paths after a registration: without BIDs the one care-of address; with BIDs those named
        (the first one arrived through ``peer``; the others keep a known outer address for the same CoA
        or wait for the node's first authenticated packet on them) plus the earlier ones not named."""
        def nat_of(p_coa: str, p_peer) -> bool:
            if p_peer is None:
                return False
            try:
                return wire.addr16(p_peer[0]) != wire.addr16(p_coa)
            except wire.WireError:  # a peer address with a zone: not ours to compare
                return True
        if not bid_opts:
            return {0: HaPath(0, coa, peer, lifetime, now + lifetime, nat_of(coa, peer), 0, now)}
        paths = {bid: p for bid, p in (old.paths.items() if old is not None and old.mcoa else ())}
        for i, o in enumerate(bid_opts):
            prev = paths.get(o.bid)
            p_peer = peer if i == 0 else (prev.peer if prev is not None and prev.coa == o.coa else None)
            paths[o.bid] = HaPath(o.bid, o.coa, p_peer, lifetime, now + lifetime, nat_of(o.coa, p_peer),
                                  o.priority, prev.registered_at if prev is not None and prev.coa == o.coa else now)
        return paths

    def _remove(self, hoa: bytes, now: float) -> list:
        b = self.cache.pop(hoa, None)
        if b is None:
            return []
        self._retire(b, now)
        return [BindingChanged(b.hoa, None)]

    def _retire(self, b: HaBinding, now: float) -> None:
        """The session of ``b`` stops being current: its frames still open for :data:`SESSION_GRACE_S`."""
        entry = self._sessions.get(b.index)
        if entry is not None and entry[2] is None:
            self._sessions[b.index] = (entry[0], entry[1], now + SESSION_GRACE_S)
            self._retiring.append((now + SESSION_GRACE_S, b.index))


def _bid_problem(opts: tuple, lifetime: int) -> str | None:
    """Why a BU's Binding Identifier options are malformed (RFC 5648 §6.1, status 164), or None."""
    seen = set()
    for o in opts:
        if o.bid == 0:
            return "BID 0 is reserved"
        if o.bid in seen:
            return f"BID {o.bid} appears twice"
        seen.add(o.bid)
        if lifetime and o.coa is None:
            return f"BID {o.bid} carries no care-of address"
    return None
