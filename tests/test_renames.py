"""Renamed interfaces (issue 13.4): a NIC renamed, and a new NIC taking the old name.

Everything keyed by ifindex follows the NIC; a configuration that names interfaces (mip6d.conf, the
engine's mn.toml, the failover order) and now points at the other NIC is flagged in the window's banner
and in the failover log, and choosing the new NIC is never reported as "recovered". The tracker and the
policy are driven through the real StateStore; the window and the failover service through the real
netlink source in a namespace where `ip link set X name Y` renames veths.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings, strategies as st

from mhgui.core.analysis import analyse
from mhgui.core.failover import FailoverPolicy, Preferences, SwitchTo
from mhgui.core.model import Address, Interface, InterfaceKind as K
from mhgui.core.renames import NameTaken, NameTracker, Renamed
from mhgui.core.state import AddressUpsert, LinkRemoved, LinkUpsert, NetlinkSnapshot, RoutersSnapshot, StateStore
from netns import lab  # noqa: F401  (fixture)

ROUTER = "fe80::1"


def nic(ifindex: int, name: str, up: bool = True) -> Interface:
    return Interface(ifindex, name, K.ETHERNET, admin_up=True, oper_up=up, carrier=up, operstate="up" if up else "down")


# --------------------------------------------------------------------------- the tracker, against a model
NAMES = ["eth0", "eth1", "wlan0", "eth9"]
ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from(NAMES)),
    st.tuples(st.just("rename"), st.integers(0, 9), st.sampled_from(NAMES)),
    st.tuples(st.just("remove"), st.integers(0, 9)),
    st.tuples(st.just("dump"), st.just(0)),
), max_size=40)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_tracker_follows_nics_through_the_store(steps):
    """Model check: a rename is reported exactly when a NIC's name changes; a name is "moved" exactly when the
    NIC that held it first (since it was last free) still exists under another name; a snapshot (netlink
    re-dump) changes nothing."""
    store = StateStore()
    tracker = NameTracker(store.state.interfaces)
    live: dict[int, str] = {}  # the model: ifindex -> name
    first: dict[str, int] = {}  # name -> the NIC that took it first while that NIC exists
    next_ifindex = 10
    for op in steps:
        expect_renamed = []
        if op[0] == "add":
            name = op[1]
            if name in live.values():
                continue
            ifindex, next_ifindex = next_ifindex, next_ifindex + 1
            changes = store.apply(LinkUpsert(nic(ifindex, name)))
            live[ifindex] = name
        elif op[0] == "rename":
            if not live:
                continue
            ifindex = sorted(live)[op[1] % len(live)]
            name = op[2]
            if name in live.values():
                continue
            changes = store.apply(LinkUpsert(nic(ifindex, name)))
            expect_renamed = [Renamed(ifindex, live[ifindex], name)]
            live[ifindex] = name
        elif op[0] == "remove":
            if not live:
                continue
            ifindex = sorted(live)[op[1] % len(live)]
            changes = store.apply(LinkRemoved(ifindex))
            del live[ifindex]
            for n in [n for n, i in first.items() if i == ifindex]:
                del first[n]
        else:
            changes = store.apply(NetlinkSnapshot(tuple(nic(i, n) for i, n in sorted(live.items())), ()))
        events = tracker.observe(changes)
        assert [e for e in events if isinstance(e, Renamed)] == expect_renamed
        for i, n in live.items():
            first.setdefault(n, i)
        for e in events:
            if isinstance(e, NameTaken):
                assert first[e.name] == e.previous and live[e.previous] == e.previous_now != e.name
        for name in NAMES:
            m = tracker.moved(name)
            origin = first.get(name)
            moved = origin is not None and live.get(origin) not in (None, name)
            assert (m is not None) == moved, (name, live, first)
            if m is not None:
                holder = next((i for i, n in live.items() if n == name), None)
                assert (m.original, m.original_now, m.holder) == (origin, live[origin], holder)
                assert m.name in tracker.config_problems({name: "mip6d.conf"})[0]


# --------------------------------------------------------------------------- the policy: never "recovered"
class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@settings(max_examples=150, deadline=None)
@given(others_up=st.booleans(), gap=st.floats(0.0, 20.0), wait=st.floats(0.0, 20.0), in_one_batch=st.booleans())
def test_a_new_nic_under_a_listed_name_is_never_recovered(others_up, gap, wait, in_one_batch):
    """eth0 (ifindex 2) carries the node; it is renamed eth9, and a new NIC (ifindex 7) takes the name eth0.
    Whatever else is usable and however long it takes, the log flags the rename and the reused name, the
    policy never says the new NIC is eth0 "recovered" or "preferred-back", and the problem is told."""
    clock = Clock()
    store = StateStore()
    policy = FailoverPolicy(Preferences(("eth0", "wlan0"), holdup=5.0), clock)
    actions = []

    def feed(*events):
        changes = []
        for ev in events:
            changes += store.apply(ev)
        actions.extend(policy.observe(changes, store.state, analyse(store.state, clock())))

    feed(NetlinkSnapshot((nic(2, "eth0"), nic(3, "wlan0", up=others_up)),
                         (Address(2, "2001:db8:a::2", 64), Address(3, "2001:db8:b::3", 64)),
                         ((2, ROUTER), (3, ROUTER))))
    assert policy.current == "eth0"
    clock.t += 1
    rename = [LinkUpsert(nic(2, "eth9"))]
    newcomer = [LinkUpsert(nic(7, "eth0")), AddressUpsert(Address(7, "2001:db8:7::7", 64)),
                RoutersSnapshot(((2, ROUTER), (3, ROUTER), (7, ROUTER)))]
    if in_one_batch:
        feed(*rename, *newcomer)
    else:
        feed(*rename)
        clock.t += gap
        feed(*newcomer)
    clock.t += wait
    actions.extend(policy.tick(store.state, analyse(store.state, clock())))
    clock.t += 10
    actions.extend(policy.tick(store.state, analyse(store.state, clock())))

    to_eth0 = [a for a in actions if isinstance(a, SwitchTo) and a.interface == "eth0" and a.reason != "initial"]
    assert to_eth0, actions  # the node follows the name (as mip6d.conf does) ...
    assert all(a.reason in ("renamed", "name-reused") for a in to_eth0), to_eth0  # ... and says why
    assert not [e for e in policy.log.entries if e.reason in ("recovered", "preferred-back")], policy.log.entries
    flags = [(e.who, e.reason, e.from_interface, e.to_interface) for e in policy.log.entries if e.who == "system"]
    assert ("system", "renamed", "eth0", "eth9") in flags
    assert ("system", "name-reused", "eth9", "eth0") in flags
    reused = next(e for e in policy.log.entries if e.reason == "name-reused")
    assert "ifindex 7" in reused.note and "ifindex 2" in reused.note
    assert any("eth0 is now another NIC (ifindex 7)" in p for p in policy.name_problems())


# --------------------------------------------------------------------------- real netlink: window and service
async def until(pred, timeout: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.mark.netns
def test_renamed_veth_and_a_new_one_under_its_name(qtbot, qloop, lab):  # noqa: F811
    """`ip link set upA name upZ`, then a new veth named upA, read through the real netlink source: the
    interface rows follow the ifindex, the window's banner and the failover log flag mip6d.conf's "upA"
    (now another NIC), and the move to the new upA is not a recovery."""
    from mhgui.failover_service import FailoverService
    from mhgui.sources.netlink import NetlinkSource
    from mhgui.ui.models import InterfaceModel
    from mhgui.ui.window import LiveController, MainWindow

    store = StateStore()
    c = LiveController(store, time.monotonic)
    c.config_names = lambda: {"upA": "mip6d.conf", "upB": "mip6d.conf"}
    win = MainWindow(c)
    qtbot.addWidget(win)
    src = NetlinkSource(store.apply, netns=lab.ns)
    svc = FailoverService(store, time.monotonic, lambda: analyse(store.state, time.monotonic()),
                          Preferences(("upA", "upB"), holdup=0.5, require_router=False))
    svc.policy.config_names = {"upA": "mip6d.conf", "upB": "mip6d.conf"}  # what the app shell gives it
    m = c.interfaces

    def name_at(ifindex):
        row = m.row_of(ifindex)
        return None if row is None else m.index(row, InterfaceModel.COL_NAME).data()

    async def scenario():
        await src.start()
        svc.start()
        try:
            a = lab.uplink("upA")
            b = lab.uplink("upB")
            lab.ip("-6", "addr", "add", "2001:db8:a::10/64", "dev", "upA", "nodad")
            lab.ip("-6", "addr", "add", "2001:db8:b::10/64", "dev", "upB", "nodad")
            await until(lambda: svc.policy.current == "upA", what="upA in use")
            assert win.banner.isHidden()
            lab.ip("link", "set", "upA", "name", "upZ")
            await until(lambda: name_at(a) == "upZ", what="the row of ifindex a renamed")
            await until(lambda: "was renamed upZ" in win.banner.text(), what="the banner: renamed away")
            assert svc.policy.current == "upB"  # the listed name designates nothing now
            new = lab.uplink("upA", "p-upA2")
            lab.ip("-6", "addr", "add", "2001:db8:c::10/64", "dev", "upA", "nodad")
            await until(lambda: name_at(new) == "upA" and name_at(a) == "upZ", what="both rows")
            await until(lambda: f"upA is now another NIC (ifindex {new})" in win.banner.text(),
                        what=f"the banner: name taken, have {win.banner.text()!r}")
            await until(lambda: svc.policy.current == "upA", what="the new upA chosen")
            reasons = [(e.who, e.reason) for e in svc.log.entries]
            assert ("system", "renamed") in reasons and ("system", "name-reused") in reasons, reasons
            assert ("app", "name-reused") in reasons, reasons
            assert not [r for r in reasons if r[1] in ("recovered", "preferred-back")], reasons
            assert m.index(m.row_of(b), InterfaceModel.COL_NAME).data() == "upB"
        finally:
            await svc.stop()
            await src.stop()

    try:
        qloop.run_until_complete(scenario())
    finally:
        c.close()
