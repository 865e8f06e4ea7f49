"""An in-memory network for the engine's sans-I/O cores: a mobile node, a home agent, two uplinks.

No sockets: every datagram is handed from one core to the other at once (zero
latency) unless its uplink is cut or blackholed; the clock is stepped by hand.
Uplink ``up0`` (ifindex 2) has an IPv6 CoA; ``up1`` (ifindex 3) an IPv4 CoA
behind a NAT44 that shows the home agent another address and port.
"""

from __future__ import annotations

import random

from mhgui.engine import wire
from mhgui.engine.ha import Deliver, HaNode, HomeAgentCore, Send
from mhgui.engine.mn import MobileNodeCore, SendOn, UplinkInfo, WriteTun
from mhgui.engine.mn_binding import HoaBinding, UplinkPrefs

KEY = bytes(range(32))
IDENTITY = "mn1@lab.mhgui.invalid"
SPI = 256
HOA = "2001:db8:10::42"
HOA16 = wire.addr16(HOA)
HA_HOME = "2001:db8:10::1"
CN = "2001:db8:c0::2"
UP0 = UplinkInfo(2, "up0", True, coa6="2001:db8:a1::2", mtu=1500)
UP1 = UplinkInfo(3, "up1", True, coa4="192.0.2.2", mtu=1500)
#: what the home agent sees as the source of each uplink (up1 is NATed)
OUTER = {2: ("2001:db8:a1::2", 4191), 3: ("198.51.100.2", 40001)}


def seeded(seed: int):
    r = random.Random(seed)
    return lambda n: bytes(r.getrandbits(8) for _ in range(n))


def ipv6_packet(src: str, dst: str, payload: bytes = b"hello", nh: int = 17) -> bytes:
    return (bytes([0x60, 0, 0, 0]) + len(payload).to_bytes(2, "big") + bytes([nh, 64])
            + wire.addr16(src) + wire.addr16(dst) + payload)


class Sim:
    """The two cores and the wire between them. ``wire_log``: every datagram (direction, ifindex, payload)."""

    def __init__(self, *, ha_key: bytes = KEY, mn_key: bytes = KEY, skew_s: float = 0.0, seed: int = 1,
                 prefs: UplinkPrefs = UplinkPrefs(("up0", "up1")), mcoa: bool = False) -> None:
        self.t = 1000.0
        self.wall = 1_800_000_000.0
        self.mn_skew = skew_s
        self.ha_key = ha_key
        self.seed = seed
        self.ha = self._new_ha(restart_counter=1)
        self.mn = MobileNodeCore(identity=IDENTITY, spi=SPI, key=mn_key, ha_home=HA_HOME, ha_families={4, 6},
                                 hoas=[HoaBinding(HOA, 64, prefs)], random=seeded(seed + 1), mcoa=mcoa)
        self.cut: set[int] = set()
        self.blackholed: set[int] = set()
        self.lose_bus = False  # the wire loses every Binding Update (probes still pass)
        self.wire_log: list[tuple[str, int, bytes]] = []
        self.delivered: list[bytes] = []  # inner packets the HA wrote to its TUN
        self.tun: list[bytes] = []  # packets the MN wrote to its TUN
        self.events: list = []
        self.uplinks = {2: UP0, 3: UP1}
        self._ha_tick = self.t

    def _new_ha(self, restart_counter: int) -> HomeAgentCore:
        return HomeAgentCore(address=HA_HOME, home_prefix="2001:db8:10::/64",
                             nodes=[HaNode(IDENTITY, frozenset({HOA16}), {SPI: self.ha_key})],
                             start_wall=self.wall - 60, restart_counter=restart_counter,
                             random=seeded(self.seed + restart_counter * 7))

    def restart_ha(self) -> None:
        self.ha = HomeAgentCore(address=HA_HOME, home_prefix="2001:db8:10::/64",
                                nodes=[HaNode(IDENTITY, frozenset({HOA16}), {SPI: self.ha_key})],
                                start_wall=self.wall, restart_counter=self.ha.restart_counter + 1,
                                random=seeded(self.seed + 99))

    @property
    def mn_wall(self) -> float:
        return self.wall + self.mn_skew

    # ---------------------------------------------------------------- plumbing
    def run(self, actions: list) -> None:
        queue = list(actions)
        while queue:
            a = queue.pop(0)
            if isinstance(a, SendOn):
                self.wire_log.append(("up", a.ifindex, a.payload))
                if a.ifindex in self.cut or a.ifindex in self.blackholed:
                    continue
                if self.lose_bus and a.payload[0] >> 4 == 6 and a.payload[42] == wire.MH_BU:
                    continue
                queue += [("ha", x) for x in self.ha.datagram(a.payload, OUTER[a.ifindex], self.t, self.wall)]
            elif isinstance(a, WriteTun):
                self.tun.append(a.packet)
            elif isinstance(a, tuple) and a[0] == "ha":
                x = a[1]
                if isinstance(x, Send):
                    idx = next(i for i, o in OUTER.items() if o == x.peer) if x.peer in OUTER.values() else None
                    self.wire_log.append(("down", idx, x.payload))
                    if idx is None or idx in self.cut or idx in self.blackholed:
                        continue
                    queue += self.mn.datagram(idx, x.payload, self.t, self.mn_wall)
                elif isinstance(x, Deliver):
                    self.delivered.append(x.packet)
                else:
                    self.events.append(x)
            else:
                self.events.append(a)

    def start(self) -> None:
        self.run(self.mn.uplinks_changed(list(self.uplinks.values()), self.t, self.mn_wall))

    def set_uplink(self, info: UplinkInfo) -> None:
        self.uplinks[info.ifindex] = info
        self.run(self.mn.uplinks_changed(list(self.uplinks.values()), self.t, self.mn_wall))

    def advance(self, seconds: float) -> None:
        """Step the clock by ``seconds``, running every timer that falls due on the way."""
        end = self.t + seconds
        while True:
            nxt = min(self.mn.next_timer(), self._ha_tick + 1.0)
            if nxt > end:
                break
            self.wall += max(0.0, nxt - self.t)
            self.t = max(self.t, nxt)
            if self.t >= self._ha_tick + 1.0:
                self._ha_tick = self.t
                self.run([("ha", x) for x in self.ha.tick(self.t)])
            self.run(self.mn.tick(self.t, self.mn_wall))
        self.wall += end - self.t
        self.t = end

    # ---------------------------------------------------------------- views
    def binding(self) -> dict:
        return self.mn.bindings_view(self.t)[0]

    def signalling(self, direction: str | None = None) -> list[tuple[str, int, object]]:
        """Decoded signalling on the wire: (direction, ifindex, message)."""
        out = []
        for d, idx, payload in self.wire_log:
            if payload[0] >> 4 != 6 or (direction and d != direction):
                continue
            src, dst, mh = wire.decode_packet(payload)
            out.append((d, idx, wire.decode_mh(mh, src, dst)))
        return out

    def bus_bas(self) -> list:
        return [(d, i, m) for d, i, m in self.signalling() if isinstance(m, (wire.BindingUpdate, wire.BindingAck))]
