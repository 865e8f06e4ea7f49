"""Counting rules (mhgui.core.analysis) over every flag combination."""

from __future__ import annotations

import itertools

import pytest

from mhgui.core.analysis import analyse
from mhgui.core.model import Address, AddressFlag as F, HomeAddress, Interface, InterfaceKind as K, NodeState

NOW = 1000.0
HOA = HomeAddress("2001:db8:100::10", 64, "2001:db8:100::1", home_link="eth9")


def iface(ifindex=2, kind=K.ETHERNET, up=True, carrier=True, name=None):
    return Interface(ifindex, name or f"if{ifindex}", kind, admin_up=up, oper_up=up and carrier,
                     carrier=carrier, operstate="up" if up and carrier else "down")


def state(ifaces, addrs, hoas=(), bound=frozenset()):
    s = NodeState()
    s.interfaces = {i.ifindex: i for i in ifaces}
    s.addresses = {a.key: a for a in addrs}
    s.home_addresses = tuple(hoas)
    s.bound_coas = frozenset(bound)
    return s


ADDRS = {
    "global": "2001:db8:a::5",
    "link-local": "fe80::5",
    "ula": "fd00:a::5",
    "home-prefix": "2001:db8:100::77",
}
FLAGS = [F.TENTATIVE, F.DEPRECATED, F.TEMPORARY, F.DADFAILED]
KINDS = [K.ETHERNET, K.WIFI, K.WWAN, K.TUNNEL, K.LOOPBACK, K.VIRTUAL]
NOT_ACCESS = (K.TUNNEL, K.LOOPBACK, K.VIRTUAL)


def expected_coa(where, flags, kind, up, valid_ok, allow_ula, bound):
    """The issue's rule, restated independently of the implementation."""
    scope_ok = where == "global" or (where == "ula" and allow_ula)
    on_home = where == "home-prefix"
    deprecated = bool(flags & F.DEPRECATED)
    clean = not (flags & (F.TENTATIVE | F.DADFAILED | F.TEMPORARY))
    iface_ok = up and kind not in NOT_ACCESS
    return scope_ok and not on_home and clean and iface_ok and valid_ok and (not deprecated or bound)


COMBOS = list(itertools.product(
    ADDRS, range(16), KINDS, [True, False], [True, False], [False, True], [False, True]))


@pytest.mark.parametrize("where,fbits,kind,up,valid_ok,allow_ula,bound", COMBOS)
def test_usable_coa_rule(where, fbits, kind, up, valid_ok, allow_ula, bound):
    flags = F(0)
    for i, f in enumerate(FLAGS):
        if fbits & (1 << i):
            flags |= f
    addr = Address(2, ADDRS[where], 64, flags=flags,
                   preferred_until=None if not flags & F.DEPRECATED else NOW - 1,
                   valid_until=NOW + 100 if valid_ok else NOW - 1)
    st = state([iface(2, kind, up=up)], [addr], hoas=[HOA], bound={addr.address} if bound else ())
    an = analyse(st, NOW, allow_ula=allow_ula)
    want = expected_coa(where, flags, kind, up, valid_ok, allow_ula, bound)
    role = an.roles[addr.key]
    assert role.counted == want, (role, flags)
    assert an.z == (1 if want else 0)
    assert (2 in an.active) == (want or (where == "home-prefix" and up and kind not in NOT_ACCESS
                                         and valid_ok and not flags & (F.TENTATIVE | F.DADFAILED)))
    if want and flags & F.DEPRECATED:
        assert role.role == "coa-deprecated"
    if flags & F.TEMPORARY and not (flags & (F.TENTATIVE | F.DADFAILED)) and where == "global" \
            and kind not in NOT_ACCESS:
        assert role.role == "temporary"


def test_preferred_lifetime_over_means_deprecated_even_without_flag():
    a = Address(2, "2001:db8:a::5", 64, preferred_until=NOW - 0.5, valid_until=NOW + 50)
    an = analyse(state([iface()], [a]), NOW)
    assert an.roles[a.key].role == "unusable" and an.z == 0
    an = analyse(state([iface()], [a]), NOW - 1)
    assert an.roles[a.key].role == "coa" and an.z == 1


def test_z_counts_interface_prefix_pairs():
    addrs = [
        Address(2, "2001:db8:a::5", 64), Address(2, "2001:db8:a::6", 64),       # one /64: one CoA
        Address(2, "2001:db8:b::5", 64),                                          # 2nd prefix on the link
        Address(3, "2001:db8:c::5", 64),
        Address(3, "2001:db8:c::99", 64, flags=F.TEMPORARY),                     # privacy address: listed only
    ]
    an = analyse(state([iface(2), iface(3)], addrs), NOW)
    assert (an.x, an.y, an.z) == (2, 0, 3)
    assert an.roles[addrs[4].key].role == "temporary"


def test_figure1_counts_two_interfaces_two_hoas_three_coas():
    """Draft Figure 1: IF1 with Link1+Link2 (CoA1, CoA2), IF2 with Link3 (CoA3); HoA1, HoA2 → (2,2,3)."""
    hoas = [HomeAddress("2001:db8:100::1", 64, "2001:db8:100::ff"),
            HomeAddress("2001:db8:200::1", 64, "2001:db8:200::ff")]
    addrs = [Address(2, "2001:db8:1::1", 64), Address(2, "2001:db8:2::1", 64), Address(3, "2001:db8:3::1", 64)]
    an = analyse(state([iface(2), iface(3)], addrs, hoas), NOW)
    assert (an.x, an.y, an.z) == (2, 2, 3)
    assert not an.at_home


def test_home_link_is_active_but_holds_no_coa_and_makes_hoa_at_home():
    hoas = [HOA]
    addrs = [Address(2, "2001:db8:100::10", 64), Address(2, "2001:db8:77::1", 64), Address(3, "2001:db8:a::1", 64)]
    an = analyse(state([iface(2), iface(3)], addrs, hoas), NOW)
    assert an.roles[addrs[0].key].role == "hoa"
    assert an.roles[addrs[1].key].role == "home-link"   # a second prefix on the home link is not a CoA
    assert (an.x, an.y, an.z) == (2, 1, 1)
    assert an.at_home and an.homes[0].home_ifindex == 2


def test_hoa_on_tunnel_is_away_and_tunnel_never_counts():
    tun = iface(7, K.TUNNEL, name="ip6tnl1")
    addrs = [Address(7, "2001:db8:100::10", 64, flags=F.HOMEADDRESS), Address(2, "2001:db8:a::1", 64)]
    an = analyse(state([tun, iface(2)], addrs, [HOA]), NOW)
    assert an.roles[addrs[0].key].role == "hoa"
    assert not an.at_home
    assert (an.x, an.y, an.z) == (1, 1, 1)


def test_loopback_and_down_interfaces_never_count():
    lo = iface(1, K.LOOPBACK, name="lo")
    addrs = [Address(1, "::1", 128), Address(2, "2001:db8:a::1", 64)]
    an = analyse(state([lo, iface(2, up=False)], addrs), NOW)
    assert (an.x, an.z) == (0, 0)
    an = analyse(state([lo, iface(2, carrier=False)], addrs), NOW)
    assert (an.x, an.z) == (0, 0)


def test_ipv4_is_listed_never_a_coa():
    a = Address(2, "192.0.2.5", 24, family=2)
    an = analyse(state([iface()], [a]), NOW)
    assert an.roles[a.key].role == "other" and an.z == 0


def test_dhcpv6_128_beside_its_slaac_64_is_one_coa():
    addrs = [Address(2, "2001:db8:7::abcd", 64), Address(2, "2001:db8:7::5", 128)]
    an = analyse(state([iface()], addrs), NOW)
    assert an.z == 1
    # alone, a /128 counts as its /64; two /128 in one /64 are one CoA
    addrs = [Address(2, "2001:db8:7::5", 128), Address(2, "2001:db8:7::6", 128), Address(2, "2001:db8:8::6", 128)]
    assert analyse(state([iface()], addrs), NOW).z == 2


def test_hoa_with_the_kernel_home_flag_on_its_home_link_is_at_home():
    a = Address(2, "2001:db8:100::10", 64, flags=F.HOMEADDRESS)
    an = analyse(state([iface()], [a], [HOA]), NOW)
    assert an.at_home and (an.x, an.y, an.z) == (1, 1, 0)


def test_dormant_link_is_not_up():
    i = Interface(2, "wl0", K.WIFI, admin_up=True, oper_up=False, carrier=True, operstate="dormant")
    an = analyse(state([i], [Address(2, "2001:db8:a::1", 64)]), NOW)
    assert (an.x, an.z) == (0, 0)


def test_a_hoa_that_failed_dad_is_unusable():
    a = Address(2, "2001:db8:100::10", 64, flags=F.DADFAILED | F.TENTATIVE)
    an = analyse(state([iface()], [a], [HOA]), NOW)
    assert an.roles[a.key].role == "unusable" and not an.at_home


def test_a_networkmanager_vpn_without_an_interface_is_a_vpn_not_a_care_of_address():
    """Issue 13.5: an IPsec VPN (NetworkManager, no interface of its own) puts its address on eth0."""
    coa = Address(2, "2001:db8:a::5", 64)
    inner = Address(2, "2001:db8:f::7", 64)  # the VPN's address, on the Ethernet interface
    inner4 = Address(2, "172.16.9.7", 32, family=2)
    st = state([iface(2)], [coa, inner, inner4])
    st.vpn_addresses = {inner.address: "Office", inner4.address: "Office"}
    for ipv4_coas in (False, True):
        an = analyse(st, NOW, ipv4_coas=ipv4_coas)
        assert (an.x, an.z) == (1, 1)
        assert an.roles[coa.key].role == "coa"
        for a in (inner, inner4):
            assert an.roles[a.key].role == "vpn" and not an.roles[a.key].counted
            assert "Office" in an.roles[a.key].reason


def test_a_vpn_into_the_home_prefix_does_not_put_the_node_at_home():
    inner = Address(2, "2001:db8:100::77", 64)  # a VPN into the home network hands out a home-prefix address
    coa = Address(2, "2001:db8:a::5", 64)
    st = state([iface(2)], [inner, coa], hoas=[HOA])
    st.vpn_addresses = {inner.address: "Home"}
    an = analyse(st, NOW)
    assert not an.at_home and an.home_links == frozenset()
    assert an.roles[coa.key].role == "coa" and (an.x, an.y, an.z) == (1, 1, 1)


def test_bridges_and_other_virtual_links_are_not_access_links():
    """Issue 13.5: by the link's type (netlink IFLA_INFO_KIND, NetworkManager DeviceType), not its name."""
    eth = iface(2, name="br-lan")  # an Ethernet NIC, whatever its name
    br = iface(5, K.VIRTUAL, name="eth1")  # a bridge, whatever its name
    addrs = [Address(2, "2001:db8:a::5", 64), Address(5, "2001:db8:b::5", 64), Address(5, "2001:db8:100::10", 64)]
    an = analyse(state([eth, br], addrs, hoas=[HOA]), NOW)
    assert (an.x, an.z) == (1, 1) and an.active == {2}
    assert not an.at_home  # a home prefix on a bridge is no home link
    assert an.roles[addrs[1].key].role == "other" and "virtual link" in an.roles[addrs[1].key].reason


def test_every_role_has_a_style_in_the_window():
    from mhgui.core.analysis import ROLES
    from mhgui.ui.models import ROLE_STYLE
    assert set(ROLES) == set(ROLE_STYLE)
