"""The analysis at scale (issue 14): linear whatever the prefix lengths, incremental, same answers.

- Property: :func:`analyse` gives the answer of the old algorithm (``tests/analysis_oracle.py``,
  which scans every address of the interface for each /128) on random address sets where the rules
  did not change (no VPN address, no virtual link).
- Property: an :class:`Analyser` kept across random changes (addresses added, removed, replaced,
  interfaces changed or gone, lifetimes running out, CoAs bound, VPNs, HoAs, settings) always
  answers what a fresh :func:`analyse` of the same state answers.
- Issue 13.5, by type: a virtual link counts as the tunnel did before (never an access link), a VPN's
  addresses as if they were not on the access interface at all.
- Work, counted (no timings): the function calls of one analysis grow linearly with the number of
  /128s on one interface; those of an incremental step after one change do not grow with it.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import analysis_oracle as oracle
from mhgui.core.analysis import Analyser, analyse
from mhgui.core.model import Address, AddressFlag as F, HomeAddress, Interface, InterfaceKind as K, NodeState

NOW = 1000.0
# weighted towards access links that are up with clean global addresses: where roles, z and x are at stake
ORACLE_KINDS = [K.ETHERNET, K.ETHERNET, K.ETHERNET, K.WIFI, K.WIFI, K.WWAN, K.TUNNEL, K.LOOPBACK, K.OTHER]
ALL_KINDS = ORACLE_KINDS + [K.VIRTUAL]
V6_BASES = ["2001:db8:a::", "2001:db8:a::", "2001:db8:a:1::", "2001:db8:a:1::", "2001:db8:b::", "2001:db8:b::",
            "2001:db8:100::", "fd00:1::", "fe80::", "ff02::", "::"]
V6_HOSTS = [1, 2, 3, 0x100, 0x1_0000, 0x1_0000_0000, 0x5_0000_0000_0007]
V6_LENS = [48, 56, 64, 72, 96, 120, 127, 128, 128, 128]
V4_BASES = ["8.8.8.", "10.0.0.", "169.254.1.", "127.0.0.", "224.0.0.", "0.0.0."]
FLAG_BITS = [F.TENTATIVE, F.DEPRECATED, F.TEMPORARY, F.DADFAILED, F.HOMEADDRESS, F.PERMANENT, F.NOPREFIXROUTE]
LIFETIMES = [None, None, None, -5.0, -1.0, 0.0, 0.5, 1.0, 2.5, 10.0, 100.0, 100.0]
HOAS = [HomeAddress("2001:db8:100::10", 64, "2001:db8:100::1"),
        HomeAddress("2001:db8:a::1", 48, "2001:db8:a::ff"),
        HomeAddress("2001:db8:b::2", 64, None, home_prefix="2001:db8:b::/60")]


@st.composite
def interfaces(draw, kinds=ORACLE_KINDS, ifindex=None):
    i = ifindex if ifindex is not None else draw(st.integers(1, 4))
    admin = draw(st.sampled_from([True, True, True, True, False]))
    carrier = draw(st.sampled_from([True, True, True, True, False]))
    operstate = draw(st.sampled_from(["up", "up", "up", "up", "down", "dormant", "unknown"]))
    return Interface(i, f"if{i}", draw(st.sampled_from(kinds)), admin_up=admin, oper_up=operstate == "up",
                     carrier=carrier, operstate=operstate)


@st.composite
def addresses(draw, now=NOW):
    ifindex = draw(st.sampled_from([1, 2, 2, 3, 5]))
    if draw(st.integers(0, 5)) == 0:
        text = draw(st.sampled_from(V4_BASES)) + str(draw(st.integers(0, 3)))
        prefixlen = draw(st.sampled_from([8, 24, 32]))
        family, scope = 2, draw(st.sampled_from([0, 0, 253, 254]))
    else:
        base = int(ipaddress.IPv6Address(draw(st.sampled_from(V6_BASES))))
        text = str(ipaddress.IPv6Address(base + draw(st.sampled_from(V6_HOSTS))))
        prefixlen = draw(st.sampled_from(V6_LENS))
        family, scope = 10, 0
    flags = F(0)
    if draw(st.booleans()):  # half of them clean: usable CoAs are what z counts
        for f in draw(st.sets(st.sampled_from(FLAG_BITS), max_size=3)):
            flags |= f
    pref = draw(st.sampled_from(LIFETIMES))
    valid = draw(st.sampled_from(LIFETIMES))
    return Address(ifindex, text, prefixlen, family=family, scope=scope, flags=flags,
                   preferred_until=None if pref is None else now + pref,
                   valid_until=None if valid is None else now + valid)


@st.composite
def states(draw, kinds=ORACLE_KINDS):
    s = NodeState()
    for i in draw(st.sets(st.integers(1, 4), min_size=1, max_size=4)):
        s.interfaces[i] = draw(interfaces(kinds, ifindex=i))
    for a in draw(st.lists(addresses(), max_size=14)):
        s.addresses[a.key] = a
    s.home_addresses = tuple(draw(st.lists(st.sampled_from(HOAS), max_size=2, unique=True)))
    texts = sorted({k.address for k in s.addresses})
    if texts:
        s.bound_coas = frozenset(draw(st.sets(st.sampled_from(texts), max_size=3)))
    return s


def comparable(an) -> tuple:
    """Everything the old Analysis had, in a form both can give."""
    roles = {k: (r.role, r.reason, r.counted) for k, r in an.roles.items()}
    homes = tuple((h.hoa, h.at_home, h.home_ifindex) for h in an.homes)
    return (an.x, an.y, an.z, roles, an.coa_prefixes, an.active, an.home_links, homes)


def defined_extras(an, state: NodeState, now: float) -> tuple:
    """``coa_keys`` and ``coa_deadline`` straight from their definition."""
    keys: dict[int, set] = {}
    times = []
    for k, r in an.roles.items():
        if r.counted:
            keys.setdefault(k.ifindex, set()).add(k)
            a = state.addresses[k]
            times += [t for t in (a.preferred_until, a.valid_until) if t is not None and t > now]
    return {i: frozenset(v) for i, v in keys.items()}, (min(times) if times else None)


# --------------------------------------------------------------------------- same answers
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states(), st.booleans(), st.booleans(), st.sampled_from([NOW - 1, NOW, NOW + 0.5, NOW + 3]))
def test_linear_analysis_answers_as_the_old_one(state, allow_ula, ipv4_coas, now):
    new = analyse(state, now, allow_ula=allow_ula, ipv4_coas=ipv4_coas)
    old = oracle.analyse(state, now, allow_ula=allow_ula, ipv4_coas=ipv4_coas)
    assert comparable(new) == comparable(old)
    assert (dict(new.coa_keys), new.coa_deadline) == defined_extras(new, state, now)


def test_many_128s_find_their_longest_on_link_prefix_as_before():
    """The issue's case at a size the oracle can still do: /128s under a /64 inside a /48, and in no
    prefix of their interface at all, on two interfaces."""
    s = NodeState()
    s.interfaces = {i: Interface(i, f"eth{i}", K.ETHERNET, admin_up=True, oper_up=True, carrier=True, operstate="up")
                    for i in (2, 3)}
    base = int(ipaddress.IPv6Address("2001:db8:a::"))
    addrs = [Address(2, "2001:db8:a::1", 48), Address(2, "2001:db8:a:1::1", 64), Address(3, "2001:db8:a:2::1", 64)]
    for n in range(300):
        net = (n % 5) << 64  # a:0::, a:1::, a:2::, a:3::, a:4:: — some under the /64, all under the /48 on if2
        addrs.append(Address(2 + n % 2, str(ipaddress.IPv6Address(base + net + 0x1000 + n)), 128))
    s.addresses = {a.key: a for a in addrs}
    new, old = analyse(s, NOW), oracle.analyse(s, NOW)
    assert comparable(new) == comparable(old)
    assert new.z == 7  # if2: the /48 and the /64 inside it; if3: a:2::/64 and the /64s of a:0, a:1, a:3, a:4


# --------------------------------------------------------------------------- incremental
def _ops(draw):
    kind = draw(st.sampled_from(["add", "add", "add", "near", "near", "remove", "replace", "iface", "iface-gone",
                                 "bound", "vpn", "time", "time", "hoas", "opts"]))
    if kind == "add":
        return ("add", draw(addresses()))
    if kind == "near":  # beside an address already there: a prefix that covers it, or a /128 inside it
        return ("near", draw(st.integers(0, 50)), draw(st.sampled_from([32, 48, 56, 64, 96, 120, 128, 128])),
                draw(st.sampled_from([1, 2, 0x100, 0x1_0000_0000])))
    if kind in ("remove", "replace"):
        return (kind, draw(st.integers(0, 50)), draw(st.sampled_from(FLAG_BITS)), draw(st.sampled_from(LIFETIMES)))
    if kind == "iface":
        return ("iface", draw(interfaces(ALL_KINDS)))
    if kind == "iface-gone":
        return ("iface-gone", draw(st.integers(1, 4)))
    if kind in ("bound", "vpn"):
        return (kind, draw(st.sets(st.integers(0, 50), max_size=3)))
    if kind == "time":
        return ("time", draw(st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 3.0])))
    if kind == "hoas":
        return ("hoas", tuple(draw(st.lists(st.sampled_from(HOAS), max_size=2, unique=True))))
    return ("opts", draw(st.booleans()), draw(st.booleans()))


@st.composite
def op_lists(draw):
    return [_ops(draw) for _ in range(draw(st.integers(1, 30)))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states(ALL_KINDS), op_lists())
def test_incremental_analyser_always_answers_as_a_fresh_analysis(state, ops):
    an = Analyser()
    now, opts = NOW, {"allow_ula": False, "ipv4_coas": False}
    assert an.analyse(state, now, **opts) == analyse(state, now, **opts)
    for op in ops:
        keys = list(state.addresses)
        if op[0] == "add":
            a = replace(op[1], preferred_until=op[1].preferred_until and op[1].preferred_until - NOW + now,
                        valid_until=op[1].valid_until and op[1].valid_until - NOW + now)
            state.addresses[a.key] = a
        elif op[0] == "near" and keys:
            k = keys[op[1] % len(keys)]
            if ":" in k.address:
                a = Address(k.ifindex, str(ipaddress.IPv6Address(int(ipaddress.IPv6Address(k.address)) ^ op[3])), op[2])
                state.addresses[a.key] = a
        elif op[0] in ("remove", "replace") and keys:
            k = keys[op[1] % len(keys)]
            if op[0] == "remove":
                del state.addresses[k]
            else:
                a = state.addresses[k]
                lft = None if op[3] is None else now + op[3]
                state.addresses[k] = replace(a, flags=a.flags ^ op[2], valid_until=lft)
        elif op[0] == "iface":
            state.interfaces[op[1].ifindex] = op[1]
        elif op[0] == "iface-gone":
            state.interfaces.pop(op[1], None)
        elif op[0] == "bound" and keys:
            state.bound_coas = frozenset(keys[i % len(keys)].address for i in op[1])
        elif op[0] == "vpn" and keys:
            state.vpn_addresses = {keys[i % len(keys)].address: f"vpn{i % 2}" for i in op[1]}
        elif op[0] == "time":
            now += op[1]
        elif op[0] == "hoas":
            state.home_addresses = op[1]
        elif op[0] == "opts":
            opts = {"allow_ula": op[1], "ipv4_coas": op[2]}
        got = an.analyse(state, now, **opts)
        want = analyse(state, now, **opts)
        assert got == want, op
        assert (dict(got.coa_keys), got.coa_deadline) == defined_extras(got, state, now)


def test_an_analysis_handed_out_never_changes_afterwards():
    s = NodeState()
    s.interfaces = {2: Interface(2, "eth0", K.ETHERNET, admin_up=True, oper_up=True, carrier=True, operstate="up")}
    a = Address(2, "2001:db8:a::5", 64)
    s.addresses = {a.key: a}
    an = Analyser()
    first = an.analyse(s, NOW)
    before = (dict(first.roles), first.coa_prefixes, dict(first.coa_keys))
    b = Address(2, "2001:db8:b::5", 64)
    s.addresses[b.key] = b
    del s.addresses[a.key]
    second = an.analyse(s, NOW)
    assert (dict(first.roles), first.coa_prefixes, dict(first.coa_keys)) == before
    assert set(second.roles) == {b.key} and second.z == 1


# --------------------------------------------------------------------------- 13.5: by type
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states(ALL_KINDS), st.booleans(), st.booleans())
def test_a_virtual_link_is_never_an_access_link(state, allow_ula, ipv4_coas):
    """Whatever else: a bridge, macvlan, ifb... counts as the tunnel did (nothing), with its own reason."""
    as_tunnel = NodeState(
        interfaces={i: (f.with_(kind=K.TUNNEL) if f.kind is K.VIRTUAL else f) for i, f in state.interfaces.items()},
        addresses=dict(state.addresses), home_addresses=state.home_addresses, bound_coas=state.bound_coas)
    new = analyse(state, NOW, allow_ula=allow_ula, ipv4_coas=ipv4_coas)
    old = oracle.analyse(as_tunnel, NOW, allow_ula=allow_ula, ipv4_coas=ipv4_coas)
    assert (new.x, new.z, new.active, new.home_links, new.coa_prefixes) == \
        (old.x, old.z, old.active, old.home_links, old.coa_prefixes)
    virtual = {i for i, f in state.interfaces.items() if f.kind is K.VIRTUAL}
    for k, r in new.roles.items():
        assert r.counted == old.roles[k].counted
        if k.ifindex in virtual:
            assert not r.counted and k.ifindex not in new.active
            if old.roles[k].reason.startswith("on a tunnel"):
                assert r.role == "other" and "virtual link" in r.reason


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states(), st.data(), st.booleans(), st.booleans())
def test_a_vpns_address_counts_as_if_it_were_not_on_the_interface(state, data, allow_ula, ipv4_coas):
    """A VPN address on the access interface (NetworkManager VPN without an interface of its own) is the
    VPN's: never a CoA, no on-link prefix, no home link; the rest is analysed as without it."""
    texts = sorted({k.address for k in state.addresses})
    vpn = data.draw(st.sets(st.sampled_from(texts), max_size=3)) if texts else set()
    state.vpn_addresses = {t: "Work VPN" for t in vpn}
    without = NodeState(interfaces=dict(state.interfaces),
                        addresses={k: a for k, a in state.addresses.items() if a.address not in vpn},
                        home_addresses=state.home_addresses, bound_coas=state.bound_coas)
    new = analyse(state, NOW, allow_ula=allow_ula, ipv4_coas=ipv4_coas)
    old = oracle.analyse(without, NOW, allow_ula=allow_ula, ipv4_coas=ipv4_coas)
    assert (new.x, new.z, new.active, new.home_links, new.coa_prefixes) == \
        (old.x, old.z, old.active, old.home_links, old.coa_prefixes)
    assert [(h.hoa, h.at_home, h.home_ifindex) for h in new.homes] == \
        [(h.hoa, h.at_home, h.home_ifindex) for h in old.homes]
    for k, r in new.roles.items():
        if k.address in vpn:
            assert r.role == "vpn" and not r.counted and "Work VPN" in r.reason
        else:
            assert (r.role, r.reason, r.counted) == (old.roles[k].role, old.roles[k].reason, old.roles[k].counted)


# --------------------------------------------------------------------------- work, counted
def _calls(fn) -> int:
    """Python and C function calls made by ``fn()`` (a count, not a time)."""
    n = 0

    def prof(frame, event, arg):
        nonlocal n
        if event in ("call", "c_call"):
            n += 1

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return n


def _many_128s(n: int) -> NodeState:
    s = NodeState()
    s.interfaces = {2: Interface(2, "eth0", K.ETHERNET, admin_up=True, oper_up=True, carrier=True, operstate="up"),
                    3: Interface(3, "wlan0", K.WIFI, admin_up=True, oper_up=True, carrier=True, operstate="up")}
    base = int(ipaddress.IPv6Address("2001:db8:a::"))
    addrs = [Address(2, "2001:db8:a::1", 64), Address(2, "2001:db8:a::2", 48), Address(3, "2001:db8:c::1", 64)]
    addrs += [Address(2, str(ipaddress.IPv6Address(base + (i % 3 << 64) + 0x100 + i)), 128,
                      preferred_until=NOW + 100 + i, valid_until=NOW + 200 + i) for i in range(n)]
    s.addresses = {a.key: a for a in addrs}
    return s


def test_analysis_work_is_linear_in_128s_on_one_interface():
    small, big = _many_128s(200), _many_128s(400)
    c_small = _calls(lambda: analyse(small, NOW))
    c_big = _calls(lambda: analyse(big, NOW))
    # linear: twice the addresses, at most about twice the calls (the old scan made it four times)
    assert c_big <= 2.2 * c_small, (c_small, c_big)


def test_an_incremental_step_does_not_grow_with_the_addresses():
    def step_calls(n: int) -> int:
        s = _many_128s(n)
        an = Analyser()
        an.analyse(s, NOW)
        extra = Address(2, "2001:db8:a::ffff", 128, valid_until=NOW + 50)
        s.addresses[extra.key] = extra
        an.analyse(s, NOW)
        del s.addresses[extra.key]
        s.interfaces[3] = s.interfaces[3].with_(carrier=False)  # the other uplink goes down

        def step():
            an.analyse(s, NOW + 1)
        return _calls_python(step)
    assert step_calls(2000) <= step_calls(200) + 20


def _calls_python(fn) -> int:
    """Python-level calls only: the change-detection scan over the address table (a C-speed
    comprehension of dict lookups) is the one linear part of an incremental step."""
    n = 0

    def prof(frame, event, arg):
        nonlocal n
        if event == "call":
            n += 1

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return n


# --------------------------------------------------------------------------- the failover policy reads the indexes
def _old_usable(state: NodeState, an, require_router: bool) -> set[str]:
    """``usable_interfaces`` as it was, scanning every role (failover.py before issue 14)."""
    from mhgui.core.failover import _nm_down
    out = set()
    v6_coa_links = {k.ifindex for k, r in an.roles.items() if r.role == "coa" and ":" in k.address}
    for i in an.active - an.home_links:
        iface = state.interfaces.get(i)
        if iface is None or _nm_down(iface):
            continue
        if require_router and not state.routers.get(i) and i in v6_coa_links:
            continue
        out.add(iface.name)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states(ALL_KINDS), st.sets(st.integers(1, 4)), st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0]), st.booleans())
def test_failover_reads_the_analysis_indexes_as_it_read_every_role(state, with_router, later, ipv4_coas):
    from mhgui.core.failover import FailoverPolicy, Preferences, usable_interfaces

    state.routers = {i: frozenset({"fe80::1"}) for i in with_router}
    an = Analyser().analyse(state, NOW, ipv4_coas=ipv4_coas)
    for require_router in (True, False):
        assert usable_interfaces(state, an, require_router=require_router) == _old_usable(state, an, require_router)
    # the next end of a CoA's lifetime, also with an analysis older than the policy's clock
    now = NOW + later
    policy = FailoverPolicy(Preferences(()), lambda: now)
    policy.observe([], state, an)
    times = [t for k, r in an.roles.items() if r.counted
             for t in (state.addresses[k].preferred_until, state.addresses[k].valid_until) if t is not None and t > now]
    assert policy.next_deadline == (min(times) if times else None)
