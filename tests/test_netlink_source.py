"""The rtnetlink source against a real kernel in a network namespace.

After every step the model must equal ``ip -6 addr show`` in that namespace.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter

import pytest
import pytest_asyncio

from mhgui.core.model import AddressFlag, flag_names
from mhgui.core.state import AddressUpsert, StateStore
from mhgui.sources.netlink import NetlinkSource
from netns import lab, run  # noqa: F401  (fixture)

pytestmark = [pytest.mark.netns]


def model_addresses(store: StateStore) -> dict:
    return {(k.ifindex, k.address, k.prefixlen): frozenset(flag_names(a.flags)) - {"stable-privacy", "autojoin"}
            for k, a in store.state.addresses.items() if a.family == 10}


async def until(pred, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def converged(store: StateStore, lab, timeout: float = 5.0):
    """Wait until the model equals the kernel's table, then assert it."""
    want = {}

    def same():
        nonlocal want
        want = lab.addresses()
        return model_addresses(store) == want

    try:
        await until(same, timeout, "model == ip -6 addr show")
    except AssertionError:
        got = model_addresses(store)
        missing = {k: v for k, v in want.items() if got.get(k) != v}
        extra = {k: v for k, v in got.items() if want.get(k) != v}
        raise AssertionError(f"model differs from the kernel: kernel-only {missing}, model-only {extra}")


@pytest_asyncio.fixture
async def running(lab):  # noqa: F811
    store = StateStore()
    src = NetlinkSource(store.apply, netns=lab.ns)
    await src.start()
    await until(lambda: store.sources.get("netlink", ("",))[0] == "ok", what="first snapshot")
    yield store, src, lab
    await src.stop()


@pytest.mark.asyncio
async def test_addresses_added_and_removed_with_and_without_dad(running):
    store, src, lab = running
    up = lab.uplink("up0")
    lab.sysctl("net.ipv6.conf.up0.accept_dad=1")
    await converged(store, lab)
    assert store.state.interfaces[up].name == "up0" and store.state.interfaces[up].up

    lab.ip("-6", "addr", "add", "2001:db8:1::10/64", "dev", "up0", "nodad")
    lab.ip("-6", "addr", "add", "2001:db8:1::11/64", "dev", "up0")  # with DAD: tentative first
    await converged(store, lab)
    flags = store.state.addresses[(up, "2001:db8:1::11", 64)].flags
    # DAD takes about a second: the model follows the kernel to the non-tentative state
    await until(lambda: "tentative" not in lab.addresses().get((up, "2001:db8:1::11", 64), {"tentative"}),
                what="DAD done")
    await converged(store, lab)
    assert "tentative" not in flag_names(store.state.addresses[(up, "2001:db8:1::11", 64)].flags)
    assert flags is not None

    lab.ip("-6", "addr", "del", "2001:db8:1::10/64", "dev", "up0")
    await converged(store, lab)
    assert (up, "2001:db8:1::10", 64) not in store.state.addresses


@pytest.mark.asyncio
async def test_link_down_and_up(running):
    store, src, lab = running
    up = lab.uplink("up0")
    await until(lambda: up in store.state.interfaces and store.state.interfaces[up].up, what="up0 up")
    lab.ip("link", "set", "p-up0", "down", ns=lab.peer)  # carrier loss
    await until(lambda: not store.state.interfaces[up].carrier, what="carrier loss")
    assert store.state.interfaces[up].admin_up and not store.state.interfaces[up].up
    lab.ip("link", "set", "p-up0", "up", ns=lab.peer)
    await until(lambda: store.state.interfaces[up].up, what="carrier back")
    lab.ip("link", "set", "up0", "down")
    await until(lambda: not store.state.interfaces[up].admin_up, what="admin down")
    lab.ip("link", "del", "up0")
    await until(lambda: up not in store.state.interfaces, what="link removed")
    assert not any(k.ifindex == up for k in store.state.addresses)
    await converged(store, lab)


@pytest.mark.asyncio
async def test_dad_failure_same_address_on_both_ends(running):
    store, src, lab = running
    up = lab.uplink("up0")
    for ns, dev in ((lab.ns, "up0"), (lab.peer, "p-up0")):
        lab.sysctl(f"net.ipv6.conf.{dev}.accept_dad=1", ns=ns)
    lab.ip("-6", "addr", "add", "2001:db8:5::1/64", "dev", "p-up0", "nodad", ns=lab.peer)
    lab.ip("-6", "addr", "add", "2001:db8:5::1/64", "dev", "up0")
    key = (up, "2001:db8:5::1", 64)
    await until(lambda: key in store.state.addresses and "dadfailed" in flag_names(store.state.addresses[key].flags),
                timeout=8, what="DAD failure")
    await converged(store, lab)


@pytest.mark.asyncio
async def test_temporary_address_replaced(running):
    store, src, lab = running
    lab.uplink("up0")
    lab.sysctl("net.ipv6.conf.up0.use_tempaddr=2")
    lab.ip("-6", "addr", "add", "2001:db8:7::1/64", "dev", "up0", "mngtmpaddr", "nodad")
    await converged(store, lab)
    temps = [k for k, f in lab.addresses().items() if "temporary" in f]
    assert len(temps) == 1
    events = []
    unsubscribe = store.subscribe(events.extend)
    # the kernel makes a new temporary address when the old one is gone and the mngtmpaddr one is refreshed
    lab.ip("-6", "addr", "del", f"{temps[0][1]}/64", "dev", "up0")
    lab.ip("-6", "addr", "change", "2001:db8:7::1/64", "dev", "up0", "mngtmpaddr", "nodad")
    await until(lambda: len([k for k, a in store.state.addresses.items() if "temporary" in flag_names(a.flags)]) == 1
                and temps[0][:3] not in {tuple(k) for k in store.state.addresses}, what="new temporary")
    await converged(store, lab)
    unsubscribe()
    touched = {c.key for c in events if c.key is not None}
    new = [k for k in store.state.addresses if "temporary" in flag_names(store.state.addresses[k].flags)]
    assert {tuple(k) for k in touched} == {temps[0][:3], tuple(new[0])}, events


@pytest.mark.asyncio
async def test_burst_of_2000_addresses(running):
    store, src, lab = running
    lab.uplink("up0")
    batch = "".join(f"addr add 2001:db8:{i // 256:x}:{i % 256:x}::1/64 dev up0 nodad\n" for i in range(2000))
    from netns import run
    run("ip", "-n", lab.ns, "-batch", "-", input=batch)
    await converged(store, lab, timeout=20)
    assert len(model_addresses(store)) >= 2000
    run("ip", "-n", lab.ns, "-batch", "-", input=batch.replace(" add ", " del "))
    await converged(store, lab, timeout=20)


@pytest.mark.asyncio
async def test_lost_events_lead_to_a_full_redump(lab):  # noqa: F811
    """A tiny receive buffer overflows (ENOBUFS): the source re-dumps and the model is right again."""
    store = StateStore()
    statuses = []
    store.subscribe(lambda cs: statuses.extend(c.detail for c in cs if c.kind.startswith("source")))
    src = NetlinkSource(store.apply, netns=lab.ns, rcvbuf=4096)
    await src.start()
    try:
        await until(lambda: store.sources.get("netlink", ("",))[0] == "ok", what="first snapshot")
        lab.uplink("up0")
        from netns import run
        batch = "".join(f"addr add 2001:db8:9:{i:x}::1/64 dev up0 nodad\n" for i in range(1500))
        run("ip", "-n", lab.ns, "-batch", "-", input=batch)
        await converged(store, lab, timeout=30)
        assert src.resyncs >= 1, "the small buffer should have overflowed"
        assert any("resyncing" in s for s in statuses)
    finally:
        await src.stop()


def kernel_default_routers(lab) -> set[tuple[int, str]]:
    import json
    out = set()
    for r in json.loads(lab.ip("-j", "-6", "route", "show", "default")):
        for hop in r.get("nexthops", [r]):
            if hop.get("gateway"):
                out.add((lab.ifindex(hop["dev"]), hop["gateway"]))
    return out


def model_routers(store) -> set[tuple[int, str]]:
    return {(i, r) for i, rs in store.state.routers.items() for r in rs}


@pytest.mark.asyncio
async def test_default_routers_follow_metrics_and_replace(running):
    store, src, lab = running
    lab.uplink("up0")
    lab.uplink("up1")
    lab.ip("-6", "route", "add", "default", "via", "fe80::1", "dev", "up1", "metric", "100")
    lab.ip("-6", "route", "add", "default", "via", "fe80::1", "dev", "up1", "metric", "200")
    lab.ip("-6", "route", "add", "default", "via", "fe80::2", "dev", "up0", "metric", "300")
    await until(lambda: model_routers(store) == kernel_default_routers(lab), what="routers")
    lab.ip("-6", "route", "del", "default", "via", "fe80::1", "dev", "up1", "metric", "100")
    lab.ip("-6", "route", "replace", "default", "via", "fe80::9", "dev", "up0", "metric", "300")
    want = {(lab.ifindex("up1"), "fe80::1"), (lab.ifindex("up0"), "fe80::9")}
    assert kernel_default_routers(lab) == want
    await until(lambda: model_routers(store) == want, what=f"routers == {want}, have {model_routers(store)}")


@pytest.mark.asyncio
async def test_odd_links_and_addresses(running):
    store, src, lab = running
    import subprocess
    # a name that is not UTF-8 (the kernel allows any bytes but '/', ':' and white space)
    subprocess.run([b"ip", b"-n", lab.ns.encode(), b"link", b"add", b"e\xff", b"type", b"veth", b"peer", b"name", b"q1"],
                   check=True)
    await until(lambda: any(i.name == "e\\xff" for i in store.state.interfaces.values()), what="odd name")
    # point-to-point address: IFA_LOCAL is ours, IFA_ADDRESS the peer's
    lab.uplink("up0")
    lab.ip("-6", "addr", "add", "2001:db8:5::1", "peer", "2001:db8:5::2/128", "dev", "up0")
    await until(lambda: any(k.address == "2001:db8:5::1" for k in store.state.addresses), what="local address")
    assert not any(k.address == "2001:db8:5::2" for k in store.state.addresses)
    # a tun device (OpenVPN) is a tunnel, never an access link
    lab.ip("tuntap", "add", "dev", "tun0", "mode", "tun")
    await until(lambda: any(i.name == "tun0" for i in store.state.interfaces.values()), what="tun0")
    assert next(i for i in store.state.interfaces.values() if i.name == "tun0").kind.value == "tunnel"
    # and the source still follows changes after all this
    lab.ip("-6", "addr", "add", "2001:db8:6::1/64", "dev", "up0", "nodad")
    await converged(store, lab)


# ---------------------------------------------------------------- router advertisements (issue 13.1)
SEND_RA = """
import socket, struct, sys
dev, prefix, plen, valid, preferred = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
# RFC 4861 section 4.2, router lifetime 0 (no default router), one Prefix Information option (4.6.2), L and A set
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0)
pio = struct.pack("!BBBBIII", 3, 4, plen, 0xC0, valid, preferred, 0) + socket.inet_pton(socket.AF_INET6, prefix)
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)  # the kernel fills in the checksum
idx = socket.if_nametoindex(dev)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
s.sendto(ra + pio, ("ff02::1", 0, 0, idx))
"""


def send_ra(peer_ns: str, prefix: str, valid: int, preferred: int, dev: str = "p-up0") -> None:
    """A router advertisement for ``prefix``/64 from the peer namespace, to all nodes."""
    run("ip", "netns", "exec", peer_ns, sys.executable, "-c", SEND_RA, dev, prefix, "64", str(valid), str(preferred))


def kernel_slaac(ns: str, dev: str, prefix: str) -> dict | None:
    """``ip -j -6 addr show dev`` entry of the address made from ``prefix`` (the /64's first 4 groups), or None."""
    for link in json.loads(run("ip", "-n", ns, "-j", "-6", "addr", "show", "dev", dev)):
        for a in link.get("addr_info", []):
            if a["local"].startswith(prefix.rstrip(":")) and a["prefixlen"] == 64:
                return a
    return None


@pytest.mark.asyncio
async def test_router_advertisements_with_preferred_lifetime_0(lab):  # noqa: F811
    """A prefix advertised with preferred lifetime 0 is deprecated from the first message, and neither its
    refreshes nor those of a preferred prefix raise a change; deprecating that prefix raises exactly one."""
    store, seen = StateStore(), []

    def sink(ev):
        seen.append(ev)
        store.apply(ev)

    src = NetlinkSource(sink, netns=lab.ns)
    await src.start()
    try:
        await until(lambda: store.sources.get("netlink", ("",))[0] == "ok", what="first snapshot")
        lab.uplink("up0")
        lab.sysctl("net.ipv6.conf.up0.accept_ra=1")
        lab.sysctl("net.ipv6.conf.up0.autoconf=1")
        # the carrier comes up through linkwatch; RAs need a link-local address at both ends
        await until(lambda: "fe80" in lab.ip("-6", "addr", "show", "dev", "p-up0", ns=lab.peer)
                    and "fe80" in lab.ip("-6", "addr", "show", "dev", "up0"), timeout=10, what="link-local addresses")
        await converged(store, lab)
        changes = []
        store.subscribe(changes.extend)
        markers = iter(range(1, 100))

        async def advertise(prefix: str, valid: int, preferred: int) -> None:
            send_ra(lab.peer, prefix + "::", valid, preferred)
            # the kernel took it: lifetimes restarted (each RA advertises a longer valid lifetime)...
            await until(lambda: (a := kernel_slaac(lab.ns, "up0", prefix)) is not None
                        and a["valid_life_time"] >= valid - 1 and bool(a.get("deprecated")) == (preferred == 0),
                        what=f"RA for {prefix}::/64 applied")
            # ...and every message it sent for it has been handled: a later one has
            marker = f"2001:db8:ffff::{next(markers):x}"
            lab.ip("-6", "addr", "add", f"{marker}/128", "dev", "up0", "nodad", "noprefixroute")
            await until(lambda: any(k.address == marker for k in store.state.addresses), what="marker address")

        for i in range(4):
            await advertise("2001:db8:77:0", 1800 + i, 0)
        key = next(k for k in store.state.addresses if k.address.startswith("2001:db8:77:"))
        mine = [c for c in changes if c.key == key]
        assert [c.kind for c in mine] == ["address-added"], mine
        assert "deprecated" in flag_names(mine[0].after.flags)
        raw = [e.address for e in seen if isinstance(e, AddressUpsert) and e.address.key == key]
        assert len(raw) >= 4, "each RA refreshed the address"
        assert all(a.flags & AddressFlag.DEPRECATED for a in raw), "a message of the RA prefix read as preferred"
        assert raw[-1].valid_until > raw[0].valid_until, "the model keeps the refreshed lifetimes"
        assert store.state.addresses[key] == raw[-1]

        # a preferred prefix: refreshes are quiet too; deprecating it is one change, refreshing it again none
        for i in range(3):
            await advertise("2001:db8:78:0", 1800 + i, 1200)
        for i in range(3, 5):
            await advertise("2001:db8:78:0", 1800 + i, 0)
        key2 = next(k for k in store.state.addresses if k.address.startswith("2001:db8:78:"))
        mine2 = [c for c in changes if c.key == key2]
        assert [c.kind for c in mine2] == ["address-added", "address-changed"], mine2
        assert "deprecated" not in flag_names(mine2[0].after.flags)
        assert "deprecated" in flag_names(mine2[1].after.flags)
        others = [c for c in changes if c.key is not None and not c.key.address.startswith("2001:db8:ffff::")
                  and c.key not in (key, key2)]
        assert others == [], "only the two RA addresses and the markers changed"
        await converged(store, lab)
    finally:
        await src.stop()


# ---------------------------------------------------------------- re-dumps during a burst (issues 13.3, 14e)
def replay(before: set, changes) -> set:
    """The address set a reader of the change stream alone (``mhctl monitor``) ends up with."""
    have = set(before)
    for c in changes:
        if c.kind == "address-added":
            assert c.key not in have, f"announced as added twice: {c.key}"
            have.add(c.key)
        elif c.kind == "address-removed":
            assert c.key in have, f"announced as removed while absent: {c.key}"
            have.discard(c.key)
    return have


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["resync", "enobufs"])
async def test_redump_during_a_burst_announces_every_difference_once(lab, how):  # noqa: F811
    """1,000 additions and 500 removals run while the source re-dumps (asked to, or after ENOBUFS on a small
    buffer): the change stream announces each added and each removed address exactly once, never a stable one,
    and replayed over the model before it gives the kernel's final table."""
    store = StateStore()
    src = NetlinkSource(store.apply, netns=lab.ns, rcvbuf=4096 if how == "enobufs" else 1 << 20)
    await src.start()
    try:
        await until(lambda: store.sources.get("netlink", ("",))[0] == "ok", what="first snapshot")
        up = lab.uplink("up0")
        doomed = [f"2001:db8:a:{i + 1:x}::1" for i in range(500)]
        stable = [f"2001:db8:b:{i + 1:x}::1" for i in range(300)]
        added = [f"2001:db8:c:{i + 1:x}::1" for i in range(1000)]
        # the kernel lists an interface's addresses newest first and resumes a dump at an index: removing
        # addresses listed before the dump's position shifts the older (stable) ones under it
        run("ip", "-n", lab.ns, "-batch", "-",
            input="".join(f"addr add {a}/64 dev up0 nodad noprefixroute\n" for a in stable + doomed))
        await converged(store, lab, timeout=30)
        before = set(store.state.addresses)
        resyncs0 = src.resyncs
        changes = []
        store.subscribe(changes.extend)

        lines = [f"addr add {a}/64 dev up0 nodad noprefixroute\n" for a in added]
        lines += [f"addr del {a}/64 dev up0\n" for a in doomed]
        batch = subprocess.Popen(["ip", "-n", lab.ns, "-batch", "-"], stdin=subprocess.PIPE, text=True)

        def feed() -> None:  # in slices, so that the burst lasts as long as a few dumps
            try:
                for start in range(0, len(lines), 10):
                    batch.stdin.write("".join(lines[start:start + 10]))
                    batch.stdin.flush()
                    time.sleep(0.005)
            finally:
                batch.stdin.close()
                batch.wait()

        feeder = asyncio.get_running_loop().run_in_executor(None, feed)
        forced = 0
        while not feeder.done():  # re-dumps while the kernel's table changes
            if how == "resync":
                await src.resync()
                forced += 1
            else:
                await asyncio.sleep(0.01)
        await feeder
        assert batch.returncode == 0
        await converged(store, lab, timeout=30)
        if how == "resync":
            await src.resync()  # one more after the burst: nothing left to announce
        assert src.resyncs - resyncs0 >= max(1, forced), "no re-dump happened during the burst"

        final = set(store.state.addresses)
        assert {(up, a, 64) for a in stable} <= before
        assert final == (before - {(up, a, 64) for a in doomed}) | {(up, a, 64) for a in added}
        assert replay(before, changes) == final
        counts = Counter((c.kind, c.key) for c in changes if c.key is not None)
        assert {k for (_, k) in counts} == {(up, a, 64) for a in doomed + added}, "a stable address was announced"
        assert all(n == 1 for n in counts.values()), [kc for kc, n in counts.items() if n > 1][:5]
        assert sum(1 for (kind, _) in counts if kind == "address-added") == len(added)
        assert sum(1 for (kind, _) in counts if kind == "address-removed") == len(doomed)
    finally:
        await src.stop()
