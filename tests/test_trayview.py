"""The tray's picture of the node (mhgui.core.trayview): state, tooltip, HoAs, Prefer items."""

from __future__ import annotations

import pytest

from mhgui.core.analysis import analyse
from mhgui.core.bindings import Binding, BindingState
from mhgui.core.capabilities import DaemonCapabilities
from mhgui.core.failover import Preferences, mnifpreference_values
from mhgui.core.model import Address, HomeAddress, Interface, InterfaceKind, NodeState
from mhgui.core.steering import SteeringRule, parse_destination
from mhgui.core.trayview import build_tray_view, current_interface, preferring

HOA = "2001:db8:1::100"
HOA2 = "2001:db8:2::100"
UMIP = DaemonCapabilities(name="umip", connected=True)
PREFS = Preferences(order=("eth0", "wlan0", "wwan0"), backup=frozenset({"wwan0"}))


def node(up=("eth0", "wlan0", "wwan0"), routers=("eth0", "wlan0", "wwan0"), home_on=None, hoas=(HOA,)):
    names = {2: ("eth0", InterfaceKind.ETHERNET), 3: ("wlan0", InterfaceKind.WIFI), 4: ("wwan0", InterfaceKind.OTHER)}
    ifs, addrs = {}, []
    for i, (n, kind) in names.items():
        on = n in up
        ifs[i] = Interface(i, n, kind, True, True, on, "up" if on else "down")
        addrs.append(Address(i, f"2001:db8:{i:x}0::10", 64))
    if home_on:
        i = next(k for k, (n, _) in names.items() if n == home_on)
        addrs.append(Address(i, "2001:db8:1::5", 64))
    rts = {i: frozenset({f"fe80::{i}"}) for i, (n, _) in names.items() if n in routers}
    return NodeState(interfaces=ifs, addresses={a.key: a for a in addrs}, routers=rts,
                     home_addresses=tuple(HomeAddress(h, 64, h[:-3] + "1", "eth0") for h in hoas))


def reg(hoa, coa, iface=None, state=BindingState.REGISTERED):
    return Binding(hoa, coa, "2001:db8:1::1", state=state, flags=("A", "H"), interface=iface)


def view(st, **kw):
    kw.setdefault("prefs", PREFS)
    kw.setdefault("caps", UMIP)
    kw.setdefault("daemon_name", "mip6d")
    kw.setdefault("daemon_configured", True)
    kw.setdefault("daemon_reachable", True)
    return build_tray_view(st, analyse(st, 0.0), **kw)


def test_ok_on_first_primary_with_taxonomy_in_tooltip():
    st = node()
    v = view(st, policy_current="eth0", bindings=(reg(HOA, "2001:db8:20::10", "eth0"),))
    assert v.state == "ok"
    assert v.headline == "(n,1,n) — 3 interfaces, 1 home address, 3 care-of addresses — scenario 5.6"
    assert v.tooltip.splitlines() == ["mhgui — all links fine", v.headline, "using eth0", f"{HOA} → eth0"]
    assert [h.text for h in v.hoas] == [f"{HOA} → eth0"]


def test_backup_when_not_on_first_usable_primary_or_on_a_backup():
    st = node()
    assert view(st, policy_current="wlan0").state == "backup"  # eth0 usable, not used (hold-up)
    st = node(up=("wlan0", "wwan0"))
    assert view(st, policy_current="wlan0").state == "ok"  # wlan0 is the best usable primary
    st = node(up=("wwan0",))
    assert view(st, policy_current="wwan0").state == "backup"  # marked backup only
    # without a policy choice, the daemon's home registration tells where the node is
    st = node()
    assert view(st, bindings=(reg(HOA, "2001:db8:30::10"),)).state == "backup"
    assert current_interface(None, (reg(HOA, "2001:db8:30::10"),), st) == "wlan0"


def test_no_coa_and_no_daemon():
    st = node(up=())
    assert view(st).state == "no-coa"
    assert view(st, daemon_reachable=False).state == "no-coa"  # the worse of the two
    st = node()
    v = view(st, policy_current="eth0", daemon_reachable=False, caps=DaemonCapabilities())
    assert v.state == "no-daemon"
    assert v.hoas[0].text == f"{HOA} → not bound (mip6d not reachable)"
    # no daemon configured at all: nothing to be unreachable
    assert view(st, policy_current="eth0", daemon_configured=False, daemon_reachable=False).state == "ok"
    # at home, no CoA is not a problem
    st = node(up=("eth0",), home_on="eth0")
    v = view(st)
    assert v.state == "ok"
    assert v.hoas[0].text == f"{HOA} → at home (eth0)" and v.hoas[0].at_home


def test_prefer_items_say_what_moves_and_restart():
    st = node(hoas=(HOA, HOA2))
    rule = SteeringRule("r1", (parse_destination("2001:db8:99::/64"),), "eth0", 0.0)
    v = view(st, policy_current="eth0", following_rules=(rule,),
             bindings=(reg(HOA, "2001:db8:20::10", "eth0"), reg(HOA2, "2001:db8:20::10", "eth0")))
    texts = {p.interface: p.text for p in v.prefer}
    assert [p.interface for p in v.prefer] == ["eth0", "wlan0", "wwan0"]
    assert texts["eth0"] == "eth0 (in use, first choice)"
    assert texts["wlan0"] == "wlan0 — moves 2 home addresses and 1 steering rule; restarts mip6d"
    wlan = v.prefer[1]
    assert wlan.moves_hoas == (HOA, HOA2) and wlan.moves_rules == ("r1",) and wlan.restarts and wlan.enabled
    assert not v.prefer[0].enabled and v.prefer[0].current


def test_prefer_without_restart_for_runtime_rebind_and_unusable_left_out():
    st = node(up=("eth0", "wlan0"), routers=("eth0",))  # wlan0 has no router: not usable
    caps = DaemonCapabilities(name="other", connected=True, runtime_rebind=True)
    v = view(st, policy_current="eth0", caps=caps, daemon_name="otherd",
             bindings=(reg(HOA, "2001:db8:20::10", "eth0"),))
    assert [p.interface for p in v.prefer] == ["eth0"]
    st = node()
    v = view(st, policy_current="eth0", caps=caps, daemon_name="otherd")
    assert v.prefer[1].text == f"wlan0 — moves {HOA}, no restart" and not v.prefer[1].restarts


def test_no_daemon_prefer_moves_nothing_but_rules():
    st = node()
    rule = SteeringRule("r1", (parse_destination("2001:db8:99::/64"),), "eth0", 0.0)
    v = view(st, policy_current="eth0", daemon_configured=False, daemon_reachable=False,
             caps=DaemonCapabilities(), following_rules=(rule,))
    assert v.prefer[1].text == "wlan0 — moves 1 steering rule"
    assert not v.prefer[1].restarts
    st = node(up=())
    assert view(st).prefer == () and view(st).prefer_note == "no usable interface"


def test_preferring_puts_first_as_primary():
    p = Preferences(order=("eth0", "wlan0", "wwan0"), backup=frozenset({"wwan0"}), never=frozenset({"wlan0"}),
                    holdup=7.0)
    q = preferring(p, "wwan0")
    assert q.order == ("wwan0", "eth0", "wlan0") and q.backup == frozenset() and q.never == {"wlan0"}
    assert q.holdup == 7.0
    assert mnifpreference_values(q) == {"wwan0": 1, "eth0": 2, "wlan0": 0}
    assert preferring(None, "eth0").order == ("eth0",)
    with pytest.raises(ValueError):
        preferring(p, "not an ifname")


def test_the_tray_says_what_the_daemon_uses_not_what_the_policy_chose():
    """One answer to "which uplink is in use" (issue 13.9): the daemon's live registration wins over the failover
    policy's choice; the policy's choice only when the daemon has none."""
    st = node()
    in_use = (reg(HOA, "2001:db8:30::10"),)  # through wlan0
    assert current_interface("eth0", in_use, st) == "wlan0"
    assert current_interface("eth0", (), st) == "eth0"
    v = view(st, bindings=in_use, policy_current="eth0")
    assert v.current == "wlan0"
