"""The node's one answer (mhgui.core.headline): many states, pure (issue 15.1, 15.3, 15.7)."""

from __future__ import annotations

from dataclasses import dataclass

from mhgui.core.analysis import analyse
from mhgui.core.bindings import Binding, BindingState, uplinks_in_use
from mhgui.core.headline import (
    ACTION_CONFIGURE, ACTION_PREFERENCES, ACTION_REBIND, ACTION_RESTART_DAEMON, ACTION_TRY_LAB, node_headline,
)
from mhgui.core.model import Address, AddressFlag, HomeAddress, Interface, InterfaceKind, NodeState

HOA = "2001:db8:1::100"
HOA2 = "2001:db8:2::100"
HA = "2001:db8:1::1"


@dataclass(frozen=True)
class Status:  # the shape of mhgui.daemons.base.DaemonStatus
    name: str
    reachable: bool = True
    state: str = "connected"
    error: str | None = None
    node: str | None = "mn"


ENGINE = Status("engine")
UMIP = Status("umip")


def iface(i, name, kind=InterfaceKind.ETHERNET, up=True):
    return Interface(i, name, kind, up, up, up, "up" if up else "down")


def state(links, addrs, routers=(), hoas=()):
    return NodeState(interfaces={i.ifindex: i for i in links}, addresses={a.key: a for a in addrs},
                     routers={i: frozenset({f"fe80::{i}"}) for i in routers},
                     home_addresses=tuple(HomeAddress(h, 64, HA if h == HOA else "2001:db8:2::1", None)
                                          for h in hoas))


def normal_machine():
    """Ethernet up, a private IPv4 address, a ULA and a link-local, a router, no home address."""
    lo = Interface(1, "lo", InterfaceKind.LOOPBACK, True, True, True, "unknown")
    return state([lo, iface(2, "eth0")],
                 [Address(1, "127.0.0.1", 8, family=2, scope=254), Address(1, "::1", 128, scope=254),
                  Address(2, "192.168.1.23", 24, family=2), Address(2, "fd00:1:2::23", 64),
                  Address(2, "fe80::23", 64, scope=253)], routers=(2,))


def mobile(hoas=(HOA,), up=("eth0", "wlan0")):
    links = [iface(2, "eth0", up="eth0" in up), iface(3, "wlan0", InterfaceKind.WIFI, up="wlan0" in up),
             iface(9, "mhmn0", InterfaceKind.TUNNEL)]
    addrs = [Address(2, "2001:db8:a1::2", 64), Address(3, "2001:db8:b1::3", 64), Address(2, "10.0.3.5", 24, family=2)]
    addrs += [Address(9, h, 128) for h in hoas]
    return state(links, addrs, routers=(2, 3), hoas=hoas)


def reg(hoa, coa, st=BindingState.REGISTERED, bid=None):
    return Binding(hoa, coa, HA, bid=bid, state=st, flags=("A", "H"))


def probe(name, ifindex, reachable=True, srtt=23.4, loss=0.0):
    return {"name": name, "ifindex": ifindex, "reachable": reachable, "srtt_ms": srtt, "rtt_ms": srtt, "loss": loss}


def head(st, **kw):
    return node_headline(st, analyse(st, 0.0, ipv4_coas=kw.pop("ipv4", False)), **kw)


def test_the_normal_machine_is_online_not_offline():
    st = normal_machine()
    an = analyse(st, 0.0)
    assert (an.x, an.y, an.z) == (0, 0, 0)  # the taxonomy counts no CoA here...
    h = node_headline(st, an, engine_available=True)
    # ... but the node is online, and says what it is not yet
    assert h.level == "info" and not h.mobile and h.interface == "eth0"
    assert h.text == ("Online via eth0 (IPv4 192.168.1.23, IPv6 fd00:1:2::23) — not a Mobile IPv6 node yet "
                      "(no home address)")
    assert "Offline" not in h.text
    assert h.action.id == ACTION_CONFIGURE and h.action.label == "Connect to a home agent…"
    # without mhgui's engine to configure, the lab is the way to try it
    assert head(st).action.id == ACTION_TRY_LAB


def test_several_links_and_an_ipv6_only_one():
    st = normal_machine()
    st.interfaces[3] = iface(3, "wlan0", InterfaceKind.WIFI)
    st.addresses[Address(3, "2001:db8:77::5", 64).key] = Address(3, "2001:db8:77::5", 64)
    assert head(st).text.startswith("Online via eth0 (IPv4 192.168.1.23, IPv6 fd00:1:2::23) and 1 other interface")
    del st.interfaces[2]
    assert head(st).text.startswith("Online via wlan0 (IPv6 2001:db8:77::5) — ")


def test_offline_machine_and_tentative_addresses():
    st = normal_machine()
    st.interfaces[2] = iface(2, "eth0", up=False)
    h = head(st)
    assert h.level == "error" and h.text.startswith("Offline:") and h.action.id == ACTION_TRY_LAB
    # an address still in DAD, and link-local only, do not make a node online
    st = state([iface(2, "eth0")], [Address(2, "2001:db8:5::1", 64, flags=AddressFlag.TENTATIVE),
                                    Address(2, "fe80::1", 64, scope=253)])
    assert head(st).text.startswith("Offline:")


def test_engine_connected_with_probes():
    st = mobile()
    b = (reg(HOA, "2001:db8:a1::2"),)
    ups = [probe("eth0", 2), probe("wlan0", 3, srtt=40)]
    h = head(st, bindings=b, uplinks=ups, daemon=ENGINE, ipv4=True)
    assert h.level == "ok" and h.interface == "eth0" and h.action is None and h.mobile
    assert h.text == "Connected via eth0 (CoA 2001:db8:a1::2), home agent reachable, 23 ms"
    # the same uplink as the binding table's answer
    assert uplinks_in_use(b, st)[HOA].interface == h.interface


def test_loss_is_a_warning_and_unprobed_too():
    st = mobile()
    b = (reg(HOA, "2001:db8:a1::2"),)
    h = head(st, bindings=b, uplinks=[probe("eth0", 2, loss=0.25)], daemon=ENGINE)
    # (the engine's loss is over its last probes: said so, not as the path's loss now, n1.2)
    assert h.level == "warning" and h.text.endswith("home agent reachable, 23 ms, 25 % of the last probes lost")
    h = head(st, bindings=b, uplinks=[probe("eth0", 2, reachable=None, srtt=None)], daemon=ENGINE)
    assert h.level == "warning" and h.text.endswith("the home agent is not probed yet")


def test_home_agent_unreachable_offers_the_uplink_that_answers():
    st = mobile()
    b = (reg(HOA, "2001:db8:a1::2"),)
    ups = [probe("eth0", 2, reachable=False, srtt=None), probe("wlan0", 3, srtt=31)]
    h = head(st, bindings=b, uplinks=ups, daemon=ENGINE, engine_available=True)
    assert h.level == "error"
    assert h.text == "Connected via eth0 (CoA 2001:db8:a1::2), the home agent does not answer through it"
    assert h.action.id == ACTION_REBIND and h.action.args == (HOA, "wlan0") and h.action.label == "Move to wlan0"
    # unreachable through every uplink: the home agent's settings are the suspect
    ups = [probe("eth0", 2, reachable=False), probe("wlan0", 3, reachable=False)]
    h = head(st, bindings=b, uplinks=ups, daemon=ENGINE, engine_available=True)
    assert h.level == "error" and h.text.endswith("the home agent does not answer through any uplink")
    assert h.action.id == ACTION_CONFIGURE


def test_ipv4_only_uplink_with_the_engine():
    links = [iface(4, "wwan0", InterfaceKind.WWAN), iface(9, "mhmn0", InterfaceKind.TUNNEL)]
    st = state(links, [Address(4, "10.0.3.5", 24, family=2), Address(9, HOA, 128)], hoas=(HOA,))
    b = (reg(HOA, "10.0.3.5"),)
    h = head(st, bindings=b, uplinks=[probe("wwan0", 4, srtt=61.6)], daemon=ENGINE, ipv4=True)
    assert h.level == "ok" and h.text == "Connected via wwan0 (IPv4 CoA 10.0.3.5), home agent reachable, 62 ms"
    # with UMIP (IPv6 care-of addresses only) the same uplink gives nothing, and the words say why
    h = head(st, daemon=UMIP)
    assert h.level == "error" and "wwan0 has IPv4 only" in h.text and "mip6d" in h.text


def test_umip_has_no_probes_but_a_registration():
    st = mobile()
    h = head(st, bindings=(reg(HOA, "2001:db8:b1::3"),), daemon=UMIP)
    assert h.level == "ok" and h.text == "Connected via wlan0 (CoA 2001:db8:b1::3), registered with the home agent"


def test_waiting_and_refused_and_not_bound():
    st = mobile()
    h = head(st, bindings=(reg(HOA, "2001:db8:a1::2", BindingState.WAITING_ACK),), daemon=ENGINE, uplinks=[])
    assert h.level == "warning" and h.text == ("Registering through eth0 (CoA 2001:db8:a1::2): waiting for the "
                                               "home agent")
    h = head(st, bindings=(reg(HOA, "2001:db8:a1::2", BindingState.ERROR),), daemon=ENGINE, uplinks=[])
    assert h.level == "error" and h.text == f"The home agent refused {HOA}" and h.action.id == ACTION_CONFIGURE
    h = head(st, daemon=UMIP)
    assert h.level == "warning" and h.text == f"{HOA} is not bound yet: mip6d has not registered it"
    assert h.action.id == ACTION_PREFERENCES


def test_no_care_of_address():
    st = mobile(up=())
    h = head(st, daemon=ENGINE, uplinks=[])
    assert h.level == "error" and h.text.startswith("No care-of address: no interface has a usable address")


def test_daemon_lost_and_no_daemon_offer_a_restart():
    st = mobile()
    # there but mute (its terminal, its bus name answer nothing): lost, restarted
    lost = Status("engine", reachable=False, state="error", error="the mobility engine did not answer GetStatus")
    h = head(st, daemon=lost, daemon_configured=True)
    assert h.level == "error" and h.action.id == ACTION_RESTART_DAEMON
    assert h.action.label == "Restart the mobility daemon"
    assert h.text == ("Mobility daemon lost: the mobility engine does not answer; the home addresses are not "
                      "kept alive")
    assert h.detail == "the mobility engine did not answer GetStatus"  # the daemon's own words: the tooltip
    # gone (nobody owns its name): not running, started — as `mhctl status` says it (n1.8)
    gone = Status("engine", reachable=False, state="absent", error="the mobility engine is not running")
    h = head(st, daemon=gone, daemon_configured=True)
    assert h.action.label == "Start the mobility daemon" and h.text.startswith("Mobility daemon not running")
    assert h.detail == "it answered earlier, then stopped: the mobility engine is not running"
    h = head(st, daemon=None, daemon_configured=True)
    assert h.level == "error" and h.action.id == ACTION_RESTART_DAEMON and h.text.startswith("No mobility daemon")
    h = head(st, daemon=Status("umip", reachable=False, state="starting"))
    assert h.level == "info" and h.text == "Connecting to mip6d…" and h.action is None
    # a driver not started yet (the app starting up) has lost nothing
    assert head(st, daemon=Status("engine", reachable=False, state="stopped")).action is None


def test_the_engine_lost_is_not_a_machine_without_home_address():
    """With the engine, the home addresses come from it: once it is gone the model has none, yet the node is a
    mobile node that lost its daemon (seen in the lab: it said "not a Mobile IPv6 node yet")."""
    st = mobile(hoas=())
    lost = Status("engine", reachable=False, state="absent", error="nobody owns its name")
    h = head(st, daemon=lost)
    assert h.level == "error" and h.text.startswith("Mobility daemon not running: the mobility engine does not run")
    assert h.action.id == ACTION_RESTART_DAEMON
    # UMIP absent on a machine without home address: nothing is lost, it is a normal machine
    h = head(normal_machine(), daemon=Status("umip", reachable=False, state="absent", error="nothing on 7777"))
    assert h.text.startswith("Online via eth0")


def test_at_home_needs_no_daemon():
    st = state([iface(2, "eth0")], [Address(2, "2001:db8:1::100", 64)], routers=(2,), hoas=(HOA,))
    h = head(st, daemon=None, daemon_configured=True)
    assert h.level == "ok" and h.text.startswith("At home on eth0") and h.interface == "eth0"


def test_several_home_addresses():
    st = mobile(hoas=(HOA, HOA2))
    b = (reg(HOA, "2001:db8:a1::2"), reg(HOA2, "2001:db8:b1::3"))
    h = head(st, bindings=b, uplinks=[probe("eth0", 2), probe("wlan0", 3)], daemon=ENGINE)
    assert h.text == ("Connected via eth0 (CoA 2001:db8:a1::2), home agent reachable, 23 ms; "
                      "1 more home address via wlan0")
    h = head(st, bindings=b[:1], uplinks=[probe("eth0", 2)], daemon=ENGINE)
    assert h.level == "warning" and h.text.endswith(f"; {HOA2} is not bound") and h.action.id == ACTION_PREFERENCES


def test_several_cares_of_one_hoa_agree_with_the_binding_table():
    """RFC 5648: the lowest BID-PRI acknowledged registration is the HoA's default path, everywhere."""
    st = mobile()
    b = (Binding(HOA, "2001:db8:b1::3", HA, bid=2, bid_priority=1, state=BindingState.REGISTERED, flags=("A", "H")),
         Binding(HOA, "2001:db8:a1::2", HA, bid=1, bid_priority=5, state=BindingState.REGISTERED, flags=("A", "H")))
    h = head(st, bindings=b, uplinks=[probe("eth0", 2), probe("wlan0", 3, srtt=9)], daemon=ENGINE)
    assert h.interface == uplinks_in_use(b, st)[HOA].interface == "wlan0"
    assert h.text.endswith("home agent reachable, 9 ms")


def test_sources():
    st = NodeState()
    assert node_headline(st, analyse(st, 0.0), sources={"netlink": ("resyncing", "")}).text == \
        "Reading the network state…"
    h = node_headline(st, analyse(st, 0.0), sources={"netlink": ("no-access", "only a namespace's loopback")})
    assert h.level == "error" and "only a namespace's loopback" in h.text


def test_hostile_probe_values_do_not_crash():
    st = mobile()
    b = (reg(HOA, "2001:db8:a1::2"),)
    for ups in ([{"name": "eth0", "ifindex": 2, "reachable": True, "srtt_ms": "fast", "loss": None}],
                ["junk", None, {"ifindex": "2"}], [{"name": "eth0", "ifindex": 2, "reachable": True,
                                                   "srtt_ms": float("nan"), "loss": -1}]):
        h = head(st, bindings=b, uplinks=ups, daemon=ENGINE)
        assert h.text.startswith("Connected via eth0"), ups


def test_the_tray_says_the_same():
    from mhgui.core.trayview import build_tray_view
    st = normal_machine()
    an = analyse(st, 0.0)
    h = node_headline(st, an, engine_available=True)
    v = build_tray_view(st, an, answer=h)
    assert v.state == "ok" and v.tooltip.splitlines()[0] == f"mhgui — {h.text}" and v.action == h.action
    # the engine lost (its home addresses gone with it): the tray's icon is "no daemon", and it offers the restart
    st = mobile(hoas=())
    an = analyse(st, 0.0)
    h = node_headline(st, an, daemon=Status("engine", reachable=False, state="absent"))
    v = build_tray_view(st, an, answer=h)
    assert v.state == "no-daemon" and v.action.id == ACTION_RESTART_DAEMON
    assert v.tooltip.startswith("mhgui — Mobility daemon not running")
