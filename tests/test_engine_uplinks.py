"""What the mobile node daemon takes as its uplinks and care-of addresses, from the netlink model."""

from __future__ import annotations

import ipaddress
import socket
import time

from mhgui.core.model import Address, AddressFlag, Interface, InterfaceKind, NodeState
from mhgui.engine.mnd import uplinks_from_state

HOME = [ipaddress.IPv6Network("2001:db8:10::/64")]


def _state(*addrs: Address, kinds: dict[int, InterfaceKind] | None = None, down: set[int] = frozenset()) -> NodeState:
    names = {1: "lo", 2: "eth0", 3: "wlan0", 4: "wwan0", 5: "mhmn0", 6: "tun9"}
    kinds = {1: InterfaceKind.LOOPBACK, 2: InterfaceKind.ETHERNET, 3: InterfaceKind.WIFI, 4: InterfaceKind.WWAN,
             5: InterfaceKind.OTHER, 6: InterfaceKind.TUNNEL, **(kinds or {})}
    st = NodeState()
    for idx, name in names.items():
        up = idx not in down
        st.interfaces[idx] = Interface(idx, name, kinds[idx], admin_up=True, oper_up=up, carrier=up,
                                       operstate="up" if up else "down")
    for a in addrs:
        st.addresses[a.key] = a
    return st


def v6(idx: int, addr: str, flags: AddressFlag = AddressFlag(0), preferred_until: float | None = None) -> Address:
    return Address(idx, addr, 64, socket.AF_INET6, 0, flags, preferred_until)


def v4(idx: int, addr: str, scope: int = 0) -> Address:
    return Address(idx, addr, 24, socket.AF_INET, scope)


def by_name(st: NodeState, **kw) -> dict:
    return {u.name: u for u in uplinks_from_state(st, 5, HOME, **kw)}


def test_access_links_only_and_the_usable_care_of_address_of_each_family():
    st = _state(v6(2, "2001:db8:a1::2"), v4(2, "192.0.2.2"), v6(3, "fe80::1"), v4(3, "198.51.100.7"),
                v6(1, "::1"), v6(5, "2001:db8:10::42"), v6(6, "2001:db8:77::1"))
    up = by_name(st)
    assert set(up) == {"eth0", "wlan0", "wwan0"}  # not lo, not our TUN, not another tunnel
    assert (up["eth0"].coa6, up["eth0"].coa4) == ("2001:db8:a1::2", "192.0.2.2")
    assert (up["wlan0"].coa6, up["wlan0"].coa4) == (None, "198.51.100.7")  # link-local is no CoA


def test_tentative_deprecated_dadfailed_temporary_and_home_addresses_are_no_care_of_address():
    now = time.monotonic()
    for a in (v6(2, "2001:db8:a1::2", AddressFlag.TENTATIVE), v6(2, "2001:db8:a1::3", AddressFlag.DEPRECATED),
              v6(2, "2001:db8:a1::4", AddressFlag.DADFAILED), v6(2, "2001:db8:a1::5", AddressFlag.TEMPORARY),
              v6(2, "2001:db8:a1::6", preferred_until=now - 1), v6(2, "2001:db8:10::99")):
        assert by_name(_state(a))["eth0"].coa6 is None, a
    assert by_name(_state(v6(2, "2001:db8:a1::7", preferred_until=now + 60)))["eth0"].coa6 == "2001:db8:a1::7"


def test_carrier_and_metered():
    up = by_name(_state(v6(2, "2001:db8:a1::2"), down={3}), metered=("eth0",))
    assert up["eth0"].carrier and not up["wlan0"].carrier
    assert up["eth0"].metered and up["wwan0"].metered and not up["wlan0"].metered
