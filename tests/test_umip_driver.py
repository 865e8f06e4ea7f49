"""Tests for mhgui.daemons.umip (and the interface in mhgui.daemons.base).

The VT client and the driver run against a small asyncio TCP server in this file that
follows umip.md section 1's framing: greeting ``mip6d> `` without NUL, one command per
received chunk whose last byte UMIP overwrites with NUL, replies ending with the
prompt and one NUL, ``Too many connections`` for a second client, fancy escapes until
``fancy no``. It is not the faithful UMIP double (tests/umipdouble/).
"""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import dataclass
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mhgui.core import mip6conf
from mhgui.core.analysis import analyse
from mhgui.core.bindings import BindingState, binding_graph_has_cycle
from mhgui.core.model import Address, AddressFlag, HomeAddress, Interface, InterfaceKind, NodeState
from mhgui.daemons.base import (
    BindingsChanged,
    CapabilityError,
    ConfigWriter,
    DaemonStatus,
    FileConfigWriter,
    FlowBinding,
    LiveInterface,
    LiveView,
    RebindPlan,
    StatusChanged,
    TrafficSelector,
)
from mhgui.daemons.umip import (
    HOA_AS_COA_REASON,
    UmipDriver,
    VtBusy,
    VtClient,
    VtClosed,
    VtRefused,
    VtTimeout,
    backoff_delays,
    node_from_help,
    preference_order,
    rebind_preferences,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
HELP = {
    "mn": "bc bul fancy nonce prompt quit rr stats verbose",
    "ha": "bc fancy hal nonce pl prompt quit stats thread verbose",
    "cn": "bc fancy nonce prompt quit stats verbose",
}

from test_mip6conf import MINIMAL_MN  # noqa: E402  (the minimal MN of umip.md section 2, verbatim)

HOA1, HOA2 = "2001:db8:1::100", "2001:db8:2::100"
ETH1_COA, WLAN_COA = "2001:db8:a::5", "2001:db8:b::7"


def bul_entry(hoa: str, coa: str, ha: str, *, ack: str = "ready", remaining: int = 3512,
              seq: int = 40211, dev: str | None = None) -> str:
    """One home-registration ``bul`` entry in UMIP's format (addresses in NIP6ADDR form)."""
    def nip6(a: str) -> str:
        import ipaddress
        p = ipaddress.IPv6Address(a).packed
        return ":".join(f"{int.from_bytes(p[i:i + 2], 'big'):x}" for i in range(0, 16, 2))

    lines = [
        "== BUL_ENTRY ==",
        f"Home address    {nip6(hoa)}",
        f"Care-of address {nip6(coa)}",
        f"CN address      {nip6(ha)}",
        " lifetime = 3600,  delay = 3420000",
        " flags: IP6_MH_BU_HOME IP6_MH_BU_ACK ",
        f" ack {ack}",
    ]
    if dev is not None:
        lines.append(f" dev {dev} last_coa {nip6(coa)}")
    lines.append(f" lifetime {remaining} / 3600 seq {seq} resend 0 delay 3420(after 3332s)")
    lines.append("")
    return "\n".join(lines) + "\n"


BUL_ETH1 = bul_entry(HOA1, ETH1_COA, "2001:db8:1::1") + bul_entry(HOA2, ETH1_COA, "2001:db8:2::1", seq=1187)
BUL_WLAN = bul_entry(HOA1, WLAN_COA, "2001:db8:1::1", seq=40212) + bul_entry(HOA2, WLAN_COA, "2001:db8:2::1", seq=1188)
BC_FANCY = (
    "\x1b[1;4mhoa 2001:db8:1:0:0:0:0:100\x1b[0m\x1b[1m status registered\x1b[0m\n"
    " coa 2001:db8:a:0:0:0:0:5 flags AH--\n local 2001:db8:1:0:0:0:0:1\n"
    " lifetime 3571 / 3600 seq 40211 unreach 0 mpa 512 / 600 retry 0\n"
)


@dataclass
class Conn:
    fancy: bool = True
    verbose: bool = False
    prompt: bool = True


class FakeVt:
    """A VT server with UMIP's framing (umip.md section 1)."""

    def __init__(self, node: str = "mn", bul: str | Callable[[Conn], str] = BUL_ETH1,
                 bc: str | Callable[[Conn], str] = BC_FANCY, segment: int | None = None) -> None:
        self.node = node
        self.bul = bul
        self.bc = bc
        self.segment = segment
        self.port = 0
        self.server: asyncio.base_events.Server | None = None
        self.client: asyncio.StreamWriter | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.commands: list[str] = []
        self.connections = 0
        self.silent = False  # answer without the final NUL

    async def start(self) -> "FakeVt":
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """The daemon stops: the listener closes and the client is disconnected."""
        server, self.server = self.server, None
        if server is not None:
            server.close()
        await self.drop_clients()
        if server is not None:
            await server.wait_closed()

    async def drop_clients(self) -> None:
        for w in list(self.writers):
            w.close()
        for w in list(self.writers):
            try:
                await w.wait_closed()
            except OSError:
                pass
        self.writers.clear()
        self.client = None

    async def restart(self, bul=None, down: float = 0.2) -> None:
        await self.stop()
        await asyncio.sleep(down)
        if bul is not None:
            self.bul = bul
        await self.start()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if not self.segment:
            writer.write(data)
            await writer.drain()
            return
        for i in range(0, len(data), self.segment):
            writer.write(data[i:i + self.segment])
            await writer.drain()
            await asyncio.sleep(0.001)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            if self.client is not None:
                writer.write(b"Too many connections\n")
                await writer.drain()
                return
            self.client = writer
            self.connections += 1
            conn = Conn()
            writer.write(b"mip6d> ")
            await writer.drain()
            while True:
                data = await reader.read(8192)
                if not data:
                    return
                line = data[:-1].decode()  # UMIP overwrites the chunk's last byte with NUL
                self.commands.append(line.strip())
                out = self._respond(conn, line.split())
                if out is None:
                    return  # quit: no prompt, no NUL
                if not conn.fancy:
                    out = ANSI.sub("", out)
                if self.silent:
                    await self._send(writer, out.encode())
                    continue
                await self._send(writer, out.encode() + (b"mip6d> " if conn.prompt else b"") + b"\0")
        except (ConnectionError, OSError):
            pass
        finally:
            if self.client is writer:
                self.client = None
            self.writers.discard(writer)
            writer.close()

    def _respond(self, conn: Conn, words: list[str]) -> str | None:
        if not words:
            return ""
        cmd, args = words[0], words[1:]
        if cmd in ("quit", "exit"):
            return None
        if cmd in ("fancy", "verbose", "prompt"):
            if args and args[0] in ("yes", "y"):
                setattr(conn, cmd, True)
            elif args and args[0] in ("no", "n"):
                setattr(conn, cmd, False)
            elif args:
                return f'unknown command: "{args[0]}"\n'
            return ("yes" if getattr(conn, cmd) else "no") + "\n"
        if cmd == "help":
            return HELP[self.node] + "\n"
        if cmd in ("bul", "bc"):
            if args:
                return "unknown args\n"
            if cmd == "bul" and self.node != "mn":
                return f'unknown command: "{cmd}"\n'
            src = self.bul if cmd == "bul" else self.bc
            return src(conn) if callable(src) else src
        return f'unknown command: "{cmd}"\n'


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def wait_until(pred: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def fast_driver(port: int, **kw) -> UmipDriver:
    """A driver that keeps its terminal connection (the tests below follow one connection's life)."""
    opts = dict(port=port, poll_interval=0.05, confirm_interval=0.05, backoff_initial=0.05,
                backoff_max=0.2, reply_timeout=2.0, process_probe=lambda: False, hold_connection=True)
    opts.update(kw)
    return UmipDriver(**opts)


# --------------------------------------------------------------------------- VT client


@pytest.mark.asyncio
async def test_client_framing_greeting_and_split_replies():
    fake = await FakeVt(segment=3).start()  # every reply in 3-byte segments
    client = VtClient(fake.port)
    try:
        await client.connect()
        assert client.greeting == "mip6d> "
        assert await client.command("fancy no") == "no\n"
        assert await client.command("help") == HELP["mn"] + "\n"
        assert await client.command("bul") == BUL_ETH1
        assert await client.command("frob") == 'unknown command: "frob"\n'
        # one command per write, terminated by CRLF: the server saw them whole
        assert fake.commands == ["fancy no", "help", "bul", "frob"]
        with pytest.raises(ValueError):
            await client.command("bul\nbc")
    finally:
        await client.close()
        await fake.stop()


@pytest.mark.asyncio
async def test_client_fancy_escapes_until_fancy_no():
    fake = await FakeVt(node="ha").start()
    client = VtClient(fake.port)
    try:
        await client.connect()
        assert "\x1b[1;4m" in await client.command("bc")
        assert await client.command("fancy no") == "no\n"
        assert "\x1b" not in await client.command("bc")
    finally:
        await client.close()
        await fake.stop()


@pytest.mark.asyncio
async def test_client_too_many_connections():
    fake = await FakeVt().start()
    first, second = VtClient(fake.port), VtClient(fake.port)
    try:
        await first.connect()
        with pytest.raises(VtBusy, match="one at a time"):
            await second.connect()
        assert not second.connected
    finally:
        await first.close()
        await second.close()
        await fake.stop()


@pytest.mark.asyncio
async def test_client_refused_tries_both_addresses():
    client = VtClient(free_port())
    with pytest.raises(VtRefused) as e:
        await client.connect()
    assert "::1" in str(e.value) and "127.0.0.1" in str(e.value)


@pytest.mark.asyncio
async def test_client_closed_and_timeout():
    fake = await FakeVt().start()
    client = VtClient(fake.port, reply_timeout=0.3)
    try:
        await client.connect()
        await fake.drop_clients()
        with pytest.raises(VtClosed):
            await client.command("bul")
        assert not client.connected
        await client.connect()
        fake.silent = True  # output without the NUL: the framing is lost
        with pytest.raises(VtTimeout):
            await client.command("bul")
        assert not client.connected
    finally:
        await client.close()
        await fake.stop()


def test_node_from_help_and_backoff():
    assert node_from_help(HELP["mn"]) == "mn"
    assert node_from_help("bc fancy hal nonce pl prompt\nquit stats thread verbose") == "ha"
    assert node_from_help(HELP["cn"]) is None
    d = backoff_delays()
    assert [next(d) for _ in range(8)] == [0.5, 1, 2, 4, 8, 10, 10, 10]


# --------------------------------------------------------------------------- driver: connection and polling


@pytest.mark.asyncio
async def test_driver_mobile_node_polls_bul():
    fake = await FakeVt(segment=64).start()
    drv = fast_driver(fake.port)
    events = []
    drv.subscribe(events.append)
    assert drv.status.state == "stopped" and not drv.capabilities.connected
    try:
        await drv.start()
        await drv.start()  # idempotent
        await wait_until(lambda: len(drv.bindings()) == 2, what="bindings")
        assert drv.status == DaemonStatus("umip", "mn", True, "connected", None)
        assert fake.commands[:4] == ["fancy no", "verbose yes", "help", "bul"]
        assert {(b.hoa, b.coa, b.state) for b in drv.bindings()} == {
            (HOA1, ETH1_COA, BindingState.REGISTERED), (HOA2, ETH1_COA, BindingState.REGISTERED)}
        caps = drv.capabilities
        assert caps.name == "umip" and caps.connected
        assert not (caps.per_hoa_choice or caps.multiple_coas or caps.flow_bindings or caps.runtime_rebind
                    or caps.hoa_as_coa or caps.home_and_foreign)
        states = [e.status.state for e in events if isinstance(e, StatusChanged)]
        assert states[:2] == ["starting", "connected"]
        assert fake.connections == 1
    finally:
        await drv.stop()
        await drv.stop()
        await fake.stop()
    assert drv.status.state == "stopped" and drv.bindings() == []


@pytest.mark.asyncio
async def test_driver_home_agent_polls_bc_and_fills_interfaces():
    fake = await FakeVt(node="ha").start()
    drv = fast_driver(fake.port)
    try:
        await drv.start()
        await wait_until(lambda: drv.bindings(), what="bindings")
        assert drv.status.node == "ha"
        (b,) = drv.bindings()
        assert (b.hoa, b.coa, b.source, b.state) == (HOA1, ETH1_COA, "bc", BindingState.REGISTERED)
        assert "bul" not in fake.commands
        drv.set_live(LiveView({"eth1": LiveInterface("eth1", up=True, coas=(ETH1_COA,))}))
        assert drv.bindings()[0].interface == "eth1"
    finally:
        await drv.stop()
        await fake.stop()


@pytest.mark.asyncio
async def test_driver_emits_bindings_event_on_change_only():
    polls = {"n": 0, "ack": "ready"}

    def bul(conn: Conn) -> str:
        polls["n"] += 1  # the countdown moves every poll; that alone is no change
        text = bul_entry(HOA1, ETH1_COA, "2001:db8:1::1", ack=polls["ack"], remaining=3600 - polls["n"],
                         dev="eth1" if conn.verbose else None)
        return text

    fake = await FakeVt(bul=bul).start()
    drv = fast_driver(fake.port)
    changes = []
    drv.subscribe(lambda e: changes.append(e) if isinstance(e, BindingsChanged) else None)
    try:
        await drv.start()
        await wait_until(lambda: polls["n"] >= 5, what="five polls")
        assert len(changes) == 1
        assert changes[0].bindings[0].interface == "eth1"  # from verbose "dev"
        polls["ack"] = "wait"
        await wait_until(lambda: len(changes) == 2, what="a change")
        assert changes[1].bindings[0].state is BindingState.WAITING_ACK
    finally:
        await drv.stop()
        await fake.stop()


@pytest.mark.asyncio
async def test_driver_busy_then_attaches():
    fake = await FakeVt().start()
    other = VtClient(fake.port)
    await other.connect()  # someone else (telnet) holds the VT
    drv = fast_driver(fake.port)
    try:
        await drv.start()
        await wait_until(lambda: drv.status.state == "busy", what="busy")
        assert "one at a time" in drv.status.error and not drv.status.reachable
        await other.close()
        await wait_until(lambda: drv.status.state == "connected", what="connected")
    finally:
        await other.close()
        await drv.stop()
        await fake.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("running, state", [(False, "absent"), (True, "no-terminal"), (None, "absent")])
async def test_driver_refused_says_both_possibilities(running, state):
    drv = fast_driver(free_port(), process_probe=lambda: running)
    try:
        await drv.start()
        await wait_until(lambda: drv.status.state == state, what=state)
        assert "--enable-vt" in drv.status.error
        if not running:
            assert "not running" in drv.status.error
        assert not drv.capabilities.connected
    finally:
        await drv.stop()


@pytest.mark.asyncio
async def test_driver_reconnects_after_the_server_closes():
    fake = await FakeVt().start()
    drv = UmipDriver(port=fake.port, poll_interval=0.05, process_probe=lambda: False,  # default backoff
                     hold_connection=True)
    seen = []
    drv.subscribe(lambda e: seen.append(e.status.state) if isinstance(e, StatusChanged) else None)
    try:
        await drv.start()
        await wait_until(lambda: drv.connected and drv.bindings(), what="connected")
        assert drv.generation == 1
        await fake.drop_clients()  # mip6d closes the socket
        await wait_until(lambda: drv.status.state == "reconnecting", what="reconnecting")
        assert drv.bindings() == []  # nothing stale while the daemon is away
        await wait_until(lambda: drv.connected and drv.bindings(), timeout=3.0, what="reconnected")
        assert drv.generation == 2 and fake.connections == 2
        assert seen == ["starting", "connected", "reconnecting", "connected"]
    finally:
        await drv.stop()
        await fake.stop()


@pytest.mark.asyncio
async def test_stop_cancels_a_long_backoff():
    drv = UmipDriver(port=free_port(), backoff_initial=10.0, process_probe=lambda: False)
    await drv.start()
    await wait_until(lambda: drv.status.state == "absent", what="absent")
    loop = asyncio.get_running_loop()
    t = loop.time()
    await drv.stop()
    assert loop.time() - t < 1.0 and drv.status.state == "stopped"


@pytest.mark.asyncio
async def test_stop_while_woken_does_not_hang():
    """A wake-up and a stop at the same moment: the cancellation must not be lost (Python 3.11 wait_for race)."""
    fake = await FakeVt().start()
    try:
        for _ in range(20):
            drv = fast_driver(fake.port, poll_interval=0.01)
            await drv.start()
            await wait_until(lambda: drv.connected, what="connected")
            await asyncio.sleep(0.02)
            drv._kick()
            async with asyncio.timeout(3):
                await drv.stop()
            assert drv.status.state == "stopped"
    finally:
        await fake.stop()


@pytest.mark.asyncio
async def test_nap_keeps_a_cancellation_that_meets_a_wake_up():
    """Python 3.11's wait_for returns normally when its awaitable finishes as the task is cancelled."""
    drv = UmipDriver(process_probe=lambda: False)
    for _ in range(10):
        drv._wake.clear()  # a cancelled nap leaves the wake-up set
        nap = asyncio.create_task(drv._nap(10.0))
        await asyncio.sleep(0.005)
        drv._kick()
        nap.cancel()
        with pytest.raises(asyncio.CancelledError):
            await nap
        assert nap.cancelled()


@pytest.mark.asyncio
async def test_refresh_on_demand():
    fake = await FakeVt().start()
    drv = fast_driver(fake.port, poll_interval=60.0)
    try:
        assert await drv.refresh() is False  # not connected
        await drv.start()
        await wait_until(lambda: drv.bindings(), what="first poll")
        fake.bul = BUL_WLAN
        assert await drv.refresh() is True
        assert {b.coa for b in drv.bindings()} == {WLAN_COA}
    finally:
        await drv.stop()
        await fake.stop()


# --------------------------------------------------------------------------- rebind planning


def live_view(**over) -> LiveView:
    ifs = {
        "eth0": LiveInterface("eth0", 1, up=False),
        "eth1": LiveInterface("eth1", 2, up=True, coas=(ETH1_COA,), routers=("fe80::1",)),
        "wlan0": LiveInterface("wlan0", 3, up=True, coas=(WLAN_COA,), routers=("fe80::2",)),
    }
    for name, value in over.items():
        if value is None:
            ifs.pop(name, None)
        else:
            ifs[name] = value
    return LiveView(ifs)


class MemoryWriter:
    """A ConfigWriter in memory, for planning tests."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.writes = 0

    async def read_config(self) -> str:
        return self.text

    async def write_config(self, text: str) -> None:
        self.writes += 1
        self.text = text

    async def restart_daemon(self) -> None:
        pass


class Connected:
    """A driver connected to a fake MN, for the duration of a test."""

    def __init__(self, text: str = MINIMAL_MN, writer: ConfigWriter | None = None, **kw) -> None:
        self.fake = FakeVt(**kw)
        self.writer = writer if writer is not None else MemoryWriter(text)

    async def __aenter__(self) -> UmipDriver:
        await self.fake.start()
        self.drv = fast_driver(self.fake.port, config_writer=self.writer)
        await self.drv.start()
        await wait_until(lambda: self.drv.connected and self.drv.bindings(), what="connected")
        return self.drv

    async def __aexit__(self, *exc) -> None:
        await self.drv.stop()
        await self.fake.stop()


@pytest.mark.asyncio
async def test_plan_lists_every_hoa_that_moves():
    async with Connected() as drv:
        plan = await drv.plan_rebind("2001:db8:1:0:0:0:0:100", "wlan0", live_view())
    assert plan.allowed and plan.refusal is None
    assert plan.hoa == HOA1 and plan.interface == "wlan0"
    assert plan.moves == (HOA1, HOA2)  # UMIP moves every HoA with one decision
    assert plan.restart_required
    assert plan.preferences_before == {"eth1": 1, "wlan0": 2}
    assert plan.preferences_after == {"eth1": 2, "wlan0": 1}
    assert plan.changes == {"eth1": (1, 2), "wlan0": (2, 1)}
    assert plan.target_coas == (WLAN_COA,)
    assert any(HOA2 in n and "too" in n for n in plan.notes)


def test_rebind_preferences():
    assert rebind_preferences({"eth1": 1, "wlan0": 2, "wwan0": 3}, "wwan0") == {"eth1": 2, "wlan0": 3, "wwan0": 1}
    # the others keep their order, numbered from 2 (a gap closed, a tie broken by name); zero stays zero
    assert rebind_preferences({"eth1": 1, "wlan0": 5, "usb0": 0, "wwan0": 9}, "wwan0") == {
        "eth1": 2, "wlan0": 3, "usb0": 0, "wwan0": 1}
    assert rebind_preferences({"a": 1, "b": 1, "c": 4}, "c") == {"a": 2, "b": 3, "c": 1}
    assert rebind_preferences({"a": 2}, "new") == {"a": 2, "new": 1}
    # a never-used target is what the user asks for
    assert rebind_preferences({"a": 1, "b": 0}, "b") == {"a": 2, "b": 1}
    # the scale ends at 10
    many = {f"if{i}": i for i in range(1, 11)}
    out = rebind_preferences(many, "if10")
    assert out["if10"] == 1 and max(out.values()) == 10 and out["if9"] == 10
    assert preference_order({"a": 1, "b": 0, "c": 1, "d": 3}) == [frozenset({"a", "c"}), frozenset({"d"})]


_names = st.sampled_from(["eth0", "eth1", "wlan0", "wwan0", "usb0", "upA", "upB", "tun9", "enp3s0", "wlp2s0"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_names, st.integers(0, mip6conf.MAX_PREFERENCE), max_size=10), _names)
def test_rebind_preferences_always_give_a_clean_order(prefs, target):
    """Whatever the file had (ties, gaps: written by hand or by an older mhgui), a rebind writes an order the
    helper takes: target 1, the others used 2..k in their order, no tie, no gap (issue 13.8)."""
    out = rebind_preferences(prefs, target)
    assert mip6conf.preference_order_problem(out) is None, (prefs, out)
    assert out[target] == 1
    assert {n for n, v in out.items() if v == 0} == {n for n, v in prefs.items() if v == 0 and n != target}
    others = [n for n in prefs if n != target and prefs[n] > 0]
    for a in others:
        for b in others:
            if prefs[a] < prefs[b]:
                assert out[a] < out[b]  # the order the user had is kept


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "ifname, live, pattern, pending",
    [
        ("wlan0", live_view(wlan0=LiveInterface("wlan0", 3, up=False, coas=(WLAN_COA,))), "down", False),
        ("wlan0", live_view(wlan0=LiveInterface("wlan0", 3, up=True, tentative=("2001:db8:b::7",),
                                                routers=("fe80::2",))), "not yet: DAD in progress", True),
        ("wlan0", live_view(wlan0=LiveInterface("wlan0", 3, up=True, routers=("fe80::2",))),
         "no usable care-of address", False),
        ("wlan0", live_view(wlan0=LiveInterface("wlan0", 3, up=True, coas=(WLAN_COA,))), "no default router", False),
        ("wlan0", live_view(eth0=None), "MnHomeLink interface eth0 does not exist.*would exit", False),
        ("eth1", live_view(), "nothing to do", False),
        ("wwan0", live_view(), "no interface wwan0", False),
        ("wlan0", live_view(wlan0=LiveInterface("wlan0", 3, up=True, coas=(), home_link=True)), "home link", False),
    ],
)
async def test_plan_refusals(ifname, live, pattern, pending):
    async with Connected() as drv:
        plan = await drv.plan_rebind(HOA1, ifname, live)
    assert not plan.allowed
    assert re.search(pattern, plan.refusal), plan.refusal
    assert plan.pending is pending


@pytest.mark.asyncio
async def test_plan_repairs_ties_and_refuses_an_order_mip6d_conf_cannot_hold():
    """A file with a tie (written by hand) is renumbered cleanly by a rebind; more than ten interfaces in use
    cannot be numbered 1..k within 1..10: refused before anything is written (issue 13.8)."""
    tied = MINIMAL_MN.replace('Interface "wlan0" { MnIfPreference 2; }', 'Interface "wlan0" { MnIfPreference 1; }')
    async with Connected(tied) as drv:
        plan = await drv.plan_rebind(HOA1, "wlan0", live_view())
    assert plan.allowed, plan.refusal
    assert plan.preferences_after == {"wlan0": 1, "eth1": 2}
    crowded = MINIMAL_MN + "".join(f'Interface "if{i}" {{ MnIfPreference {min(i + 3, 10)}; }}\n' for i in range(10))
    async with Connected(crowded) as drv:
        plan = await drv.plan_rebind(HOA1, "wlan0", live_view())
    assert not plan.allowed and "clean order" in plan.refusal and "12 interfaces are in use" in plan.refusal


@pytest.mark.asyncio
async def test_plan_nothing_to_do_when_order_is_unchanged():
    text = MINIMAL_MN.replace("MnIfPreference 1;", "MnIfPreference 2;").replace(
        'Interface "wlan0" { MnIfPreference 2; }', 'Interface "wlan0" { MnIfPreference 3; }')
    async with Connected(text) as drv:
        plan = await drv.plan_rebind(HOA1, "eth1", live_view())
    assert "nothing to do" in plan.refusal
    assert plan.moves == (HOA1, HOA2)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "text, hoa, pattern",
    [
        (MINIMAL_MN, "2001:db8:3::100", "not a home address in mip6d.conf"),
        (MINIMAL_MN, "bogus", "not an IPv6 address"),
        (MINIMAL_MN.replace("NodeConfig MN;", "NodeConfig HA;"), HOA1, "not a mobile node"),
        (MINIMAL_MN + 'include "/etc/mip6d.d/*.conf"\n', HOA1, "include"),
        (MINIMAL_MN.replace("MnIfPreference 1;", "MnIfPreference 11;"), HOA1, "malformed"),
    ],
)
async def test_plan_refusals_from_the_config(text, hoa, pattern):
    async with Connected(text) as drv:
        plan = await drv.plan_rebind(hoa, "wlan0", live_view())
    assert re.search(pattern, plan.refusal), plan.refusal


@pytest.mark.asyncio
async def test_plan_refused_without_writer_or_daemon():
    drv = UmipDriver(port=free_port(), process_probe=lambda: False)
    plan = await drv.plan_rebind(HOA1, "wlan0", live_view())
    assert "helper" in plan.refusal
    drv.config_writer = MemoryWriter(MINIMAL_MN)
    plan = await drv.plan_rebind(HOA1, "wlan0", live_view())
    assert "does not answer" in plan.refusal
    assert plan.moves == (HOA1, HOA2)  # the plan still tells what would move


@pytest.mark.asyncio
async def test_plan_from_node_state():
    """A NodeState is analysed into a LiveView (counting rules of mhgui.core.analysis)."""
    def iface(i, name):
        return Interface(i, name, InterfaceKind.ETHERNET, admin_up=True, oper_up=True, carrier=True, operstate="up")

    state = NodeState(
        interfaces={1: iface(1, "eth0").with_(carrier=False, operstate="down"), 2: iface(2, "eth1"),
                    3: iface(3, "wlan0")},
        addresses={
            a.key: a for a in (
                Address(2, ETH1_COA, 64),
                Address(3, WLAN_COA, 64, flags=AddressFlag.TENTATIVE),
            )
        },
        routers={2: frozenset({"fe80::1"}), 3: frozenset({"fe80::2"})},
        home_addresses=(HomeAddress(HOA1, 64, "2001:db8:1::1", "eth0"), HomeAddress(HOA2, 64, "2001:db8:2::1", "eth0")),
    )
    view = LiveView.from_state(state, now=0.0)
    assert view.interfaces["eth1"].coas == (ETH1_COA,)
    assert view.interfaces["wlan0"].tentative == (WLAN_COA,)
    async with Connected() as drv:
        plan = await drv.plan_rebind(HOA1, "wlan0", state)
        assert plan.pending and "DAD" in plan.refusal
        state.addresses[(3, WLAN_COA, 64)] = Address(3, WLAN_COA, 64)
        plan = await drv.plan_rebind(HOA1, "wlan0", state)
        assert plan.allowed and plan.target_coas == (WLAN_COA,)
        plan = await drv.plan_rebind(HOA1, "wlan0", (state, analyse(state, 0.0)))
        assert plan.allowed


# --------------------------------------------------------------------------- rebind execution


@pytest.mark.asyncio
async def test_rebind_rewrites_restarts_and_confirms(tmp_path):
    conf = tmp_path / "mip6d.conf"
    conf.write_text(MINIMAL_MN)
    fake = FakeVt()

    async def restart():
        # the restarted daemon first waits for its acks, then both HoAs are registered via wlan0
        polls = {"n": 0}

        def bul(conn):
            polls["n"] += 1
            ack = "wait" if polls["n"] < 3 else "ready"
            return (bul_entry(HOA1, WLAN_COA, "2001:db8:1::1", ack=ack)
                    + bul_entry(HOA2, WLAN_COA, "2001:db8:2::1", ack=ack))

        await fake.restart(bul=bul, down=0.3)

    writer = FileConfigWriter(conf, restart)
    await fake.start()
    drv = fast_driver(fake.port, config_writer=writer)
    try:
        await drv.start()
        await wait_until(lambda: drv.connected and drv.bindings(), what="connected")
        plan = await drv.plan_rebind(HOA1, "wlan0", live_view())
        assert plan.allowed
        res = await drv.rebind(plan)
        assert res.confirmed, res.reason
        assert res.reason is None and not res.rolled_back
        assert res.new_coa == WLAN_COA
        assert res.coas == {HOA1: WLAN_COA, HOA2: WLAN_COA}
        assert 300 <= res.elapsed_ms < 10_000
        assert writer.restarts == 1 and writer.writes == 1
        assert drv.generation == 2
        new = conf.read_text()
        assert mip6conf.interface_preferences(mip6conf.parse(new)) == {"eth1": 2, "wlan0": 1}
        # only the two values changed, byte for byte
        assert new == MINIMAL_MN.replace('"eth1"  { MnIfPreference 1; }', '"eth1"  { MnIfPreference 2; }').replace(
            '"wlan0" { MnIfPreference 2; }', '"wlan0" { MnIfPreference 1; }')
    finally:
        await drv.stop()
        await fake.stop()


@pytest.mark.asyncio
async def test_rebind_rolls_back_on_timeout(tmp_path):
    conf = tmp_path / "mip6d.conf"
    conf.write_text(MINIMAL_MN)
    fake = await FakeVt().start()
    writer = FileConfigWriter(conf, lambda: fake.restart(down=0.1))  # bul keeps showing eth1
    drv = fast_driver(fake.port, config_writer=writer, rebind_timeout=1.0)
    try:
        await drv.start()
        await wait_until(lambda: drv.connected and drv.bindings(), what="connected")
        plan = await drv.plan_rebind(HOA1, "wlan0", live_view())
        res = await drv.rebind(plan)
        assert not res.confirmed
        assert res.rolled_back
        assert "not confirmed within 1 s" in res.reason and "restored" in res.reason
        assert f"{HOA1} is registered via {ETH1_COA}" in res.reason
        assert 1000 <= res.elapsed_ms < 5000
        assert conf.read_text() == MINIMAL_MN  # the previous config is back
        assert writer.restarts == 2 and writer.writes == 2
        await wait_until(lambda: drv.connected, what="reconnected after the rollback")
    finally:
        await drv.stop()
        await fake.stop()


@pytest.mark.asyncio
async def test_rebind_rolls_back_when_the_daemon_does_not_come_back(tmp_path):
    conf = tmp_path / "mip6d.conf"
    conf.write_text(MINIMAL_MN)
    fake = await FakeVt().start()
    calls = []

    async def restart():
        calls.append(conf.read_text())
        if len(calls) == 1:
            await fake.stop()  # the new configuration kills it
        else:
            await fake.restart(down=0.0)

    writer = FileConfigWriter(conf, restart)
    drv = fast_driver(fake.port, config_writer=writer, rebind_timeout=0.8)
    try:
        await drv.start()
        await wait_until(lambda: drv.connected and drv.bindings(), what="connected")
        res = await drv.rebind(await drv.plan_rebind(HOA2, "wlan0", live_view()))
        assert not res.confirmed and res.rolled_back
        assert "did not come back" in res.reason
        assert mip6conf.interface_preferences(mip6conf.parse(calls[0])) == {"eth1": 2, "wlan0": 1}
        assert calls[1] == MINIMAL_MN and conf.read_text() == MINIMAL_MN
        await wait_until(lambda: drv.connected, what="back after the rollback")
    finally:
        await drv.stop()
        await fake.stop()


class ValuesOnlyWriter(MemoryWriter):
    """Like the privileged helper: it changes MnIfPreference values but never removes a statement."""

    def __init__(self, text: str, restart) -> None:
        super().__init__(text)
        self._restart = restart
        self.restarts = 0

    async def write_config(self, text: str) -> None:
        have = mip6conf.interface_preferences(mip6conf.parse(self.text))
        want = mip6conf.interface_preferences(mip6conf.parse(text))
        if set(have) - set(want):
            raise ValueError(f"cannot remove Interface statements: {sorted(set(have) - set(want))}")
        await super().write_config(text)

    async def restart_daemon(self) -> None:
        self.restarts += 1
        await self._restart()


@pytest.mark.asyncio
async def test_rollback_through_a_values_only_writer():
    """The plan added ``Interface "wlan0"``; the rollback gives it 0 (unlisted = unused) instead of removing it."""
    text = MINIMAL_MN.replace('Interface "wlan0" { MnIfPreference 2; }\n', "")
    fake = await FakeVt().start()
    writer = ValuesOnlyWriter(text, lambda: fake.restart(down=0.05))
    drv = fast_driver(fake.port, config_writer=writer, rebind_timeout=0.6)
    try:
        await drv.start()
        await wait_until(lambda: drv.connected and drv.bindings(), what="connected")
        plan = await drv.plan_rebind(HOA1, "wlan0", live_view())
        assert plan.changes == {"eth1": (1, 2), "wlan0": (None, 1)}
        res = await drv.rebind(plan)
        assert not res.confirmed and res.rolled_back and "restored" in res.reason
        assert mip6conf.interface_preferences(mip6conf.parse(writer.text)) == {"eth1": 1, "wlan0": 0}
        assert writer.writes == 2 and writer.restarts == 2
    finally:
        await drv.stop()
        await fake.stop()


@pytest.mark.asyncio
async def test_rebind_refused_plan_and_stale_plan(tmp_path):
    conf = tmp_path / "mip6d.conf"
    conf.write_text(MINIMAL_MN)
    writer = FileConfigWriter(conf)
    async with Connected(writer=writer) as drv:
        res = await drv.rebind(RebindPlan(HOA1, "wlan0", refusal="wlan0 is down or has no carrier"))
        assert not res.confirmed and res.reason == "wlan0 is down or has no carrier"
        plan = await drv.plan_rebind(HOA1, "wlan0", live_view())
        conf.write_text(MINIMAL_MN.replace("MnIfPreference 2;", "MnIfPreference 5;"))
        res = await drv.rebind(plan)
        assert not res.confirmed and "changed since the plan" in res.reason
    assert writer.writes == 0 and writer.restarts == 0


@pytest.mark.asyncio
async def test_file_config_writer_is_atomic_and_keeps_mode(tmp_path):
    conf = tmp_path / "mip6d.conf"
    conf.write_text("NodeConfig MN;\n")
    conf.chmod(0o640)
    w = FileConfigWriter(conf)
    assert isinstance(w, ConfigWriter)
    await w.write_config("NodeConfig MN;\r\nDebugLevel 1;\r\n")
    assert conf.read_bytes() == b"NodeConfig MN;\r\nDebugLevel 1;\r\n"
    assert conf.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["mip6d.conf"]
    assert await w.read_config() == "NodeConfig MN;\r\nDebugLevel 1;\r\n"
    await w.restart_daemon()
    assert w.restarts == 1


# --------------------------------------------------------------------------- HoA as CoA, flow bindings


def test_hoa_as_coa_cycle_examples_of_the_draft():
    """draft-montavont-mobileip-multihoming-pb-statement-04 section 6.2.2 (RFC 6275 section 9.5.1)."""
    # New BU: HoA = addr1 w/ CoA = addr2; existing addr2 -> addr3, addr3 -> addr1: discarded
    assert binding_graph_has_cycle({"addr2": "addr3", "addr3": "addr1"}, ("addr1", "addr2"))
    # existing addr2 -> addr3 only: accepted
    assert not binding_graph_has_cycle({"addr2": "addr3"}, ("addr1", "addr2"))
    # with real addresses, written differently
    cache = {"2001:db8:2:0:0:0:0:100": "2001:db8:1::100"}
    assert binding_graph_has_cycle(cache, (HOA1, "2001:db8:2::100"))
    assert not binding_graph_has_cycle(cache, (HOA1, HOA1))  # CoA == HoA is a de-registration
    # the new BU replaces the HoA's own entry
    assert not binding_graph_has_cycle({"a": "b", "b": "c"}, ("a", "b"))


def test_umip_never_offers_hoa_as_coa():
    drv = UmipDriver(process_probe=lambda: False)
    assert drv.capabilities.hoa_as_coa is False
    reason = drv.hoa_as_coa_refusal(HOA1, HOA2)
    assert reason == HOA_AS_COA_REASON
    assert "silently drops" in reason and "9.5.1" in reason and "6.2.2" in reason
    circular = drv.hoa_as_coa_refusal(HOA1, HOA2, {HOA2: HOA1})
    assert circular.endswith(f"{HOA1} -> {HOA2} -> {HOA1}")


@pytest.mark.asyncio
async def test_flow_bindings_are_refused_clearly():
    drv = UmipDriver(process_probe=lambda: False)
    fb = FlowBinding(fid=1, fid_priority=10, bid_refs=(100,),
                     selector=TrafficSelector(destination_address=HOA1, destination_port=(5000, 5010), next_header=17))
    assert fb.selector.flags() == "CKLO"
    with pytest.raises(CapabilityError, match="RFC 6089"):
        await drv.set_flow_binding(fb)


def test_flow_binding_types_validate():
    ts = TrafficSelector(source_address=("2001:db8:0:0:0:0:0:1", "2001:db8::ff"), flow_label=5)
    assert ts.source_address == ("2001:db8::1", "2001:db8::ff") and ts.flow_label == (5, 5)
    assert ts.flags() == "ABG"
    for bad in (dict(flow_label=1 << 20), dict(source_port=(10, 5)), dict(spi=-1),
                dict(destination_address="10.0.0.1"), dict(traffic_class=(0, 256)), dict(next_header=True)):
        with pytest.raises(ValueError):
            TrafficSelector(**bad)
    for bad in (dict(fid=0), dict(fid_priority=0), dict(bid_refs=()), dict(bid_refs=(0,)), dict(bid_refs=(1, 1))):
        args = dict(fid=1, fid_priority=1, bid_refs=(1,), selector=TrafficSelector())
        args.update(bad)
        with pytest.raises(ValueError):
            FlowBinding(**args)
    assert FlowBinding(2, 3, [1, 2], TrafficSelector()).bid_refs == (1, 2)  # n-cast to two BIDs


@pytest.mark.asyncio
async def test_default_driver_leaves_the_terminal_free_between_polls():
    """mip6d's terminal takes one client: by default the driver says quit after each poll."""
    fake = await FakeVt().start()
    drv = UmipDriver(port=fake.port, poll_interval=0.2, process_probe=lambda: False)
    try:
        await drv.start()
        await wait_until(lambda: drv.bindings(), what="first poll")
        assert drv.connected and drv.status.reachable
        # another client (mhctl, telnet) gets the terminal while the driver waits for its next poll
        got = []
        for _ in range(20):
            c = VtClient(fake.port)
            try:
                await c.connect()
                got.append(await c.command("help"))
                break
            except VtBusy:
                await asyncio.sleep(0.02)
            finally:
                await c.close()
        assert got and "bul" in got[0]
        gen = drv.generation
        await wait_until(lambda: drv.generation > gen + 1, what="later polls")
        assert drv.status.state == "connected"
        fake.bul = BUL_WLAN
        assert await drv.refresh() is True
        assert {b.coa for b in drv.bindings()} == {WLAN_COA}
    finally:
        await drv.stop()
        await fake.stop()


def test_busy_blames_no_one_in_particular():
    """Issue 15.8: "busy" named telnet; the other client is usually mhctl or another window."""
    from mhgui.daemons.umip import _BUSY_TEXT
    assert "telnet" not in _BUSY_TEXT and "one at a time" in _BUSY_TEXT
