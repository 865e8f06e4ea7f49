"""The rtnetlink source against a real kernel in a network namespace.

After every step the model must equal ``ip -6 addr show`` in that namespace.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_asyncio

from mhgui.core.model import flag_names
from mhgui.core.state import StateStore
from mhgui.sources.netlink import NetlinkSource
from netns import lab  # noqa: F401  (fixture)

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
    up = lab.uplink("up0")
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
