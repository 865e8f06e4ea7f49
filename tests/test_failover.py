"""Failover policy (mhgui.core.failover), driven by real StateStore changes and a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from mhgui.core.analysis import analyse
from mhgui.core.bindings import Binding, BindingState
from mhgui.core.failover import (
    FailoverLog, FailoverPolicy, NoUsableInterface, Preferences, StayPending, SteeringFallback, SwitchTo,
    mnifpreference_values, usable_interfaces,
)
from mhgui.core.model import Address, AddressFlag as F, AddressKey, HomeAddress, Interface, InterfaceKind as K
from mhgui.core.state import (
    AddressRemoved, AddressUpsert, HomeAddressesSet, LinkRemoved, LinkUpsert, NetlinkSnapshot, NmDevice,
    RoutersSnapshot, StateStore,
)

IFACES = {"eth0": (2, K.ETHERNET), "wlan0": (3, K.WIFI), "wwan0": (4, K.WWAN)}
COA = {"eth0": "2001:db8:a::2", "wlan0": "2001:db8:b::3", "wwan0": "2001:db8:c::4"}
ROUTER = "fe80::1"


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def link(name: str, up: bool = True) -> LinkUpsert:
    ifindex, kind = IFACES[name]
    return LinkUpsert(Interface(ifindex, name, kind, admin_up=True, oper_up=up, carrier=up,
                                operstate="up" if up else "down"))


def addr(name: str, text: str | None = None, prefixlen: int = 64, flags: F = F(0), **kw) -> AddressUpsert:
    return AddressUpsert(Address(IFACES[name][0], text or COA[name], prefixlen, flags=flags, **kw))


def key(name: str, text: str | None = None, prefixlen: int = 64) -> AddressKey:
    return AddressKey(IFACES[name][0], text or COA[name], prefixlen)


def routers(*names: str) -> RoutersSnapshot:
    return RoutersSnapshot(tuple((IFACES[n][0], ROUTER) for n in names))


class Lab:
    """A StateStore, a fake clock and a policy; every event is one batch, as the sources send them."""

    def __init__(self, prefs: Preferences, names=("eth0", "wlan0", "wwan0"), start: bool = True) -> None:
        self.clock = Clock()
        self.store = StateStore()
        self.policy = FailoverPolicy(prefs, self.clock)
        self.initial = []
        #: the SteeringFallback actions, kept apart from the node's switches that most tests look at
        self.fallbacks: list[SteeringFallback] = []
        if start:  # a full netlink dump, as at start-up
            self.initial = self.feed(NetlinkSnapshot(
                tuple(link(n).iface for n in names), tuple(addr(n).address for n in names),
                tuple((IFACES[n][0], ROUTER) for n in names)))

    def analysis(self):
        return analyse(self.store.state, self.clock())

    def feed(self, *events) -> list:
        out = []
        for ev in events:
            changes = self.store.apply(ev)
            out += self._split(self.policy.observe(changes, self.store.state, self.analysis()))
        return out

    def _split(self, actions) -> list:
        self.fallbacks += [a for a in actions if isinstance(a, SteeringFallback)]
        return [a for a in actions if not isinstance(a, SteeringFallback)]

    def at(self, t: float, *events) -> list:
        self.clock.t = t
        return self.feed(*events)

    def tick(self, t: float | None = None) -> list:
        if t is not None:
            self.clock.t = t
        return self._split(self.policy.tick(self.store.state, self.analysis()))


def switches(actions) -> list[SwitchTo]:
    return [a for a in actions if isinstance(a, SwitchTo)]


PREFS = Preferences(["eth0", "wlan0", "wwan0"], holdup=5.0, churn_window=2.0)


# --------------------------------------------------------------------------- preferences
def test_mnifpreference_values_order_backup_never():
    p = Preferences(["eth0", "wwan0", "wlan0", "usb0"], backup={"eth0"}, never={"usb0"})
    assert mnifpreference_values(p) == {"eth0": 3, "wwan0": 1, "wlan0": 2, "usb0": 0}
    assert mnifpreference_values(Preferences(["a", "b"])) == {"a": 1, "b": 2}
    assert mnifpreference_values(Preferences(["a", "b"], never={"a", "b"})) == {"a": 0, "b": 0}


def test_mnifpreference_values_clamped_at_ten():
    names = [f"eth{i}" for i in range(12)]
    v = mnifpreference_values(Preferences(names))
    assert [v[n] for n in names] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10]
    # with backups the primaries stop at 9 so that every backup is after every primary
    v = mnifpreference_values(Preferences(names, backup={"eth0", "eth1"}))
    assert [v[n] for n in names[2:]] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 9]
    assert v["eth0"] == v["eth1"] == 10
    v = mnifpreference_values(Preferences(names[:4], backup={"eth0", "eth1"}))
    assert v == {"eth2": 1, "eth3": 2, "eth0": 3, "eth1": 4}


@pytest.mark.parametrize("kw,msg", [
    (dict(order=["eth0", "eth0"]), "twice"),
    (dict(order=["eth0"], backup={"wlan0"}), "not in the list"),
    (dict(order=["eth0"], never={"wlan0"}), "not in the list"),
    (dict(order=["eth0"], backup={"eth0"}, never={"eth0"}), "both"),
    (dict(order=["eth 0"]), "not an interface name"),
    (dict(order=["a" * 16]), "not an interface name"),
    (dict(order=["é" * 8]), "not an interface name"),  # 16 bytes: over IFNAMSIZ - 1
    (dict(order=['eth"0']), "not an interface name"),  # cannot be quoted in mip6d.conf
    (dict(order=["eth#0"]), "not an interface name"),
    (dict(order="eth0"), "not a string"),
    (dict(order=["eth0"], holdup=-1), "holdup"),
    (dict(order=["eth0"], churn_window=float("nan")), "churn_window"),
    (dict(order=["eth0"], holdup=True), "holdup"),
])
def test_preferences_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        Preferences(**kw)


def test_preferences_ranking_primaries_then_backups():
    p = Preferences(["wwan0", "eth0", "usb0", "wlan0"], backup={"wwan0"}, never={"usb0"})
    assert p.ranking == ("eth0", "wlan0", "wwan0")
    assert p.order == ("wwan0", "eth0", "usb0", "wlan0")


# --------------------------------------------------------------------------- usable interfaces
def test_usable_interfaces_rules():
    lab = Lab(PREFS)
    assert usable_interfaces(lab.store.state, lab.analysis()) == {"eth0", "wlan0", "wwan0"}
    lab.feed(routers("eth0", "wlan0"))  # wwan0 lost its default router
    assert usable_interfaces(lab.store.state, lab.analysis()) == {"eth0", "wlan0"}
    assert usable_interfaces(lab.store.state, lab.analysis(), require_router=False) == {"eth0", "wlan0", "wwan0"}
    # a home link is not usable for failover
    lab.feed(HomeAddressesSet((HomeAddress("2001:db8:b::100", 64, "2001:db8:b::1"),)))
    assert usable_interfaces(lab.store.state, lab.analysis()) == {"eth0"}


# --------------------------------------------------------------------------- policy
def test_initial_choice_is_the_preferred_interface():
    lab = Lab(PREFS)
    assert switches(lab.initial) == [SwitchTo("eth0", None, "initial", 1000.0, 1000.0)]
    assert lab.policy.current == "eth0"


def test_link_loss_switches_at_once():
    lab = Lab(PREFS)
    acts = lab.at(1010.0, link("eth0", up=False))
    assert acts == [SwitchTo("wlan0", "eth0", "link-down", 1010.0, 1010.0)]
    # the next loss goes on down the list
    assert lab.at(1011.0, LinkRemoved(IFACES["wlan0"][0])) == [
        SwitchTo("wwan0", "wlan0", "link-removed", 1011.0, 1011.0)]


def test_preferred_link_back_waits_for_holdup():
    lab = Lab(PREFS)
    lab.at(1010.0, link("eth0", up=False))
    acts = lab.at(1020.0, link("eth0", up=True))
    assert acts == [StayPending("eth0", "wlan0", 1025.0)]
    assert lab.policy.next_deadline == 1025.0
    assert lab.tick(1024.9) == []
    assert lab.policy.current == "wlan0"
    assert lab.tick(lab.policy.next_deadline) == [SwitchTo("eth0", "wlan0", "preferred-back", 1020.0, 1025.0)]
    assert lab.policy.pending is None and lab.tick(1030.0) == []


def test_flapping_link_one_switch_away_one_back():
    lab = Lab(PREFS)
    t = 1010.0
    acts = lab.at(t, link("eth0", up=False))
    for _ in range(10):  # up for 2 s, down for 1 s: never stable for the 5 s hold-up
        t += 1.0
        acts += lab.at(t, link("eth0", up=True))
        t += 2.0
        acts += lab.tick(t)
        acts += lab.at(t, link("eth0", up=False))
    assert switches(acts) == [SwitchTo("wlan0", "eth0", "link-down", 1010.0, 1010.0)]
    assert lab.policy.current == "wlan0"
    t += 1.0
    acts = lab.at(t, link("eth0", up=True))
    acts += lab.tick(t + 4.0)
    acts += lab.tick(t + 5.0)
    assert switches(acts) == [SwitchTo("eth0", "wlan0", "preferred-back", t, t + 5.0)]


def test_link_bouncing_inside_one_batch_restarts_holdup():
    lab = Lab(PREFS)
    lab.at(1010.0, link("eth0", up=False))
    lab.at(1011.0, link("eth0", up=True))
    # down and up again delivered together (e.g. after a re-dump): the wait starts again
    lab.clock.t = 1015.0
    changes = lab.store.apply(link("eth0", up=False)) + lab.store.apply(link("eth0", up=True))
    acts = lab.policy.observe(changes, lab.store.state, lab.analysis())
    assert acts == [StayPending("eth0", "wlan0", 1020.0)]
    assert lab.tick(1016.0) == []


def test_dhcpv6_renewal_triggers_nothing():
    lab = Lab(PREFS, names=("wlan0", "wwan0"), start=False)
    dhcp = "2001:db8:a::d"
    init = lab.feed(link("eth0"), addr("eth0", dhcp, 128), link("wlan0"), addr("wlan0"),
                    routers("eth0", "wlan0"))
    assert switches(init)[-1].interface == "eth0"
    acts = lab.at(1010.0, AddressRemoved(key("eth0", dhcp, 128)))
    assert lab.policy.next_deadline == 1012.0
    acts += lab.at(1011.5, addr("eth0", dhcp, 128))
    acts += lab.tick(1012.0) + lab.tick(1030.0)
    assert acts == []
    assert lab.policy.current == "eth0"


def test_removed_address_not_back_within_window_is_a_trigger():
    lab = Lab(PREFS)
    assert lab.at(1010.0, AddressRemoved(key("eth0"))) == []
    assert lab.tick(1011.9) == []
    assert lab.tick(lab.policy.next_deadline) == [SwitchTo("wlan0", "eth0", "coa-removed", 1010.0, 1012.0)]


def test_address_removed_with_link_down_is_not_churn():
    lab = Lab(PREFS)
    acts = lab.at(1010.0, link("eth0", up=False), AddressRemoved(key("eth0")))
    assert switches(acts) == [SwitchTo("wlan0", "eth0", "link-down", 1010.0, 1010.0)]


def test_temporary_address_rotation_triggers_nothing():
    lab = Lab(PREFS)
    old, new = "2001:db8:a::aaaa", "2001:db8:a::bbbb"
    acts = lab.at(1001.0, addr("eth0", old, flags=F.TEMPORARY))
    acts += lab.at(1100.0, addr("eth0", new, flags=F.TEMPORARY | F.TENTATIVE))
    acts += lab.at(1101.0, addr("eth0", new, flags=F.TEMPORARY))
    acts += lab.at(1102.0, addr("eth0", old, flags=F.TEMPORARY | F.DEPRECATED))
    acts += lab.at(1200.0, AddressRemoved(key("eth0", old)))
    acts += lab.tick(1210.0)
    assert acts == []
    assert lab.policy.current == "eth0"


def test_temporary_address_rotation_keeps_a_holdup_running():
    lab = Lab(PREFS)
    old, new = "2001:db8:a::aaaa", "2001:db8:a::bbbb"
    lab.at(1001.0, addr("eth0", old, flags=F.TEMPORARY))
    lab.at(1010.0, link("eth0", up=False))
    assert lab.at(1020.0, link("eth0")) == [StayPending("eth0", "wlan0", 1025.0)]
    acts = lab.at(1021.0, addr("eth0", new, flags=F.TEMPORARY | F.TENTATIVE))
    acts += lab.at(1022.0, addr("eth0", new, flags=F.TEMPORARY))
    acts += lab.at(1023.0, AddressRemoved(key("eth0", old)))
    assert acts == [] and lab.policy.pending == ("eth0", 1025.0)
    assert lab.tick(1025.0) == [SwitchTo("eth0", "wlan0", "preferred-back", 1020.0, 1025.0)]


def test_address_churn_on_a_waiting_interface_keeps_its_holdup():
    lab = Lab(PREFS)
    lab.at(1010.0, link("eth0", up=False))
    assert lab.at(1020.0, link("eth0")) == [StayPending("eth0", "wlan0", 1025.0)]
    acts = lab.at(1022.5, AddressRemoved(key("eth0")))  # DHCPv6 renewal
    acts += lab.at(1023.0, addr("eth0"))
    assert acts == [] and lab.policy.pending == ("eth0", 1025.0)
    assert lab.tick(1025.0) == [SwitchTo("eth0", "wlan0", "preferred-back", 1020.0, 1025.0)]


def test_a_loss_during_churn_chooses_an_interface_usable_for_real():
    lab = Lab(PREFS)
    lab.at(1000.0, link("eth0", up=False))
    lab.at(1001.0, link("eth0"))  # hold-up until 1006
    lab.at(1002.0, AddressRemoved(key("eth0")))  # eth0's CoA removed: kept only by the churn grace
    acts = lab.at(1002.5, link("wlan0", up=False))
    assert switches(acts) == [SwitchTo("wwan0", "wlan0", "link-down", 1002.5, 1002.5)]
    assert lab.policy.fallback == {"eth0": "wwan0", "wlan0": "wwan0"}
    assert switches(lab.tick(1004.0)) == []  # no second switch when eth0's grace ends


def test_deprecated_coa_is_a_trigger_at_once():
    lab = Lab(PREFS)
    assert lab.at(1010.0, addr("eth0", flags=F.DEPRECATED)) == [
        SwitchTo("wlan0", "eth0", "coa-lost", 1010.0, 1010.0)]


def test_expired_coa_is_a_trigger_at_the_deadline():
    lab = Lab(PREFS)
    lab.at(1001.0, addr("eth0", preferred_until=1050.0, valid_until=1100.0))
    assert lab.policy.next_deadline == 1050.0
    assert lab.tick(1049.0) == []
    assert lab.tick(1050.0) == [SwitchTo("wlan0", "eth0", "coa-lost", 1050.0, 1050.0)]


def test_router_gone_is_a_trigger():
    lab = Lab(PREFS)
    assert lab.at(1010.0, routers("wlan0", "wwan0")) == [SwitchTo("wlan0", "eth0", "router-gone", 1010.0, 1010.0)]


def test_networkmanager_is_a_second_opinion():
    lab = Lab(PREFS)
    dev = NmDevice("/dev/2", 2, "eth0", K.ETHERNET, state=100, managed=True)
    assert lab.at(1005.0, dev) == []
    # netlink first (the fast path), NetworkManager confirms ~6 s later: one switch only
    assert switches(lab.at(1010.0, link("eth0", up=False))) == [
        SwitchTo("wlan0", "eth0", "link-down", 1010.0, 1010.0)]
    assert lab.at(1016.0, NmDevice("/dev/2", 2, "eth0", K.ETHERNET, state=20, managed=True)) == []
    # NetworkManager alone saying the device is failing or deactivating takes it away
    lab2 = Lab(PREFS)
    assert lab2.at(1010.0, NmDevice("/dev/2", 2, "eth0", K.ETHERNET, state=110, managed=True)) == [
        SwitchTo("wlan0", "eth0", "networkmanager", 1010.0, 1010.0)]
    # "disconnected" is NetworkManager's bookkeeping (a link configured by hand): the kernel decides
    lab3 = Lab(PREFS)
    assert lab3.at(1010.0, NmDevice("/dev/2", 2, "eth0", K.ETHERNET, state=30, managed=True)) == []
    assert lab3.policy.current == "eth0"


def test_dad_pending_then_failed_is_never_chosen():
    lab = Lab(PREFS, names=("eth0",))
    lab.at(1001.0, link("wlan0"), addr("wlan0", flags=F.TENTATIVE), routers("eth0", "wlan0"))
    acts = lab.at(1010.0, link("eth0", up=False))
    assert acts == [NoUsableInterface("eth0", "link-down", 1010.0)]
    assert lab.at(1011.0, addr("wlan0", flags=F.DADFAILED)) == []
    assert lab.tick(1100.0) == []
    # another address whose DAD finishes is used, at once (anything beats nothing)
    assert lab.at(1101.0, addr("wlan0", "2001:db8:b::99", flags=F.TENTATIVE)) == []
    assert lab.at(1102.0, addr("wlan0", "2001:db8:b::99")) == [SwitchTo("wlan0", None, "recovered", 1102.0, 1102.0)]


def test_tentative_address_on_a_better_interface_does_not_start_holdup():
    lab = Lab(PREFS, names=("wlan0",))
    acts = lab.at(1001.0, link("eth0"), addr("eth0", flags=F.TENTATIVE), routers("eth0", "wlan0"))
    assert acts == [] and lab.policy.pending is None
    assert lab.at(1003.0, addr("eth0")) == [StayPending("eth0", "wlan0", 1008.0)]


def test_all_links_lost():
    lab = Lab(PREFS)
    acts = lab.at(1010.0, link("eth0", up=False), link("wlan0", up=False), link("wwan0", up=False))
    assert [type(a) for a in acts] == [SwitchTo, SwitchTo, NoUsableInterface]
    assert acts[-1] == NoUsableInterface("wwan0", "link-down", 1010.0)
    assert lab.policy.current is None
    assert lab.tick(1020.0) == []  # said once
    assert lab.at(1030.0, link("wlan0")) == [SwitchTo("wlan0", None, "recovered", 1030.0, 1030.0)]
    assert [e.to_interface for e in lab.policy.log.entries] == ["wlan0", "wwan0", None, "wlan0"]


def test_backup_only_used_when_no_primary_is_usable():
    prefs = Preferences(["wwan0", "eth0", "wlan0"], backup={"wwan0"}, holdup=3.0)
    lab = Lab(prefs)
    assert switches(lab.initial)[-1].interface == "eth0"
    assert switches(lab.at(1010.0, link("eth0", up=False)))[0].interface == "wlan0"
    assert lab.at(1011.0, link("wlan0", up=False)) == [SwitchTo("wwan0", "wlan0", "link-down", 1011.0, 1011.0)]
    assert lab.at(1012.0, link("wlan0")) == [StayPending("wlan0", "wwan0", 1015.0)]
    assert lab.tick(1015.0) == [SwitchTo("wlan0", "wwan0", "preferred-back", 1012.0, 1015.0)]


def test_never_marked_interface_is_never_used():
    lab = Lab(Preferences(["eth0", "wlan0", "wwan0"], never={"wlan0"}))
    assert lab.at(1010.0, link("eth0", up=False)) == [SwitchTo("wwan0", "eth0", "link-down", 1010.0, 1010.0)]
    assert lab.at(1011.0, link("wwan0", up=False)) == [NoUsableInterface("wwan0", "link-down", 1011.0)]
    assert lab.tick(1100.0) == []


def test_unlisted_interface_is_never_used():
    lab = Lab(Preferences(["eth0"]), names=("eth0", "wlan0"))
    assert lab.at(1010.0, link("eth0", up=False)) == [NoUsableInterface("eth0", "link-down", 1010.0)]


def test_new_preferences_marking_current_never_switch_at_once():
    lab = Lab(PREFS)
    lab.policy.set_preferences(Preferences(["eth0", "wlan0", "wwan0"], never={"eth0"}))
    # timed from the user's request (the clock when they were set), decided at the next look
    assert lab.tick(1005.0) == [SwitchTo("wlan0", "eth0", "preferences", 1000.0, 1005.0)]
    e = lab.policy.log.entries[-1]
    assert (e.who, e.by, e.trigger_time, e.decision_time) == ("user", "user", 1000.0, 1005.0)
    # an order the app derives again (interfaces came or went) is not the user's doing
    lab.policy.set_preferences(Preferences(["wwan0", "eth0", "wlan0"]), by_user=False)
    assert lab.tick(1006.0) == [SwitchTo("wwan0", "wlan0", "preferences", 1005.0, 1006.0)]
    assert (lab.policy.log.entries[-1].who, lab.policy.log.entries[-1].by) == ("app", "mhgui")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0.1, 8.0)), min_size=1, max_size=30))
def test_never_back_before_holdup(steps):
    """Whatever eth0 does, with a timer calling tick() at every deadline: going back to it happens exactly when
    it has been up for the 5 s hold-up, and every switch back follows one switch away (no storm)."""
    lab = Lab(PREFS)
    t, up_since, away, back = 1000.0, 1000.0, 0, 0

    def count(acts):
        nonlocal away, back
        for a in switches(acts):
            if a.interface == "eth0":
                back += 1
                assert lab.clock.t == up_since + 5.0 and a.trigger_time == up_since
            else:
                away += 1
        assert back <= away <= back + 1

    for up, dt in steps:
        t += dt
        while lab.policy.next_deadline is not None and lab.policy.next_deadline <= t:
            count(lab.tick(lab.policy.next_deadline))
        was_up = lab.store.state.interfaces[2].up
        if up and not was_up:
            up_since = t
        count(lab.at(t, link("eth0", up=up)))
        if lab.policy.pending:
            assert lab.policy.pending == ("eth0", up_since + 5.0)
    assert lab.policy.current == ("eth0" if back == away else "wlan0")


# --------------------------------------------------------------------------- steering fallback
def test_steering_rules_fall_back_at_once_and_return_after_holdup():
    lab = Lab(PREFS)
    assert lab.fallbacks == []  # everything usable at start: every rule on its own interface
    lab.at(1010.0, link("eth0", up=False))
    assert lab.fallbacks == [SteeringFallback((("eth0", "wlan0"),), 1010.0)]
    lab.at(1012.0, link("eth0"))
    assert lab.policy.next_deadline == 1017.0
    assert lab.tick(1016.9) == [] and len(lab.fallbacks) == 1
    lab.tick(1017.0)
    assert lab.fallbacks[-1] == SteeringFallback((), 1017.0)
    assert lab.policy.fallback == {}


def test_steering_fallback_of_a_lower_interface_follows_its_own_holdup():
    lab = Lab(PREFS)
    # wlan0 is not the node's current interface, yet its rules still fall back to eth0 and wait to return
    lab.at(1010.0, link("wlan0", up=False))
    assert lab.fallbacks[-1].as_dict() == {"wlan0": "eth0"}
    lab.at(1011.0, link("wlan0"))
    assert lab.policy.next_deadline == 1016.0 and lab.tick(1015.0) == []
    lab.tick(1016.0)
    assert lab.fallbacks[-1].as_dict() == {}


def test_steering_fallback_follows_the_current_interface_and_flapping_moves_once():
    lab = Lab(PREFS)
    lab.at(1010.0, link("eth0", up=False))
    lab.at(1011.0, link("wlan0", up=False))
    assert lab.fallbacks[-1].as_dict() == {"eth0": "wwan0", "wlan0": "wwan0"}
    n = len(lab.fallbacks)
    t = 1011.0
    for _ in range(5):  # eth0 flaps: up 2 s, down 1 s, never stable for the hold-up
        t += 1.0
        lab.at(t, link("eth0"))
        t += 2.0
        lab.tick(t)
        lab.at(t, link("eth0", up=False))
    assert len(lab.fallbacks) == n  # the map never changed
    lab.at(t + 1, link("eth0"))
    lab.tick(t + 6)
    assert lab.fallbacks[-1].as_dict() == {"wlan0": "eth0"}


def test_failed_over_while_on_a_worse_interface_than_one_lost():
    lab = Lab(PREFS)
    assert not lab.policy.failed_over()
    lab.at(1010.0, link("wlan0", up=False))  # a worse interface lost: still on the first choice
    assert not lab.policy.failed_over()
    lab.at(1011.0, link("eth0", up=False))
    assert lab.policy.current == "wwan0" and lab.policy.failed_over()
    lab.at(1012.0, link("eth0"))
    assert lab.policy.failed_over()  # waiting for the hold-up
    lab.tick(1017.0)
    assert lab.policy.current == "eth0" and not lab.policy.failed_over()
    # never usable since start (a cable never plugged in) is not a failover
    lab2 = Lab(PREFS, names=("eth0", "wlan0"), start=False)
    lab2.feed(NetlinkSnapshot((link("eth0", up=False).iface, link("wlan0").iface),
                              (addr("wlan0").address,), ((IFACES["wlan0"][0], ROUTER),)))
    assert lab2.policy.current == "wlan0" and not lab2.policy.failed_over()


def test_steering_fallback_empty_when_nothing_is_usable():
    lab = Lab(PREFS)
    lab.at(1010.0, link("eth0", up=False), link("wlan0", up=False), link("wwan0", up=False))
    assert lab.fallbacks[-1].as_dict() == {}  # no substitute: the rules wait for their interfaces
    lab.at(1020.0, link("wwan0"))
    assert lab.fallbacks[-1].as_dict() == {"eth0": "wwan0", "wlan0": "wwan0"}


def test_steering_fallback_for_an_interface_down_at_start():
    lab = Lab(PREFS, names=("eth0", "wlan0"), start=False)
    lab.feed(NetlinkSnapshot((link("eth0").iface, link("wlan0", up=False).iface),
                             (addr("eth0").address,), ((IFACES["eth0"][0], ROUTER),)))
    assert lab.fallbacks == [SteeringFallback((("wlan0", "eth0"),), 1000.0)]


# --------------------------------------------------------------------------- log
def bul(hoa: str, coa: str, interface: str, state=BindingState.REGISTERED) -> Binding:
    return Binding(hoa, coa, peer="2001:db8:100::1", flags=("A", "H"), state=state, interface=interface)


HOA1, HOA2 = "2001:db8:100::10", "2001:db8:100::20"


def test_log_fills_in_app_failover_timings():
    lab = Lab(PREFS)
    log = lab.policy.log
    assert log.observe_bindings([bul(HOA1, COA["eth0"], "eth0")], 1005.0) == []  # baseline
    lab.at(1010.0, link("eth0", up=False))
    entry = log.entries[-1]
    assert (entry.who, entry.from_interface, entry.to_interface, entry.reason) == ("app", "eth0", "wlan0", "link-down")
    assert log.observe_bindings([bul(HOA1, COA["eth0"], "eth0")], 1010.2) == []
    assert log.observe_bindings([bul(HOA1, COA["wlan0"], "wlan0", BindingState.WAITING_ACK)], 1010.5) == [entry]
    assert entry.bu_time == 1010.5 and entry.ack_time is None
    log.observe_bindings([bul(HOA1, COA["wlan0"], "wlan0")], 1011.25)
    assert entry.ack_time == 1011.25
    j = log.to_json()[-1]
    assert j["after_trigger"] == {"decision": 0.0, "bu": 0.5, "ack": 1.25}
    assert (j["who"], j["from"], j["to"], j["hoas"]) == ("app", "eth0", "wlan0", [HOA1])
    assert log.entries == [entry]  # no daemon entry for a move the app made; the first choice is no failover


def test_log_records_daemon_move_and_waits_for_every_hoa():
    log = FailoverLog()
    log.observe_bindings([bul(HOA1, COA["eth0"], "eth0"), bul(HOA2, COA["eth0"], "eth0")], 100.0)
    log.note_trigger("eth0", "link-down", 100.5)
    changed = log.observe_bindings([bul(HOA1, COA["wlan0"], "wlan0"),
                                    bul(HOA2, COA["wlan0"], "wlan0", BindingState.WAITING_ACK)], 101.0)
    assert len(changed) == 1 and log.entries == changed
    e = changed[0]
    assert (e.who, e.from_interface, e.to_interface, e.reason) == ("daemon", "eth0", "wlan0", "link-down")
    assert (e.trigger_time, e.decision_time, e.bu_time, e.ack_time) == (100.5, 101.0, 101.0, None)
    assert e.hoas == (HOA1, HOA2)
    log.observe_bindings([bul(HOA1, COA["wlan0"], "wlan0"), bul(HOA2, COA["wlan0"], "wlan0")], 102.0)
    assert e.ack_time == 102.0
    assert log.to_json()[0]["after_trigger"] == {"decision": 0.5, "bu": 0.5, "ack": 1.5}


def test_log_ignores_non_home_and_correspondent_bindings():
    log = FailoverLog()
    cn = Binding(HOA1, COA["eth0"], peer="2001:db8:9::9", flags=("A",), interface="eth0")
    log.observe_bindings([bul(HOA1, COA["eth0"], "eth0"), cn], 1.0)
    assert log.observe_bindings([bul(HOA1, COA["eth0"], "eth0"), Binding(
        HOA1, COA["wlan0"], peer="2001:db8:9::9", flags=("A",), interface="wlan0")], 2.0) == []
    assert log.entries == []


def test_log_joins_a_daemon_move_seen_before_the_link_event():
    log = FailoverLog()
    log.observe_bindings([bul(HOA1, COA["eth0"], "eth0")], 10.0)
    [d] = log.observe_bindings([bul(HOA1, COA["wlan0"], "wlan0")], 10.5)  # the poll came first
    assert (d.who, d.trigger_time, d.ack_time) == ("daemon", None, 10.5)
    e = log.record("app", "eth0", "wlan0", "link-down", 10.56, 10.56)
    assert e is d and len(log.entries) == 1
    assert (e.trigger_time, e.reason) == (10.56, "link-down")
    assert e.to_json()["after_trigger"]["ack"] == -0.06
    # not the same move, or too late: separate entries
    assert log.record("app", "eth0", "wwan0", "link-down", 10.6, 10.6) is not d
    assert log.record("app", "eth0", "wlan0", "link-down", 13.0, 13.0) is not d


def test_log_limit_and_who():
    log = FailoverLog(limit=3)
    for i in range(5):
        log.record("app", "eth0", "wlan0", "link-down", float(i), float(i))
    assert [e.id for e in log.entries] == [3, 4, 5]
    with pytest.raises(ValueError):
        log.record("someone", None, None, "x", None, 0.0)


def test_an_ipv4_only_uplink_needs_no_ipv6_router_with_an_engine_that_takes_ipv4_coas():
    """RFC 5555: with the engine, an uplink with only an IPv4 CoA is usable without an IPv6 default router;
    an IPv6 CoA still needs its router (require_router)."""
    import socket
    from mhgui.core.failover import usable_interfaces
    from mhgui.core.model import NodeState
    st = NodeState()
    for idx, name in ((2, "up0"), (3, "up1")):
        st.interfaces[idx] = Interface(idx, name, K.ETHERNET, admin_up=True, oper_up=True, carrier=True,
                                       operstate="up")
    for a in (Address(2, "2001:db8:a1::2", 64), Address(3, "192.0.2.2", 24, family=socket.AF_INET)):
        st.addresses[a.key] = a
    with_engine = analyse(st, 0.0, ipv4_coas=True)
    assert usable_interfaces(st, with_engine, require_router=True) == {"up1"}  # up0: no IPv6 router
    st.routers[2] = frozenset({"fe80::1"})
    assert usable_interfaces(st, with_engine, require_router=True) == {"up0", "up1"}
    assert usable_interfaces(st, analyse(st, 0.0), require_router=True) == {"up0"}  # UMIP: no IPv4 CoAs


# --------------------------------------------------------------------------- who did it (issue 13.10)
HOA_A, HOA_B = "2001:db8:1::100", "2001:db8:2::100"


def home_bul(hoa: str, coa: str, iface: str | None, state=BindingState.REGISTERED) -> Binding:
    return Binding(hoa, coa, "2001:db8:1::1", state=state, flags=("A", "H"), interface=iface)


@settings(max_examples=200, deadline=None)
@given(hoas=st.sampled_from([(HOA_A,), (HOA_A, HOA_B)]), restart_polls=st.integers(0, 3),
       waiting_polls=st.integers(0, 2), steps=st.lists(st.floats(0.01, 2.0), min_size=8, max_size=8),
       policy_follows=st.booleans())
def test_the_users_rebind_is_the_users_with_its_times(hoas, restart_polls, waiting_polls, steps, policy_follows):
    """The user rebinds through wlan0 (UMIP: every HoA moves, mip6d restarts, so the list may be empty for a
    few polls, then show the new CoA waiting for its acknowledgement): one entry, by the user, timed from the
    request to the acknowledgement of every HoA moved; never a "daemon" entry for it, whatever the polls saw."""
    log = FailoverLog()
    t = 100.0
    log.observe_bindings([home_bul(h, COA["eth0"], "eth0") for h in hoas], t)  # the baseline
    t += steps[0]
    e = log.user_action("user rebind", "wlan0", hoas, t, from_interface="eth0")
    for i in range(restart_polls):
        t += steps[1 + i]
        log.observe_bindings([], t)  # mip6d restarting
    for i in range(waiting_polls):
        t += steps[4 + i]
        log.observe_bindings([home_bul(h, COA["wlan0"], "wlan0", BindingState.WAITING_ACK) for h in hoas], t)
    if policy_follows:  # the app's own order follows the user's (the shell saves it): the same entry
        assert log.record("user", "eth0", "wlan0", "preferences", t, t) is e
    t += steps[7]
    log.observe_bindings([home_bul(h, COA["wlan0"], "wlan0") for h in hoas], t)
    assert [x for x in log.entries if x.to_interface == "wlan0"] == [e]
    assert (e.who, e.by, e.reason, e.from_interface, set(e.hoas)) == ("user", "user", "user rebind", "eth0", set(hoas))
    assert e.trigger_time <= e.decision_time <= e.bu_time <= e.ack_time == t
    assert e.to_json()["by"] == "user"


@settings(max_examples=100, deadline=None)
@given(reason=st.sampled_from(["rebind requested", "preferences changed", "home agent unreachable",
                               "link or address change"]),
       asked=st.booleans(), dt=st.lists(st.floats(0.0, 3.0), min_size=3, max_size=3))
def test_the_engines_moves_name_their_actor(reason, asked, dt):
    """The engine says why it moved: the user's rebind or preferences are the user's (timed from the request
    when the app saw it), its own verdicts are the daemon's."""
    log = FailoverLog()
    t_req = 50.0
    asked = asked and reason in ("rebind requested", "preferences changed")
    if asked:
        want = "user rebind" if reason == "rebind requested" else "preferences"
        log.user_action(want, "wlan0", (HOA_A,), t_req)
    first = t_req + dt[0]
    e = log.record_move(HOA_A, "eth0", "wlan0", reason, first, first + dt[1], first + dt[1] + dt[2], first + 5)
    user = reason in ("rebind requested", "preferences changed")
    assert e.who == ("user" if user else "daemon") and e.by == e.who
    assert e.trigger_time == (t_req if asked else first)
    assert e.bu_time == first + dt[1] and e.ack_time == first + dt[1] + dt[2]
    assert len(log.entries) == 1


def test_several_care_of_addresses_of_one_hoa_are_not_a_move():
    """With multiple care-of (RFC 5648) a HoA has one binding per BID: the baseline poll and the next ones
    must not read BID 2 (up1) after BID 1 (up0) as the HoA moving (seen at the app's start in the lab)."""
    from mhgui.core.bindings import Binding, BindingState
    from mhgui.core.failover import FailoverLog

    def bul(coa, iface, bid, pri):
        return Binding(hoa="2001:db8:10::42", coa=coa, bid=bid, bid_priority=pri, flags=("A", "H"),
                       state=BindingState.REGISTERED, interface=iface)

    log = FailoverLog()
    both = [bul("2001:db8:a1::2", "up0", 1, 1), bul("192.0.2.2", "up1", 2, 2)]
    assert log.observe_bindings(both, 10.0) == []
    assert log.observe_bindings(list(reversed(both)), 11.0) == []
    assert log.entries == []
    # the default path changes (BID-PRI swapped): that is a move, up0 -> up1
    swapped = [bul("2001:db8:a1::2", "up0", 1, 2), bul("192.0.2.2", "up1", 2, 1)]
    moved = log.observe_bindings(swapped, 12.0)
    assert [(e.from_interface, e.to_interface) for e in moved] == [("up0", "up1")]
