"""The app's driver for mhgui's engine (mhgui.daemons.engine) against the real control API.

A private system bus with the real policy and dbusmock polkitd (tests/enginebus.py); the real
service (mhgui.engine.mn_dbus) serves a stand-in MobileNodeDaemon in the test's loop; the driver
connects as root. Also: choose_driver, the counting rules with IPv4 CoAs, the goals with the
engine's capabilities, and ``mhctl bindings/rebind --json`` run against the engine.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys

import pytest
import pytest_asyncio

# (enginebus skips this module without root or tools)
from enginebus import ELAPSED_MS, HA, HOA1, HOA2, HOA3, REPO, StandInDaemon, start_stack  # noqa: E402

from waiting import until  # noqa: E402
from mhgui.core.analysis import ROLE_COA, ROLE_LINK_LOCAL, ROLE_OTHER, analyse  # noqa: E402
from mhgui.core.bindings import BindingState  # noqa: E402
from mhgui.core.capabilities import DaemonCapabilities  # noqa: E402
from mhgui.core.model import Address, HomeAddress, Interface, InterfaceKind, NodeState  # noqa: E402
from mhgui.core.taxonomy import Goal, goals_available, scenario_for  # noqa: E402
from mhgui.daemons.base import (  # noqa: E402
    STATE_ABSENT, STATE_CONNECTED, BindingsChanged, LiveInterface, LiveView, StatusChanged,
)
from mhgui.daemons.engine import EngineDriver, bindings_from_json, engine_present  # noqa: E402
from mhgui.daemons.umip import UmipDriver  # noqa: E402
from mhgui.engine.mn_dbus import ACTION_REBIND, serve  # noqa: E402
from mhgui.runtime import Runtime, choose_driver  # noqa: E402

ENGINE_CAPS = DaemonCapabilities(name="engine", connected=True, per_hoa_choice=True, runtime_rebind=True,
                                 failover=True, ipv4_coas=True)


@pytest.fixture(scope="module")
def stack():
    s = start_stack()
    yield s
    s.stop()


@pytest_asyncio.fixture
async def daemon(stack):
    stack.reset()
    d = StandInDaemon()
    d.service = await serve(d, stack.address)
    try:
        yield d
    finally:
        await d.service.close()


@pytest_asyncio.fixture
async def driver(stack):
    drv = EngineDriver(bus_address=stack.address, backoff_initial=0.05, backoff_max=0.2)
    events: list = []
    drv.subscribe(events.append)
    drv.events = events
    try:
        yield drv
    finally:
        await drv.stop()


async def connected(drv: EngineDriver) -> None:
    await drv.start()
    await until(lambda: drv.status.state == STATE_CONNECTED, f"the driver to connect ({drv.status})")


def by_hoa(drv: EngineDriver) -> dict:
    return {b.hoa: b for b in drv.bindings()}


# --------------------------------------------------------------------------- bindings


@pytest.mark.asyncio
async def test_bindings_are_mapped(daemon, driver):
    await connected(driver)
    st = driver.status
    assert (st.name, st.node, st.reachable, st.error) == ("engine", "mn", True, None)
    assert driver.capabilities == ENGINE_CAPS
    b = by_hoa(driver)
    assert set(b) == {HOA1, HOA2}  # HOA3 is unbound: no entry, as in a binding update list
    one = b[HOA1]
    assert (one.coa, one.interface, one.peer, one.state, one.flags, one.source) == (
        "2001:db8:a::5", "eth0", HA, BindingState.REGISTERED, ("A", "H"), "bul")
    assert (one.lifetime, one.lifetime_remaining, one.seq) == (600, 598, 7)
    assert one.observed_at is not None and one.home_registration
    two = b[HOA2]  # waiting for its BA through wlan0: the CoA being registered is wlan0's IPv4 one
    assert (two.coa, two.interface, two.state, two.lifetime_remaining) == (
        "10.0.3.5", "wlan0", BindingState.WAITING_ACK, None)
    assert driver.engine_status["identity"] == "mn1@example.net"
    assert [u["name"] for u in driver.uplinks()] == ["eth0", "wlan0", "wwan0", "usb0"]
    assert driver.raw_bindings()[0]["preference"] == ["eth0", "wlan0"]
    # the JSON shape of `mhctl bindings --json` is Binding.to_json's
    assert one.to_json(one.observed_at)["lifetime_remaining"] == 598


def test_bindings_from_json_edge_cases():
    items = [
        {"hoa": "2001:DB8:1::100", "state": "refused", "coa": None, "interface": None, "pending_interface": "eth0",
         "seq": 3, "lifetime": None, "remaining": None},
        {"hoa": HOA2, "state": "waiting-ack", "coa": "2001:db8:a::5", "interface": "eth0",
         "pending_interface": "wwan0", "pending_coa": "2001:db8:c::9"},
        {"hoa": HOA3, "state": "unbound"},
        {"state": "registered"}, "junk", {"hoa": "x", "state": "sleeping"},
    ]
    out = bindings_from_json(items, peer="2001:DB8:1::1", observed_at=5.0)
    assert [(b.hoa, b.state, b.coa, b.interface, b.peer) for b in out] == [
        (HOA1, BindingState.ERROR, "", "eth0", HA),
        (HOA2, BindingState.WAITING_ACK, "2001:db8:c::9", "wwan0", HA),
    ]


@pytest.mark.asyncio
async def test_changes_are_followed(daemon, driver):
    await connected(driver)
    driver.events.clear()
    moved = daemon.bindings()
    moved[0].update(coa="2001:db8:c::9", interface="wwan0", seq=8)
    moved[1].update(state="registered", coa="10.0.3.5", interface="wlan0", lifetime=600, remaining=600.0,
                    pending_interface=None, nat=True)
    daemon.set_bindings(moved)  # emits Changed("bindings")
    await until(lambda: any(isinstance(e, BindingsChanged) for e in driver.events), "BindingsChanged")
    b = by_hoa(driver)
    assert (b[HOA1].coa, b[HOA1].interface, b[HOA1].seq) == ("2001:db8:c::9", "wwan0", 8)
    assert (b[HOA2].state, b[HOA2].coa) == (BindingState.REGISTERED, "10.0.3.5")
    # an uplinks change re-reads the uplinks only
    daemon._uplinks[3]["coa6"] = "2001:db8:d::1"
    daemon.emit("uplinks", {})
    await until(lambda: driver.uplinks()[3]["coa6"] == "2001:db8:d::1", "the uplinks to be read again")


@pytest.mark.asyncio
async def test_daemon_leaving_and_coming_back(stack, daemon, driver):
    await connected(driver)
    assert driver.generation == 1
    await daemon.service.close()
    await until(lambda: driver.status.state == STATE_ABSENT, "status absent")
    assert driver.bindings() == [] and not driver.capabilities.connected
    assert "not running" in driver.status.error and not driver.status.reachable
    # it comes back (a restart after ConfigureHomeAgent) with other bindings: everything is read again
    again = StandInDaemon()
    again._bindings[0].update(coa="2001:db8:c::9", interface="wwan0")
    daemon.service = await serve(again, stack.address)
    await until(lambda: driver.status.state == STATE_CONNECTED, "connected again")
    assert driver.generation == 2
    assert by_hoa(driver)[HOA1].interface == "wwan0"
    states = [e.status.state for e in driver.events if isinstance(e, StatusChanged)]
    assert states == ["starting", "connected", "absent", "connected"]
    # and its signals are followed, not the old one's
    again._bindings[0]["seq"] = 99
    again.emit("bindings", {})
    await until(lambda: by_hoa(driver)[HOA1].seq == 99, "the new daemon's change")


@pytest.mark.asyncio
async def test_absent_at_start_then_found(stack, driver):
    stack.reset()
    await driver.start()
    await until(lambda: driver.status.state == STATE_ABSENT, "absent")
    d = StandInDaemon()
    service = await serve(d, stack.address)
    try:
        await until(lambda: driver.status.state == STATE_CONNECTED, "connected once the name is owned")
        assert len(driver.bindings()) == 2
        assert await driver.refresh()
    finally:
        await service.close()
    await until(lambda: driver.status.state == STATE_ABSENT, "absent again")
    assert not await driver.refresh()


@pytest.mark.asyncio
async def test_no_bus_means_absent(tmp_path):
    drv = EngineDriver(bus_address=f"unix:path={tmp_path}/no-bus", backoff_initial=0.05, backoff_max=0.1)
    try:
        await drv.start()
        await until(lambda: drv.status.state == STATE_ABSENT, "absent")
        assert "system bus" in drv.status.error
    finally:
        await drv.stop()
    assert drv.status.state == "stopped"


# --------------------------------------------------------------------------- rebind


def view(**extra: LiveInterface) -> LiveView:
    ifs = {"eth0": LiveInterface("eth0", 2, True, ("2001:db8:a::5",)),
           "wlan0": LiveInterface("wlan0", 3, True, ()),
           "lo": LiveInterface("lo", 1, True, ()),
           **extra}
    return LiveView(ifs)


@pytest.mark.asyncio
async def test_plan_and_rebind(stack, daemon, driver):
    await connected(driver)
    plan = await driver.plan_rebind(HOA2, "eth0", view())
    assert plan.allowed, plan.refusal
    assert (plan.hoa, plan.moves, plan.staying, plan.restart_required) == (HOA2, (HOA2,), (HOA1, HOA3), False)
    assert plan.target_coas == ("2001:db8:a::5",)
    assert any("no restart" in n for n in plan.notes)
    stack.allow(ACTION_REBIND)
    result = await driver.rebind(plan)
    assert result.confirmed, result.reason
    assert result.elapsed_ms == ELAPSED_MS  # the daemon's own measure
    assert (result.new_coa, result.coas, result.reason, result.rolled_back) == (
        "2001:db8:a::5", {HOA2: "2001:db8:a::5"}, None, False)
    assert daemon.calls == [("rebind", HOA2, "eth0")]
    # the bindings were read again before rebind() returned
    assert (by_hoa(driver)[HOA2].state, by_hoa(driver)[HOA2].interface) == (BindingState.REGISTERED, "eth0")
    # an IPv4-only uplink (behind NAT44) is a target like any other
    plan = await driver.plan_rebind(HOA1, "wlan0", view())
    assert plan.allowed and plan.target_coas == ("10.0.3.5",)


@pytest.mark.parametrize("hoa,ifname,words", [
    ("nonsense", "eth0", "not an IPv6 address"),
    ("2001:db8:9::1", "eth0", "not one of the engine's home addresses"),
    (HOA1, "eth7", "there is no interface eth7"),
    (HOA1, "lo", "not one of the engine's uplinks"),
    (HOA1, "usb0", "no care-of address the engine can use"),
    (HOA1, "wwan0", "does not answer through wwan0"),
])
@pytest.mark.asyncio
async def test_plan_refusals(daemon, driver, hoa, ifname, words):
    await connected(driver)
    plan = await driver.plan_rebind(hoa, ifname, view(usb0=LiveInterface("usb0", 5, True)))
    assert not plan.allowed and words in plan.refusal, plan.refusal
    result = await driver.rebind(plan)
    assert not result.confirmed and result.reason == plan.refusal
    assert daemon.calls == []


@pytest.mark.asyncio
async def test_plan_refusals_never_tentative_and_absent(daemon, driver):
    await connected(driver)
    raw = daemon.bindings()
    raw[0]["never"] = ["wlan0"]
    daemon.set_bindings(raw)
    await until(lambda: driver.raw_bindings()[0]["never"] == ["wlan0"], "the new preferences")
    plan = await driver.plan_rebind(HOA1, "wlan0", view())
    assert "marked 'never'" in plan.refusal
    # no CoA yet while DAD runs: "not yet", pending (plan_when_ready waits)
    plan = await driver.plan_rebind(HOA1, "usb0", view(usb0=LiveInterface("usb0", 5, True, (), ("2001:db8:e::1",))))
    assert plan.pending and plan.refusal.startswith("not yet")
    await daemon.service.close()
    await until(lambda: driver.status.state == STATE_ABSENT, "absent")
    plan = await driver.plan_rebind(HOA1, "eth0", view())
    assert "not connected" in plan.refusal


@pytest.mark.asyncio
async def test_rebind_not_allowed_by_polkit(stack, daemon, driver):
    await connected(driver)
    plan = await driver.plan_rebind(HOA1, "wlan0", view())
    assert plan.allowed
    result = await driver.rebind(plan)  # polkit (the mock) denies by default
    assert not result.confirmed
    assert result.reason.startswith("not allowed:") and ACTION_REBIND in result.reason
    assert daemon.calls == []


@pytest.mark.asyncio
async def test_set_preferences_through_the_driver(stack, daemon, driver):
    from mhgui.daemons.engine import EngineCallError
    from mhgui.engine.mn_dbus import ACTION_PREFERENCES
    await connected(driver)
    stack.allow(ACTION_PREFERENCES)
    await driver.set_preferences(HOA1, ["wlan0", "eth0"], ["wwan0"], ["usb0"])
    assert driver.raw_bindings()[0]["never"] == ["usb0"]
    with pytest.raises(EngineCallError) as e:
        await driver.set_preferences(HOA1, ["eth0"], [], ["eth0"])
    assert e.value.error_name.endswith(".InvalidArgs") and "never" in str(e.value)


# --------------------------------------------------------------------------- choosing the driver


@pytest.mark.asyncio
async def test_choose_driver(stack, tmp_path):
    stack.reset()
    assert not await engine_present(stack.address)
    assert isinstance(await choose_driver(stack.address), UmipDriver)
    assert await choose_driver(stack.address, vt_port=None) is None
    d = StandInDaemon()
    service = await serve(d, stack.address)
    try:
        assert await engine_present(stack.address)
        drv = await choose_driver(stack.address)
        assert isinstance(drv, EngineDriver) and drv.bus_address == stack.address
        assert isinstance(await choose_driver(stack.address, vt_port=None), EngineDriver)
    finally:
        await service.close()
    # no bus at all: UMIP, at once
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert isinstance(await choose_driver(f"unix:path={tmp_path}/none"), UmipDriver)
    assert loop.time() - t0 < 1.0


@pytest.mark.asyncio
async def test_runtime_counts_ipv4_coas_with_the_engine(daemon, driver):
    rt = Runtime(vt_port=None, use_networkmanager=False, daemon=driver)
    assert rt.daemon is driver
    st = rt.store.state
    st.interfaces = {2: _iface(2, "wlan0")}
    st.addresses = {a.key: a for a in [Address(2, "10.0.3.5", 24, family=socket.AF_INET)]}
    assert rt.analysis().z == 0  # not connected yet: IPv4 addresses are no CoAs
    await connected(driver)
    rt._generation += 1  # (the store would count the driver's status change)
    an = rt.analysis()
    assert (an.x, an.z) == (1, 1)


# --------------------------------------------------------------------------- counting and goals


def _iface(ifindex: int, name: str, kind=InterfaceKind.ETHERNET, up: bool = True) -> Interface:
    return Interface(ifindex, name, kind, admin_up=up, oper_up=up, carrier=up, operstate="up" if up else "down")


def _state() -> NodeState:
    s = NodeState()
    s.interfaces = {i.ifindex: i for i in (_iface(1, "lo", InterfaceKind.LOOPBACK), _iface(2, "eth0"),
                                           _iface(3, "wlan0", InterfaceKind.WIFI), _iface(4, "wwan0"),
                                           _iface(5, "usb0", up=False))}
    v4 = socket.AF_INET
    addrs = [
        Address(1, "127.0.0.1", 8, family=v4, scope=254),
        Address(2, "2001:db8:a::5", 64), Address(2, "198.51.100.7", 24, family=v4),  # dual stack: one path
        Address(3, "10.0.3.5", 24, family=v4),  # behind NAT44
        Address(4, "169.254.3.3", 16, family=v4),  # link-local only
        Address(5, "192.0.2.9", 24, family=v4),  # down
    ]
    s.addresses = {a.key: a for a in addrs}
    s.home_addresses = (HomeAddress(HOA1, 64, HA),)
    return s


def test_counting_ipv4_coas():
    s = _state()
    off = analyse(s, 0.0)
    assert (off.x, off.z) == (1, 1)
    assert {off.roles[a.key].role for a in s.addresses.values() if a.family == socket.AF_INET} == {ROLE_OTHER}
    on = analyse(s, 0.0, ipv4_coas=True)
    assert (on.x, on.z) == (2, 2)  # eth0 (IPv6) and wlan0 (IPv4 behind NAT44)
    role = {a.address: on.roles[a.key] for a in s.addresses.values()}
    assert role["10.0.3.5"].role == ROLE_COA and role["10.0.3.5"].counted and "NAT44" in role["10.0.3.5"].reason
    assert role["198.51.100.7"].role == ROLE_COA and not role["198.51.100.7"].counted
    assert role["169.254.3.3"].role == ROLE_LINK_LOCAL
    assert role["127.0.0.1"].role == ROLE_OTHER
    assert role["192.0.2.9"].role == "unusable"
    # the live view offers the IPv4 CoA for a rebind
    live = LiveView.from_state(s, on)
    assert live.interfaces["wlan0"].coas == ("10.0.3.5",)


def test_engine_goals_are_reachable():
    """(n,n,n): several HoAs, interfaces and CoAs: per-HoA choice makes load sharing, load balancing and
    preference settings reachable, which UMIP cannot (draft 7.1, 7.2); bicasting still needs several
    CoAs per HoA (RFC 5648, draft 6.2.1)."""
    scenario = scenario_for(2, 2, 2, at_home=False)
    umip = DaemonCapabilities(name="umip", connected=True, failover=True)
    engine = {g: (ok, why) for g, ok, why in goals_available(scenario, ENGINE_CAPS)}
    before = {g: ok for g, ok, _ in goals_available(scenario, umip)}
    for goal in (Goal.LOAD_SHARING, Goal.LOAD_BALANCING, Goal.PREFERENCE_SETTINGS):
        assert engine[goal] == (True, "yes: each home address has its own uplink order (draft 7.1, 7.2)")
        assert before[goal] is False
    for goal in (Goal.FAULT_RECOVERY, Goal.UBIQUITOUS_ACCESS):
        assert engine[goal][0] and "re-bound through another" in engine[goal][1]
    assert engine[Goal.BICASTING][0] is False and "several CoAs" in engine[Goal.BICASTING][1]
    # absent engine: nothing
    absent = DaemonCapabilities(name="engine", per_hoa_choice=True, runtime_rebind=True, ipv4_coas=True)
    assert not any(ok for _, ok, _ in goals_available(scenario, absent))


@pytest.mark.parametrize("counts", [(2, 1, 2), (2, 2, 2), (3, 1, 3), (2, 1, 3)])
def test_with_several_coas_every_goal_is_reachable_and_says_how(counts):
    """The engine with multiple_care_of: every goal of the node's case says yes with its mechanism in one
    line, and the draft's issues 6.2.1 and 7.3 show the working mechanism (issue 12.7)."""
    from mhgui.core.taxonomy import ISSUES, issue_mechanism
    mcoa = DaemonCapabilities(name="engine", connected=True, per_hoa_choice=True, runtime_rebind=True,
                              failover=True, ipv4_coas=True, multiple_coas=True, flow_bindings=True)
    scenario = scenario_for(*counts, at_home=False)
    got = goals_available(scenario, mcoa)
    assert got and all(ok for _, ok, _ in got), got
    for goal, _ok, why in got:
        assert why.startswith("yes: ") and "\n" not in why and "has multiple_coas" not in why
    assert dict((g, w) for g, _, w in got).get(Goal.BICASTING, "sent on both").count("sent on both") == 1
    for issue in ISSUES:
        if issue.section in ("6.2.1", "7.3") and issue.applies(scenario.values, False):
            assert issue_mechanism(issue, mcoa).startswith("solved with engine: ")
    single = [i for i in ISSUES if i.section == "6.2.1"][0]
    assert issue_mechanism(single, ENGINE_CAPS) is None  # without several CoAs it stays open


# --------------------------------------------------------------------------- mhctl against the engine


async def _mhctl(stack, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mhgui.cli", *args, "--system-bus", stack.address, "--no-networkmanager",
        cwd=REPO, env=stack.env(PYTHONPATH=str(REPO)), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.asyncio
async def test_mhctl_bindings_and_rebind(stack, daemon):
    rc, out, err = await _mhctl(stack, "bindings", "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert set(data) == {"schema", "daemon", "bindings"} and data["schema"] == 1
    assert data["daemon"] == {"name": "engine", "node": "mn", "reachable": True, "state": "connected", "error": None}
    first = next(b for b in data["bindings"] if b["hoa"] == HOA1)
    assert set(first) == {"hoa", "coa", "peer", "bid", "bid_priority", "lifetime_remaining", "lifetime", "seq",
                          "state", "flags", "interface"}
    assert (first["coa"], first["interface"], first["state"], first["flags"], first["peer"]) == (
        "2001:db8:a::5", "eth0", "registered", ["A", "H"], HA)
    # refused by polkit: exit 1, JSON says why
    rc, out, err = await _mhctl(stack, "rebind", HOA2, "eth0", "--yes", "--json")
    assert rc == 1
    res = json.loads(out)
    assert res["confirmed"] is False and "not allowed" in res["reason"]
    stack.allow(ACTION_REBIND)
    rc, out, err = await _mhctl(stack, "rebind", HOA2, "eth0", "--yes", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert (res["confirmed"], res["elapsed_ms"], res["coa"], res["interface"], res["hoa"]) == (
        True, ELAPSED_MS, "2001:db8:a::5", "eth0", HOA2)
    assert res["restart_required"] is False and res["moves"] == [HOA2] and res["daemon"] == "engine"
    assert "confirmed in 12 ms" in err and "no restart" in err  # the words for humans go to stderr with --json
    rc, out, err = await _mhctl(stack, "rebind", HOA1, "wlan0", "--yes")
    assert rc == 0, err
    assert f"confirmed in 12 ms: {HOA1} is bound to 10.0.3.5 on wlan0 (no restart)" in out
    # a refused plan: exit 1
    rc, out, err = await _mhctl(stack, "rebind", HOA1, "usb0", "--yes", "--json")
    assert rc == 1 and json.loads(out)["confirmed"] is False
    assert "no care-of address" in err
    assert daemon.calls == [("rebind", HOA2, "eth0"), ("rebind", HOA1, "wlan0")]


@pytest.mark.asyncio
async def test_runtime_takes_the_engines_home_addresses(daemon, driver):
    """With the engine, the model's HoAs are the engine's (origin "engine"), beside the configured ones."""
    from mhgui.core.model import HomeAddress
    from mhgui.sources.config import LoadedConfig
    rt = Runtime(vt_port=None, use_networkmanager=False, daemon=driver)
    rt.config = LoadedConfig(home_addresses=(HomeAddress("2001:db8:99::5", 64, "2001:db8:99::1"),))
    driver.subscribe(rt._on_daemon)
    rt._apply_home_addresses()
    assert [h.address for h in rt.store.state.home_addresses] == ["2001:db8:99::5"]
    await connected(driver)
    await until(lambda: len(rt.store.state.home_addresses) == 1 + len(daemon.bindings()), "the engine's HoAs")
    engine = [h for h in rt.store.state.home_addresses if h.origin == "engine"]
    assert {h.address for h in engine} == {b["hoa"] for b in daemon.bindings()}
    assert all(h.network.prefixlen == 64 for h in engine)
    await driver.stop()
    await until(lambda: [h.address for h in rt.store.state.home_addresses] == ["2001:db8:99::5"], "engine HoAs gone")


def test_without_the_helper_the_engine_still_rebinds():
    from mhgui.core.access import HELPER, problems
    sources = {HELPER: ("absent", "nobody owns it")}
    (p,) = problems(sources, _state())
    assert set(p.affects) == {"rebind", "steering"}
    (p,) = problems(sources, _state(), engine=True)
    assert p.affects == ("steering",) and "engine rebinds" in p.message


@pytest.mark.asyncio
async def test_stop_right_after_a_rebind_ends_everything_at_once(stack, daemon):
    """The reading task ends before the bus closes: no 2 s wait, no task left reading a closed bus."""
    import time as _time
    stack.allow(ACTION_REBIND)
    for i in range(12):
        drv = EngineDriver(bus_address=stack.address, backoff_initial=0.05, backoff_max=0.2)
        await connected(drv)
        plan = await drv.plan_rebind(HOA2, "eth0" if i % 2 else "wlan0", view())
        assert (await drv.rebind(plan)).confirmed
        daemon.emit("bindings", {"event": "registered", "hoa": HOA2})  # a read is on its way as we stop
        for _ in range(i):
            await asyncio.sleep(0)
        t0 = _time.monotonic()
        await drv.stop()
        assert _time.monotonic() - t0 < 1.0
        left = [t for t in asyncio.all_tasks() if t.get_name() in ("engine-reads", "engine-dbus") and not t.done()]
        assert left == []


@pytest.mark.asyncio
async def test_the_failover_log_takes_the_engines_moves_with_their_reasons_and_times(stack, daemon, driver):
    """The engine says why and when it moved: a user's rebind is logged as such (not announced as a
    failover), a failover on the probes' verdict with its BU and acknowledgement times."""
    import time as _time
    from mhgui.core.analysis import analyse
    from mhgui.core.failover import Preferences
    from mhgui.core.state import StateStore
    from mhgui.failover_service import FailoverDone, FailoverService
    store = StateStore()
    svc = FailoverService(store, _time.monotonic, lambda: analyse(store.state, _time.monotonic()),
                          Preferences(order=("eth0", "wlan0")), daemon=driver)
    events: list = []
    svc.subscribe(events.append)
    svc.start()
    try:
        await connected(driver)
        t = _time.monotonic()
        daemon.emit("bindings", {"event": "registered", "hoa": HOA1, "uplink": "wlan0", "from": "eth0",
                                 "coa": "10.0.3.5", "lifetime": 600, "nat": True, "reason": "rebind requested",
                                 "first_bu_at": t, "bu_sent_at": t, "ack_at": t + 0.002, "moved": True})
        daemon.emit("bindings", {"event": "registered", "hoa": HOA1, "uplink": "eth0", "from": "wlan0",
                                 "coa": "2001:db8:a::5", "lifetime": 600, "nat": False,
                                 "reason": "home agent unreachable", "first_bu_at": t + 1, "bu_sent_at": t + 1,
                                 "ack_at": t + 1.003, "moved": True})
        daemon.emit("bindings", {"event": "registered", "hoa": HOA1, "uplink": "eth0", "moved": False,
                                 "reason": "refresh"})
        await until(lambda: len(svc.log.entries) >= 2, "two moves logged")
        await asyncio.sleep(0.1)
        user, fail = svc.log.entries[-2:]
        assert len(svc.log.entries) == 2  # the refresh is no move
        assert (user.who, user.reason, user.from_interface, user.to_interface) == ("user", "user rebind", "eth0", "wlan0")
        assert fail.reason == "probes: home agent unreachable" and fail.hoas == (HOA1,)
        assert fail.ack_time - fail.trigger_time == pytest.approx(0.003, abs=1e-6)
        done = [e for e in events if isinstance(e, FailoverDone)]
        assert [d.entry.reason for d in done] == ["probes: home agent unreachable"]
    finally:
        await svc.stop()
