"""Steering rules: the pure planner (mhgui.core.steering), the kernel engine
(mhgui.helper.steering) on real kernels in namespaces, and the helper's D-Bus methods.

The lab (root; skipped otherwise): a node namespace with TWO uplinks, a0 to router
namespace A and b0 to router namespace B, each with its own CoA prefix
(2001:db8:a::/64, 2001:db8:b::/64; 10.1.0.0/24, 10.2.0.0/24) and a default route
(A's metric lower: the default path is A); a server namespace S behind both routers
(2001:db8:5::1, 2001:db8:5:1::1, 2001:db8:6::1, 10.5.0.1) that answers each CoA through
the router of its prefix. Both routers do ingress filtering (draft 6.1.2, with policy
rules): they refuse to forward packets from the node whose source is not of their own
link's prefix, so a wrong source fails the handshake. Packets are seen on the wire with
AF_PACKET sockets on the routers' node-facing ends. "Nothing left behind" compares
``ip rule``, ``ip route show table all`` (both families) and, when nft is installed,
``nft -j list ruleset`` of the node before and after.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import os
import select
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mhgui.core import steering as core
from mhgui.core.steering import (
    NEVER_STEERED,
    RULE_PRIORITY,
    SOURCE_TABLE_BASE,
    TABLE_BASE,
    PolicyRule,
    Route,
    SteeringError,
    SteeringRule,
    SteeringState,
    Uplink,
)
from netns import netns_available, run

# --------------------------------------------------------------------------- pure: validation


def _rule(rid: str, dests, iface: str) -> SteeringRule:
    if isinstance(dests, str):
        dests = [dests]
    return core.rule_from_request({"destinations": list(dests), "interface": iface}, rule_id=rid, now=1.0)


@pytest.mark.parametrize("text,expected", [
    ("2001:db8:5::/48", "2001:db8:5::/48"),
    ("2001:DB8:5::1", "2001:db8:5::1/128"),
    ("192.0.2.0/24", "192.0.2.0/24"),
    ("198.51.100.7", "198.51.100.7/32"),
    ("::/0", "::/0"),
    ("0.0.0.0/0", "0.0.0.0/0"),
])
def test_valid_destinations(text, expected):
    assert str(core.parse_destination(text)) == expected


@pytest.mark.parametrize("value,words", [
    ("", "1..64"),
    ("x" * 65, "1..64"),
    ("example.org", "not an IPv6 or IPv4"),
    ("2001:db8::1/64", "host bits"),
    ("2001:db8::/129", "not an IPv6 or IPv4"),
    ("192.0.2.0/33", "not an IPv6 or IPv4"),
    ("2001:db8::1%eth0", "not an IPv6 or IPv4"),
    ("fe80::/64", "never steered"),
    ("ff02::1", "never steered"),
    ("::1", "never steered"),
    ("::", "never steered"),
    ("::ffff:192.0.2.1", "never steered"),
    ("127.0.0.1", "never steered"),
    ("169.254.0.0/16", "never steered"),
    ("224.0.0.1", "never steered"),
    ("2001:db8::/48\n", "not an IPv6 or IPv4"),
    ("1.2.3.4 ", "not an IPv6 or IPv4"),
    (42, "must be a string"),
    (None, "must be a string"),
    (["2001:db8::/32"], "must be a string"),
])
def test_invalid_destinations(value, words):
    with pytest.raises(SteeringError) as e:
        core.parse_destination(value)
    assert words in str(e.value)
    assert e.value.kind == "invalid"


@pytest.mark.parametrize("request_,words", [
    ({"destination": "2001:db8::/32"}, "interface is missing"),
    ({"interface": "b0"}, "either destination"),
    ({"destination": "2001:db8::/32", "destinations": ["2001:db8::/32"], "interface": "b0"}, "either destination"),
    ({"destination": ["2001:db8::/32"], "interface": "b0"}, "must be a string"),
    ({"destinations": "2001:db8::/32", "interface": "b0"}, "list of strings"),
    ({"destinations": [1], "interface": "b0"}, "list of strings"),
    ({"destinations": [], "interface": "b0"}, "at least one"),
    ({"destinations": [f"2001:db8:{i:x}::/48" for i in range(17)], "interface": "b0"}, "at most 16"),
    ({"destinations": ["2001:db8::/32", "2001:db8::/32"], "interface": "b0"}, "twice"),
    ({"destination": "2001:db8::/32", "interface": ""}, "empty"),
    ({"destination": "2001:db8::/32", "interface": "x" * 16}, "longer than 15"),
    ({"destination": "2001:db8::/32", "interface": "a/b"}, "'/'"),
    ({"destination": "2001:db8::/32", "interface": "a b"}, "' '"),
    ({"destination": "2001:db8::/32", "interface": ".."}, "not allowed"),
    ({"destination": "2001:db8::/32", "interface": "a\x00"}, "\\x00"),
    ({"destination": "2001:db8::/32", "interface": 7}, "empty"),
    ({"destination": "2001:db8::/32", "interface": "b0", "table": 254}, "unknown key"),
    ({"destination": "2001:db8::/32", "interface": "b0", "id": "abc"}, "unknown key"),
])
def test_invalid_requests(request_, words):
    with pytest.raises(SteeringError) as e:
        core.rule_from_request(request_, rule_id="r1", now=1.0)
    assert words in str(e.value)


def test_rule_ids_are_checked():
    for bad in ("", "a b", "x" * 65, "../x", None, 5):
        with pytest.raises(SteeringError):
            core.check_rule_id(bad)
    assert core.check_rule_id("a-b_C9") == "a-b_C9"


# --------------------------------------------------------------------------- pure: rules that could never match

NODE_NAMES = ("lo", "a0", "b0", "c0")
v6_net = st.builds(lambda hi, plen: ipaddress.IPv6Network((hi << 64, plen), strict=False),
                   st.integers(0x2001_0db8_0000_0000, 0x2001_0db8_ffff_ffff), st.integers(16, 128))
v4_net = st.builds(lambda a, plen: ipaddress.IPv4Network((a, plen), strict=False),
                   st.integers(0x0A00_0000, 0x0AFF_FFFF), st.integers(8, 32))


@settings(max_examples=300, deadline=None)
@given(source=st.one_of(v6_net, v4_net), dests=st.lists(st.one_of(v6_net, v4_net), min_size=1, max_size=4,
                                                         unique=True))
def test_a_source_of_the_other_family_than_a_destination_is_refused(source, dests):
    """Issue 13.13: a selector that conflicts with itself could never match: refused, by mhctl and helper alike."""
    request = {"destinations": [str(d) for d in dests], "interface": "b0", "source": str(source)}
    if all(d.version == source.version for d in dests):
        assert core.check_request(request).source == source
        return
    with pytest.raises(SteeringError) as e:
        core.check_request(request)
    other = next(d for d in dests if d.version != source.version)
    assert e.value.kind == "invalid"
    assert f"source {source} is IPv{source.version} but destination {other} is IPv{other.version}" in str(e.value)


@settings(max_examples=200, deadline=None)
@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=15))
def test_an_interface_the_node_does_not_have_is_refused(name):
    request = {"destination": "2001:db8:5::/48", "interface": name}
    if name in (".", ".."):
        return
    if name in NODE_NAMES:
        assert core.check_request(request, names=NODE_NAMES).interface == name
        return
    core.check_request(request)  # (without the node's names: mhctl's own check cannot tell)
    with pytest.raises(SteeringError) as e:
        core.check_request(request, names=NODE_NAMES)
    assert f"there is no interface {name} on this node (interfaces: a0, b0, c0, lo)" in str(e.value)


@settings(max_examples=200, deadline=None)
@given(sub=st.integers(0, 2**64 - 1), plen=st.integers(64, 128), which=st.sampled_from(["a0", "b0", "c0"]))
def test_a_destination_on_the_nodes_own_link_is_refused(sub, plen, which):
    link = ipaddress.IPv6Network(UPLINKS[which].prefixes[0])
    dest = ipaddress.IPv6Network((int(link.network_address) | sub, plen), strict=False)
    with pytest.raises(SteeringError) as e:
        core.check_request({"destination": str(dest), "interface": "a0"}, uplinks=UPLINKS)
    assert f"on {which}'s own link ({link})" in str(e.value)
    assert core.check_request({"destination": str(dest), "interface": "a0"}).destinations == (dest,)


@pytest.mark.parametrize("request_,words", [
    ({"destination": "2001:db8:5::/48", "interface": "b0", "protocol": "icmp"}, "choose tcp or udp"),
    ({"destination": "2001:db8:5::/48", "interface": "b0", "ports": "90-80"}, "the end is before the start"),
    ({"destination": "2001:db8:5::/48", "interface": "b0", "dport": "0"}, "is not supported"),
    ({"destination": "2001:db8:5::/48", "interface": "b0", "source": "::/0"}, "selects nothing"),
    ({"destination": "2001:db8:5::/48", "interface": "b0", "source": "fe80::1"}, "never steered"),
    ({"destination": "2001:db8:5::/48", "interface": "b0", "source": "2001:db8:b::1/64"}, "host bits"),
    ({"destination": "2001:db8:5::/48", "interface": "b0", "source": 5}, "must be a string"),
])
def test_unsupported_or_impossible_selectors(request_, words):
    with pytest.raises(SteeringError) as e:
        core.check_request(request_)
    assert words in str(e.value)


def test_a_source_that_is_not_the_interfaces_is_refused():
    request = {"destination": "2001:db8:5::/48", "interface": "b0", "source": "2001:db8:a::/64"}
    with pytest.raises(SteeringError) as e:
        core.check_request(request, uplinks=UPLINKS)
    assert "source 2001:db8:a::/64 is not one of b0's addresses (its prefixes: 2001:db8:b::/64)" in str(e.value)
    request["source"] = "2001:db8:b::2"
    assert str(core.check_request(request, uplinks=UPLINKS).source) == "2001:db8:b::2/128"


def test_a_rule_with_a_source_round_trips_and_fallback_drops_it():
    rule = core.check_request({"destination": "2001:db8:5::/48", "interface": "b0", "source": "2001:db8:b::/64"},
                              rule_id="r1", now=1.0)
    state = core.state_with([rule])
    assert core.parse_state(core.render_state(state)) == state
    assert core.with_fallback(state, {"b0": "a0"}).rules[0].source is None
    with pytest.raises(SteeringError) as e:  # a hand-edited state file with a contradiction
        core.parse_state(core.render_state(state).replace('"2001:db8:5::/48"', '"192.0.2.0/24"'))
    assert e.value.kind == "corrupt" and "is IPv6 but destination 192.0.2.0/24 is IPv4" in str(e.value)


def test_conflicts_slots_and_removal():
    st0 = SteeringState()
    st1 = core.add_rule(st0, _rule("r1", "2001:db8:5::/48", "b0"))
    with pytest.raises(SteeringError) as e:
        core.add_rule(st1, _rule("r2", ["2001:db8:7::/48", "2001:db8:5::/48"], "a0"))
    assert e.value.kind == "conflict" and "r1" in str(e.value)
    with pytest.raises(SteeringError) as e:
        core.add_rule(st1, _rule("r1", "2001:db8:7::/48", "a0"))
    assert e.value.kind == "conflict"
    st2 = core.add_rule(st1, _rule("r2", "2001:db8:7::/48", "a0"))
    assert dict(st2.slots) == {"b0": 1, "a0": 2}
    st3 = core.remove_rule(st2, "r1")
    assert dict(st3.slots) == {"a0": 2}
    # a released slot is not handed out again at once (round robin)
    st4 = core.add_rule(st3, _rule("r3", "2001:db8:8::/48", "wlan0"))
    assert st4.slots["wlan0"] == 3
    with pytest.raises(SteeringError) as e:
        core.remove_rule(st4, "r1")
    assert e.value.kind == "not-found"
    # the same interface keeps its slot while it has rules
    st5 = core.add_rule(st4, _rule("r4", "2001:db8:9::/48", "a0"))
    assert st5.slots["a0"] == 2


def test_slots_run_out():
    state = SteeringState()
    for i in range(core.MAX_SLOTS):
        state = core.add_rule(state, _rule(f"r{i}", f"2001:db8:{i:x}::/48", f"if{i}"))
    with pytest.raises(SteeringError) as e:
        core.add_rule(state, _rule("last", "2001:db9::/48", "one-more"))
    assert e.value.kind == "limit"
    # but one more rule on an interface that has a slot is fine
    core.add_rule(state, _rule("last", "2001:db9::/48", "if7"))


def test_state_round_trip():
    state = core.state_with([_rule("r1", ["2001:db8:5::/48", "192.0.2.0/24"], "b0"), _rule("r2", "2001:db8:7::/48", "a0")])
    text = core.render_state(state)
    assert core.parse_state(text) == state
    assert json.loads(text)["slots"] == {"a0": 2, "b0": 1}


@pytest.mark.parametrize("text,words", [
    ("", "not JSON"),
    ("{", "not JSON"),
    ("[]", "version"),
    ('{"version": 2, "rules": []}', "version"),
    ('{"version": 1, "rules": {}}', "list"),
    ('{"version": 1, "rules": [1]}', "not a JSON object"),
    ('{"version": 1, "rules": [{"id": "a", "destinations": ["2001:db8::/32"], "interface": "b0"}]}', "created"),
    ('{"version": 1, "rules": [{"id": "a", "destinations": ["2001:db8::/32"], "interface": "b0", "created": 1,'
     ' "x": 1}]}', "unknown keys"),
    ('{"version": 1, "rules": [{"id": "a", "destinations": ["fe80::/10"], "interface": "b0", "created": 1}]}',
     "never steered"),
    ('{"version": 1, "rules": [{"id": "a", "destinations": ["2001:db8::/32"], "interface": "b0", "created": 1},'
     ' {"id": "a", "destinations": ["2001:db9::/32"], "interface": "b0", "created": 1}]}', "twice"),
    ('{"version": 1, "rules": [{"id": "a", "destinations": ["2001:db8::/32"], "interface": "b0", "created": 1},'
     ' {"id": "b", "destinations": ["2001:db8::/32"], "interface": "b0", "created": 1}]}', "two rules"),
    ('{"version": 1, "rules": [], "slots": {"b0": 0}}', "slots"),
    ('{"version": 1, "rules": [], "slots": {"b0": 1, "a0": 1}}', "slots"),
    ('{"version": 1, "rules": [], "slots": [], "next_slot": 1}', "slots"),
    ('{"version": 1, "rules": [], "next_slot": "1"}', "next_slot"),
    ('{"version": 1, "rules": [{"id": "a", "destinations": ["2001:db8::/32"], "interface": "b0", "created": NaN}]}',
     "created"),
    ("[" * 100_000 + "]" * 100_000, "not JSON"),
])
def test_corrupt_state_is_refused(text, words):
    with pytest.raises(SteeringError) as e:
        core.parse_state(text)
    assert e.value.kind == "corrupt"
    assert words in str(e.value)


def test_hand_edited_state_gets_slots():
    text = ('{"version": 1, "rules": [{"id": "a", "destinations": ["2001:db8::/32"], "interface": "b0",'
            ' "created": 1}], "slots": {"gone0": 4}, "next_slot": 9}')
    state = core.parse_state(text)
    assert dict(state.slots) == {"b0": 9}


# --------------------------------------------------------------------------- pure: the planner

UPLINKS = {
    "a0": Uplink(2, "2001:db8:a::2", "fe80::1", ("2001:db8:a::/64",), "10.1.0.2", "10.1.0.1", ("10.1.0.0/24",)),
    "b0": Uplink(3, "2001:db8:b::2", "2001:db8:b::1", ("2001:db8:b::/64",)),
    "c0": Uplink(4, None, None, ("2001:db8:c::/64",)),  # an address, but none usable (e.g. tentative)
}


def test_plan_routes_carry_the_source_and_rules_are_per_interface():
    rules = [_rule("r1", "2001:db8:5::/48", "b0"), _rule("r2", ["2001:db8:5:1::/64", "192.0.2.0/24"], "a0")]
    state = core.state_with(rules)
    plan = core.plan_kernel_state(rules, UPLINKS, state.slots)
    tb, ta = TABLE_BASE + 1, TABLE_BASE + 2
    assert Route(6, tb, "2001:db8:5::/48", "unicast", 3, "2001:db8:b::1", "2001:db8:b::2", onlink=True) in plan.routes
    assert Route(6, tb, "2001:db8:5:1::/64", "throw") in plan.routes  # more specific, another interface
    assert Route(6, ta, "2001:db8:5:1::/64", "unicast", 2, "fe80::1", "2001:db8:a::2") in plan.routes
    assert Route(4, ta, "192.0.2.0/24", "unicast", 2, "10.1.0.1", "10.1.0.2") in plan.routes
    sb, sa = SOURCE_TABLE_BASE + 1, SOURCE_TABLE_BASE + 2
    # the source tables: where packets that already carry the interface's address go
    assert {r for r in plan.routes if r.table in (sa, sb)} == {
        Route(6, sb, "::/0", "unicast", 3, "2001:db8:b::1", "2001:db8:b::2", onlink=True),
        Route(6, sb, "2001:db8:b::/64", "unicast", 3),
        Route(6, sa, "::/0", "unicast", 2, "fe80::1", "2001:db8:a::2"),
        Route(6, sa, "2001:db8:a::/64", "unicast", 2),
        Route(4, sa, "0.0.0.0/0", "unicast", 2, "10.1.0.1", "10.1.0.2"),
        Route(4, sa, "10.1.0.0/24", "unicast", 2),
    }
    assert set(plan.rules) == {
        PolicyRule(6, RULE_PRIORITY, tb, "2001:db8:b::/64", True),
        PolicyRule(6, RULE_PRIORITY + 1, sb, "2001:db8:b::/64", False),
        PolicyRule(6, RULE_PRIORITY, ta, "2001:db8:a::/64", True),
        PolicyRule(6, RULE_PRIORITY + 1, sa, "2001:db8:a::/64", False),
        PolicyRule(4, RULE_PRIORITY, ta, "0.0.0.0/32", False),
        PolicyRule(4, RULE_PRIORITY + 1, sa, "10.1.0.0/24", False),
    }
    assert plan.reasons == {"r1": "", "r2": ""}
    assert dict(plan.slots) == {"b0": 1, "a0": 2}
    routes, prules = plan.needs["r1"]
    assert set(routes) == {Route(6, tb, "2001:db8:5::/48", "unicast", 3, "2001:db8:b::1", "2001:db8:b::2", onlink=True),
                           Route(6, sb, "::/0", "unicast", 3, "2001:db8:b::1", "2001:db8:b::2", onlink=True),
                           Route(6, sb, "2001:db8:b::/64", "unicast", 3)}
    assert set(prules) == {PolicyRule(6, RULE_PRIORITY, tb, "2001:db8:b::/64", True),
                           PolicyRule(6, RULE_PRIORITY + 1, sb, "2001:db8:b::/64", False)}
    # order of the rules does not matter
    assert core.plan_kernel_state(list(reversed(rules)), UPLINKS, state.slots) == plan


def test_fallback_moves_rules_to_the_substitute_and_keeps_persisted_slots():
    rules = [_rule("r1", "2001:db8:5::/48", "b0"), _rule("r2", "2001:db8:6::/48", "a0")]
    state = core.state_with(rules)
    assert core.with_fallback(state, {}) is state
    assert core.with_fallback(state, {"wwan0": "a0", "b0": "b0"}) is state  # no rules there, identity
    fb = core.with_fallback(state, {"b0": "a0"})
    assert [(r.id, r.interface) for r in fb.rules] == [("r1", "a0"), ("r2", "a0")]
    assert dict(fb.slots) == {"a0": state.slots["a0"]}  # the substitute keeps its own slot
    plan = core.plan_kernel_state(fb.rules, UPLINKS, fb.slots)
    ta = TABLE_BASE + state.slots["a0"]
    assert Route(6, ta, "2001:db8:5::/48", "unicast", 2, "fe80::1", "2001:db8:a::2") in plan.routes
    assert not any(r.oif == 3 for r in plan.routes)  # nothing through b0 any more
    assert plan.reasons == {"r1": "", "r2": ""}
    # a substitute without rules of its own gets a free slot; the persisted state is untouched
    only_b = core.state_with([_rule("r1", "2001:db8:5::/48", "b0")])
    fb = core.with_fallback(only_b, {"b0": "a0"})
    assert list(fb.slots) == ["a0"] and 1 <= fb.slots["a0"] <= core.MAX_SLOTS
    assert dict(only_b.slots) == {"b0": 1} and only_b.rules[0].interface == "b0"


def test_plan_never_steers_special_and_on_link_prefixes():
    rules = [_rule("all", "::/0", "b0"), _rule("onlink", "2001:db8:a::/80", "b0")]
    plan = core.plan_kernel_state(rules, UPLINKS)
    tb = TABLE_BASE + 1
    throws = {r.dst for r in plan.routes if r.kind == "throw"}
    assert throws == {str(n) for n in NEVER_STEERED if n.version == 6} | {
        "2001:db8:a::/64", "2001:db8:b::/64", "2001:db8:c::/64"}
    assert [r for r in plan.routes if r.kind == "unicast" and r.table == tb] == [
        Route(6, tb, "::/0", "unicast", 3, "2001:db8:b::1", "2001:db8:b::2", onlink=True)]
    assert plan.reasons["all"] == ""
    assert "inside the on-link prefix 2001:db8:a::/64" in plan.reasons["onlink"]
    assert plan.needs["onlink"] == ((), ())


def test_plan_reasons_for_rules_that_cannot_be_applied():
    rules = [_rule("gone", "2001:db8:5::/48", "wlan9"), _rule("noaddr", "2001:db8:6::/48", "c0"),
             _rule("half", ["2001:db8:7::/48", "198.51.100.0/24"], "b0")]
    plan = core.plan_kernel_state(rules, UPLINKS)
    assert plan.reasons["gone"].startswith("wlan9 is not usable now") and "waits for it" in plan.reasons["gone"]
    assert plan.reasons["noaddr"] == "2001:db8:6::/48: c0 has no usable IPv6 address"
    assert plan.reasons["half"] == "198.51.100.0/24: b0 has no usable IPv4 address"
    assert plan.needs["gone"] == ((), ()) and plan.needs["noaddr"] == ((), ())
    assert {r.dst for r in plan.routes if r.table < SOURCE_TABLE_BASE} == {"2001:db8:7::/48"}
    assert all(p.family == 6 for p in plan.rules)
    assert core.plan_kernel_state([], UPLINKS) == core.KernelPlan()


def test_plan_cost_is_flat():
    """10,000 destination rules on two interfaces: still two policy rules per interface, one route per
    destination (plus the two source tables' default and on-link routes)."""
    rules = [_rule(f"r{i}", f"2001:db8:{i // 256 + 0x100:x}:{i % 256:x}00::/56", "b0" if i % 2 else "a0")
             for i in range(10_000)]
    plan = core.plan_kernel_state(rules, UPLINKS)
    assert len(plan.rules) == 4
    assert len(plan.routes) == 10_000 + 4
    assert all(r == "" for r in plan.reasons.values())


def _simulate(plan: core.KernelPlan, addr: ipaddress._BaseAddress, rule_order: list[PolicyRule]) -> int | None:
    """The kernel's lookup for a new connection (no source yet) with ``plan`` installed: the
    interface index it leaves through, None for the main table (the default path). Only the
    FIND_SADDR rules (IPv6) match a lookup without source."""
    for p in sorted(rule_order, key=lambda p: p.priority):  # (sorted() is stable: the order within a priority stays)
        if p.family != addr.version or not p.find_saddr:
            continue
        best = None
        for r in plan.routes:
            if r.table == p.table and r.family == addr.version and addr in ipaddress.ip_network(r.dst):
                if best is None or ipaddress.ip_network(r.dst).prefixlen > ipaddress.ip_network(best.dst).prefixlen:
                    best = r
        if best is not None and best.kind == "unicast":
            return best.oif
    return None


def _v6net(hi: int, plen: int) -> ipaddress.IPv6Network:
    base = (0x2001_0DB8 << 96) | (hi << 80)
    return ipaddress.IPv6Network((base >> (128 - plen) << (128 - plen), plen))


_prefixes = st.builds(_v6net, st.integers(0, 0xFFFF), st.sampled_from([32, 33, 34, 35, 36, 40, 44, 48, 56, 64]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_prefixes, st.sampled_from(["a0", "b0", "c0", "wlan9"])), min_size=1, max_size=12,
                unique_by=lambda t: t[0]),
       st.randoms(use_true_random=False))
def test_plan_gives_longest_prefix_match_across_tables(pairs, rnd):
    """Whatever the nesting and whatever order the kernel keeps equal-priority rules in, a new
    connection leaves through the interface of the longest realised prefix containing its destination."""
    rules = [_rule(f"r{i}", str(net), iface) for i, (net, iface) in enumerate(pairs)]
    plan = core.plan_kernel_state(rules, UPLINKS)
    realised = {net: UPLINKS[iface].ifindex for net, iface in pairs if iface in ("a0", "b0")}
    probes = []
    for net, _ in pairs:
        probes += [net.network_address, net.broadcast_address, net.network_address + rnd.randrange(net.num_addresses)]
    probes += [ipaddress.ip_address("2001:db8:a::5"), ipaddress.ip_address("2001:db8:b::5")]
    for order in (list(plan.rules), list(reversed(plan.rules)), rnd.sample(list(plan.rules), len(plan.rules))):
        for addr in probes:
            containing = [n for n in realised if addr in n]
            on_link = any(addr in ipaddress.ip_network(p) for u in UPLINKS.values() for p in u.prefixes)
            want = None if on_link or not containing else realised[max(containing, key=lambda n: n.prefixlen)]
            assert _simulate(plan, addr, order) == want, (str(addr), order)


# --------------------------------------------------------------------------- the lab (root)

_ns_counter = itertools.count()
NEED = netns_available()
netns_only = pytest.mark.skipif(NEED is not None, reason=NEED or "")

SERVER6 = "2001:db8:5::1"
SERVER6_SPECIFIC = "2001:db8:5:1::1"
OTHER6 = "2001:db8:6::1"
SERVER4 = "10.5.0.1"
COA_A, COA_B = "2001:db8:a::2", "2001:db8:b::2"
ADDR4_A, ADDR4_B = "10.1.0.2", "10.2.0.2"
PORT = 7000


class SteerLab:
    """Node N (a0 -> A, b0 -> B), routers A and B (ingress filtering), server S behind both."""

    def __init__(self) -> None:
        n = f"{os.getpid()}-{next(_ns_counter)}"
        self.node, self.ra, self.rb, self.srv = (f"mhs-{x}-{n}" for x in ("n", "a", "b", "s"))
        self.all = (self.node, self.ra, self.rb, self.srv)
        self.sockets: list[socket.socket] = []  # closed with the lab
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def sh(self, ns: str, *args: str, check: bool = True) -> str:
        return run("ip", "netns", "exec", ns, *args, check=check)

    def ip(self, ns: str, *args: str, check: bool = True) -> str:
        return run("ip", "-n", ns, *args, check=check)

    def _build(self) -> None:
        for ns in self.all:
            run("ip", "netns", "add", ns)
            self.sh(ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                    "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0")
            self.ip(ns, "link", "set", "lo", "up")
        for ns in (self.ra, self.rb):
            self.sh(ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", "net.ipv4.ip_forward=1")

        def veth(a_ns: str, a: str, b_ns: str, b: str) -> None:
            self.ip(a_ns, "link", "add", a, "type", "veth", "peer", "name", b, "netns", b_ns)
            self.ip(a_ns, "link", "set", a, "up")
            self.ip(b_ns, "link", "set", b, "up")

        veth(self.node, "a0", self.ra, "n0")
        veth(self.node, "b0", self.rb, "n0")
        veth(self.srv, "sa", self.ra, "s0")
        veth(self.srv, "sb", self.rb, "s0")
        for ns, dev, addr in [
            (self.node, "a0", COA_A + "/64"), (self.node, "b0", COA_B + "/64"),
            (self.ra, "n0", "2001:db8:a::1/64"), (self.rb, "n0", "2001:db8:b::1/64"),
            (self.ra, "s0", "2001:db8:1a::1/64"), (self.rb, "s0", "2001:db8:1b::1/64"),
            (self.srv, "sa", "2001:db8:1a::2/64"), (self.srv, "sb", "2001:db8:1b::2/64"),
            (self.srv, "lo", SERVER6 + "/128"), (self.srv, "lo", SERVER6_SPECIFIC + "/128"),
            (self.srv, "lo", OTHER6 + "/128"),
        ]:
            self.ip(ns, "-6", "addr", "add", addr, "dev", dev, "nodad")
        for ns, dev, addr in [
            (self.node, "a0", ADDR4_A + "/24"), (self.node, "b0", ADDR4_B + "/24"),
            (self.ra, "n0", "10.1.0.1/24"), (self.rb, "n0", "10.2.0.1/24"),
            (self.ra, "s0", "10.11.0.1/24"), (self.rb, "s0", "10.12.0.1/24"),
            (self.srv, "sa", "10.11.0.2/24"), (self.srv, "sb", "10.12.0.2/24"), (self.srv, "lo", SERVER4 + "/32"),
        ]:
            self.ip(ns, "addr", "add", addr, "dev", dev)
        # the node: two default routers, A preferred
        self.ip(self.node, "-6", "route", "add", "default", "via", "2001:db8:a::1", "dev", "a0", "metric", "1024")
        self.ip(self.node, "-6", "route", "add", "default", "via", "2001:db8:b::1", "dev", "b0", "metric", "2048")
        self.ip(self.node, "route", "add", "default", "via", "10.1.0.1", "dev", "a0", "metric", "100")
        self.ip(self.node, "route", "add", "default", "via", "10.2.0.1", "dev", "b0", "metric", "200")
        # the routers: the servers are behind s0
        self.ip(self.ra, "-6", "route", "add", "2001:db8:4::/46", "via", "2001:db8:1a::2")
        self.ip(self.rb, "-6", "route", "add", "2001:db8:4::/46", "via", "2001:db8:1b::2")
        self.ip(self.ra, "route", "add", "10.5.0.0/24", "via", "10.11.0.2")
        self.ip(self.rb, "route", "add", "10.5.0.0/24", "via", "10.12.0.2")
        # the server answers each CoA through the router of its prefix
        self.ip(self.srv, "-6", "route", "add", "2001:db8:a::/64", "via", "2001:db8:1a::1")
        self.ip(self.srv, "-6", "route", "add", "2001:db8:b::/64", "via", "2001:db8:1b::1")
        self.ip(self.srv, "route", "add", "10.1.0.0/24", "via", "10.11.0.1")
        self.ip(self.srv, "route", "add", "10.2.0.0/24", "via", "10.12.0.1")
        # ingress filtering (draft 6.1.2): a router forwards only its own link's sources
        for ns, p6, p4 in ((self.ra, "2001:db8:a::/64", "10.1.0.0/24"), (self.rb, "2001:db8:b::/64", "10.2.0.0/24")):
            for fam, p in (("-6", p6), ("-4", p4)):
                self.ip(ns, fam, "rule", "add", "pref", "10", "iif", "n0", "from", p, "lookup", "main")
                self.ip(ns, fam, "rule", "add", "pref", "11", "iif", "n0", "prohibit")

    def snapshot(self) -> dict[str, object]:
        """Everything steering could leave behind in the node."""
        return {
            "rule6": self.ip(self.node, "-6", "rule", "show"),
            "rule4": self.ip(self.node, "-4", "rule", "show"),
            "route6": self.ip(self.node, "-6", "route", "show", "table", "all"),
            "route4": self.ip(self.node, "-4", "route", "show", "table", "all"),
            "nft": [x for x in json.loads(run("ip", "netns", "exec", self.node, "nft", "-j", "list", "ruleset"))
                    ["nftables"] if "metainfo" not in x] if shutil.which("nft") else None,
        }

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        for ns in self.all:
            run("ip", "netns", "del", ns, check=False)


@pytest.fixture
def slab():
    if NEED:
        pytest.skip(NEED)
    lab = SteerLab()
    try:
        yield lab
    finally:
        lab.close()


# --------------------------------------------------------------------------- sockets in namespaces


def _sock(ns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    from pyroute2.netns import create_socket

    return create_socket(ns, family, kind, proto)


class EchoServer:
    """TCP echo servers in the server namespace on every server address; records who connected."""

    def __init__(self, ns: str) -> None:
        self.listeners = []
        for addr in (SERVER6, SERVER6_SPECIFIC, OTHER6, SERVER4):
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            s = _sock(ns, fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, PORT))
            s.listen(16)
            self.listeners.append(s)
        self.peers: list[tuple[str, str]] = []  # (server address, client address)
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select(self.listeners + self._conns, [], [], 0.05)
            for s in r:
                if s in self.listeners:
                    c, peer = s.accept()
                    self.peers.append((s.getsockname()[0], peer[0]))
                    self._conns.append(c)
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if data:
                    s.sendall(data)
                else:
                    self._conns.remove(s)
                    s.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in self.listeners + self._conns:
            s.close()


class Wire:
    """Frames arriving on a router's node-facing end (AF_PACKET): what the node put on that wire."""

    def __init__(self, ns: str, ifname: str = "n0") -> None:
        self.sock = _sock(ns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind((ifname, 0))
        self.sock.settimeout(0.05)
        self.packets: list[tuple[str, str, int, int, int]] = []  # (src, dst, proto, sport, dport)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                frame, addr = self.sock.recvfrom(65536)
            except (socket.timeout, OSError):
                continue
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            p = _parse(frame)
            if p is not None:
                with self._lock:
                    self.packets.append(p)

    def clear(self) -> None:
        """Forget what was seen (a later connection may get the same local port)."""
        with self._lock:
            self.packets.clear()

    def tcp(self, port: int) -> list[tuple[str, str, int, int, int]]:
        """Packets of the node's side of the TCP connection with local port ``port``."""
        with self._lock:
            return [p for p in self.packets if p[2] == 6 and p[3] == port]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _parse(frame: bytes):
    if len(frame) < 14:
        return None
    etype = struct.unpack("!H", frame[12:14])[0]
    if etype == 0x86DD and len(frame) >= 54:
        src = str(ipaddress.IPv6Address(frame[22:38]))
        dst = str(ipaddress.IPv6Address(frame[38:54]))
        proto, off = frame[20], 54
    elif etype == 0x0800 and len(frame) >= 34:
        ihl = (frame[14] & 0x0F) * 4
        src = str(ipaddress.IPv4Address(frame[26:30]))
        dst = str(ipaddress.IPv4Address(frame[30:34]))
        proto, off = frame[23], 14 + ihl
    else:
        return None
    sport = dport = 0
    if proto in (6, 17) and len(frame) >= off + 4:
        sport, dport = struct.unpack("!HH", frame[off:off + 4])
    return (src, dst, proto, sport, dport)


def _wait_for(pred, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def net(slab):
    """The lab with the echo server and wire taps on both routers running."""
    server = EchoServer(slab.srv)
    wa, wb = Wire(slab.ra), Wire(slab.rb)
    try:
        yield slab, server, wa, wb
    finally:
        wa.close()
        wb.close()
        server.close()


class Conn:
    """A TCP connection from the node; ``echo`` proves it works end to end."""

    def __init__(self, lab: SteerLab, dst: str) -> None:
        fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
        self.sock = _sock(lab.node, fam, socket.SOCK_STREAM)
        lab.sockets.append(self.sock)
        self.sock.settimeout(5)
        self.sock.connect((dst, PORT))
        self.local = self.sock.getsockname()[0]
        self.port = self.sock.getsockname()[1]

    def echo(self, data: bytes = b"ping") -> None:
        self.sock.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = self.sock.recv(65536)
            assert chunk, "the connection was closed"
            got += chunk
        assert got == data

    def close(self) -> None:
        self.sock.close()


def _path_of(conn: Conn, wa: Wire, wb: Wire, *, closed: bool = False) -> tuple[set[str], set[str]]:
    """(sources seen on A's wire, sources seen on B's wire) for the connection's packets."""
    if closed:  # wait for the FIN to be on some wire
        _wait_for(lambda: len(wa.tcp(conn.port)) + len(wb.tcp(conn.port)) >= 4, "the connection's packets")
        time.sleep(0.1)
    return {p[0] for p in wa.tcp(conn.port)}, {p[0] for p in wb.tcp(conn.port)}


# --------------------------------------------------------------------------- kernel tests


def _engine(lab: SteerLab, tmp_path: Path):
    from mhgui.helper.steering import SteeringEngine

    return SteeringEngine(str(tmp_path / "state"), netns=lab.node)


@netns_only
def test_new_connection_leaves_the_chosen_interface_with_its_coa(net, tmp_path):
    lab, server, wa, wb = net
    eng = _engine(lab, tmp_path)
    before = Conn(lab, SERVER6)  # the default path, for contrast
    before.echo()
    before.close()
    assert before.local == COA_A
    assert _path_of(before, wa, wb, closed=True) == ({COA_A}, set())

    rule = eng.add({"destination": "2001:db8:5::/48", "interface": "b0"})
    assert eng.kernel_matches() == {rule.id: True}
    c = Conn(lab, SERVER6)
    c.echo(b"x" * 20_000)  # a real handshake and data, over B
    c.close()
    assert c.local == COA_B  # the application sees the address the packets carry
    on_a, on_b = _path_of(c, wa, wb, closed=True)
    assert on_a == set() and on_b == {COA_B}, (on_a, on_b)
    assert len(wb.tcp(c.port)) >= 5
    assert (SERVER6, COA_B) in server.peers
    # destinations outside the rule keep the default path
    o = Conn(lab, OTHER6)
    o.echo()
    o.close()
    assert o.local == COA_A
    assert _path_of(o, wa, wb, closed=True) == ({COA_A}, set())
    # unconnected UDP from an unbound socket is steered too, with B's address
    u = _sock(lab.node, socket.AF_INET6, socket.SOCK_DGRAM)
    lab.sockets.append(u)
    u.bind(("::", 0))
    uport = u.getsockname()[1]
    u.sendto(b"hello", (SERVER6, 9))
    u.sendto(b"hello", (OTHER6, 9))
    u.close()
    _wait_for(lambda: any(p[2] == 17 and p[3] == uport for p in wb.packets)
              and any(p[2] == 17 and p[3] == uport for p in wa.packets), "the UDP datagrams")
    assert {(p[0], p[1]) for p in wb.packets if p[2] == 17 and p[3] == uport} == {(COA_B, SERVER6)}
    assert {(p[0], p[1]) for p in wa.packets if p[2] == 17 and p[3] == uport} == {(COA_A, OTHER6)}


@netns_only
def test_ipv4_destination_rule(net, tmp_path):
    lab, server, wa, wb = net
    eng = _engine(lab, tmp_path)
    before = Conn(lab, SERVER4)
    before.echo()
    before.close()
    assert _path_of(before, wa, wb, closed=True) == ({ADDR4_A}, set())
    rule = eng.add({"destinations": ["10.5.0.0/24", "2001:db8:5::/48"], "interface": "b0"})
    assert eng.kernel_matches() == {rule.id: True}
    c = Conn(lab, SERVER4)
    c.echo()
    c.close()
    assert c.local == ADDR4_B
    assert _path_of(c, wa, wb, closed=True) == (set(), {ADDR4_B})
    assert (SERVER4, ADDR4_B) in server.peers


@netns_only
def test_longest_prefix_wins_across_interfaces(net, tmp_path):
    lab, server, wa, wb = net
    eng = _engine(lab, tmp_path)
    eng.add({"destination": "2001:db8:4::/46", "interface": "b0"})   # covers 2001:db8:5::/48 and :5:1::/64
    eng.add({"destination": "2001:db8:5:1::/64", "interface": "a0"})
    broad, specific = Conn(lab, SERVER6), Conn(lab, SERVER6_SPECIFIC)
    broad.echo()
    specific.echo()
    broad.close()
    specific.close()
    assert (broad.local, specific.local) == (COA_B, COA_A)
    assert _path_of(broad, wa, wb, closed=True) == (set(), {COA_B})
    assert _path_of(specific, wa, wb, closed=True) == ({COA_A}, set())


_example_dirs = itertools.count()
COVERING = ["::/0", "2001:db8:4::/46", "2001:db8:5::/48", "2001:db8:6::/48", "2001:db8:5::1/128",
            "0.0.0.0/0", "10.5.0.0/24"]


@netns_only
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=st.lists(st.tuples(st.sampled_from(COVERING), st.sampled_from(["a0", "b0"])), min_size=1, max_size=5,
                      unique_by=lambda t: t[0]))
@example(rules=[("::/0", "b0"), ("2001:db8:5::/48", "a0"), ("2001:db8:6::/48", "b0")])
@example(rules=[("0.0.0.0/0", "b0"), ("::/0", "a0"), ("10.5.0.0/24", "a0"), ("2001:db8:5::1/128", "a0")])
def test_rules_after_a_covering_rule_are_applied_and_carry_traffic(net, tmp_path, rules):
    """Issue 13.14c: after ``::/0`` every later rule failed with "No route to host" (the kernel checks a
    new route's gateway inside the steering table, where the covering route and the throw of the
    gateway's on-link prefix make it unreachable). Any order of covering and covered rules: all are
    applied, and each destination leaves through its longest matching rule's interface."""
    from mhgui.helper.steering import SteeringEngine

    lab, server, wa, wb = net
    eng = SteeringEngine(str(tmp_path / f"state{next(_example_dirs)}"), netns=lab.node)
    try:
        for dest, iface in rules:
            eng.add({"destination": dest, "interface": iface})
        assert all(x.in_kernel for x in eng.listing()), eng.listing()
        for dst in (SERVER6, SERVER6_SPECIFIC, OTHER6, SERVER4):
            addr = ipaddress.ip_address(dst)
            covering = [(ipaddress.ip_network(d), i) for d, i in rules if addr in ipaddress.ip_network(d)]
            via = max(covering, key=lambda c: c[0].prefixlen)[1] if covering else "a0"  # else: A, the default
            src = {("a0", 6): COA_A, ("b0", 6): COA_B, ("a0", 4): ADDR4_A, ("b0", 4): ADDR4_B}[(via, addr.version)]
            wa.clear()  # (the lab lives through all examples: an earlier connection may have had this port)
            wb.clear()
            c = Conn(lab, dst)
            c.echo()
            c.close()
            assert c.local == src, (dst, rules)
            assert _path_of(c, wa, wb, closed=True) == (({src}, set()) if via == "a0" else (set(), {src})), (dst, rules)
    finally:
        eng.clear_kernel()


@netns_only
def test_established_connections_keep_their_path(net, tmp_path):
    lab, server, wa, wb = net
    eng = _engine(lab, tmp_path)
    old = Conn(lab, SERVER6)  # opened before the rule: via A
    old.echo()
    steer = eng.add({"destination": "2001:db8:5::/48", "interface": "b0"})
    n_a = len(wa.tcp(old.port))
    old.echo(b"after the rule")
    _wait_for(lambda: len(wa.tcp(old.port)) > n_a, "the old connection's packets on A's wire")
    steered = Conn(lab, SERVER6)  # opened after: via B
    steered.echo()
    # an unrelated rule comes and goes: neither connection moves
    other = eng.add({"destination": "2001:db8:6::/48", "interface": "b0"})
    old.echo(b"unrelated added")
    steered.echo(b"unrelated added")
    eng.remove(other.id)
    old.echo(b"unrelated removed")
    steered.echo(b"unrelated removed")
    # a rule for another interface that also covers the server: still no move
    more = eng.add({"destination": "2001:db8:5::1/128", "interface": "a0"})
    old.echo(b"more specific")
    steered.echo(b"more specific")
    eng.remove(more.id)
    old.close()
    steered.close()
    assert _path_of(old, wa, wb, closed=True) == ({COA_A}, set())
    assert _path_of(steered, wa, wb, closed=True) == (set(), {COA_B})
    assert eng.kernel_matches() == {steer.id: True}


@netns_only
def test_removing_rules_leaves_nothing_behind(net, tmp_path):
    lab, server, wa, wb = net
    eng = _engine(lab, tmp_path)
    clean = lab.snapshot()
    r1 = eng.add({"destinations": ["2001:db8:5::/48", "10.5.0.0/24"], "interface": "b0"})
    r2 = eng.add({"destination": "2001:db8:5:1::/64", "interface": "a0"})
    r3 = eng.add({"destination": "::/0", "interface": "b0"})
    steered = lab.snapshot()
    assert steered != clean
    assert f"{RULE_PRIORITY}:" in steered["rule6"] and f"{RULE_PRIORITY}:" in steered["rule4"]
    eng.remove(r3.id)
    eng.remove(r1.id)
    assert lab.snapshot() != clean  # r2 is still there
    eng.remove(r2.id)
    assert lab.snapshot() == clean
    assert eng.kernel_matches() == {}
    c = Conn(lab, SERVER6)
    c.echo()
    c.close()
    assert c.local == COA_A and _path_of(c, wa, wb, closed=True) == ({COA_A}, set())
    # nothing of ours, whatever the tools print
    assert str(RULE_PRIORITY) not in lab.snapshot()["rule6"]
    assert "fwmark" not in lab.snapshot()["rule6"]


@netns_only
def test_foreign_state_is_left_alone_and_ours_is_repaired(slab, tmp_path):
    lab = slab
    eng = _engine(lab, tmp_path)
    # someone else's table and rule (and nftables table)
    lab.ip(lab.node, "-6", "route", "add", "2001:db8:77::/48", "via", "2001:db8:a::1", "table", "100")
    lab.ip(lab.node, "-6", "rule", "add", "pref", "500", "fwmark", "0x42", "lookup", "100")
    if shutil.which("nft"):
        run("ip", "netns", "exec", lab.node, "nft", "add", "table", "inet", "other")
    foreign = lab.snapshot()
    r = eng.add({"destination": "2001:db8:5::/48", "interface": "b0"})
    # our route disappears behind our back: listed as missing, put back by reconcile
    lab.ip(lab.node, "-6", "route", "del", "2001:db8:5::/48", "table", str(TABLE_BASE + 1))
    [listed] = eng.listing()
    assert not listed.in_kernel and "not in the kernel" in listed.status
    eng.reconcile()
    assert eng.kernel_matches() == {r.id: True}
    # a stray route and rule in our range are ours to remove
    lab.ip(lab.node, "-6", "route", "add", "2001:db8:99::/48", "dev", "b0", "table", str(TABLE_BASE + 7))
    lab.ip(lab.node, "-6", "rule", "add", "pref", "900", "to", "2001:db8:99::/48", "lookup", str(TABLE_BASE + 7))
    eng.reconcile()
    assert str(TABLE_BASE + 7) not in lab.ip(lab.node, "-6", "rule", "show")
    eng.remove(r.id)
    assert lab.snapshot() == foreign


@netns_only
def test_rules_wait_for_their_interface_and_follow_the_coa(net, tmp_path):
    lab, server, wa, wb = net
    eng = _engine(lab, tmp_path)
    from mhgui.helper.steering import SteeringFailure

    with pytest.raises(SteeringFailure) as e:  # no such interface at all: a typo, refused (issue 13.13)
        eng.add({"destination": "2001:db8:5::/48", "interface": "wwan0"})
    assert e.value.kind == "InvalidArgs" and "no interface wwan0" in e.value.message
    # an interface that exists but is down, without addresses (a modem not connected yet): the rule waits
    lab.ip(lab.node, "link", "add", "wwan0", "type", "veth", "peer", "name", "wwan0p")
    r = eng.add({"destination": "2001:db8:5::/48", "interface": "wwan0"})
    [listed] = eng.listing()
    assert not listed.in_kernel and listed.status.startswith("wwan0 is not usable now")
    assert str(RULE_PRIORITY) not in lab.ip(lab.node, "-6", "rule", "show")
    eng.remove(r.id)
    # B's CoA changes (a new prefix on the same link would do the same): the rule follows
    eng.add({"destination": "2001:db8:5::/48", "interface": "b0"})
    lab.ip(lab.node, "-6", "addr", "add", "2001:db8:b::3/64", "dev", "b0", "nodad")
    lab.ip(lab.node, "-6", "addr", "del", COA_B + "/64", "dev", "b0")
    lab.ip(lab.node, "-6", "route", "replace", "default", "via", "2001:db8:b::1", "dev", "b0", "metric", "2048")
    assert not eng.listing()[0].in_kernel  # the kernel dropped the route whose source vanished
    eng.reconcile()
    assert eng.listing()[0].in_kernel
    c = Conn(lab, SERVER6)
    c.echo()
    c.close()
    assert c.local == "2001:db8:b::3"
    assert _path_of(c, wa, wb, closed=True) == (set(), {"2001:db8:b::3"})
    # B goes down: the rule stays, the destination takes the default path meanwhile
    lab.ip(lab.node, "link", "set", "b0", "down")
    eng.reconcile()
    assert not eng.listing()[0].in_kernel
    assert "no usable IPv6 address" in eng.listing()[0].status
    d = Conn(lab, SERVER6)
    d.echo()
    d.close()
    assert d.local == COA_A


@netns_only
def test_fallback_sends_a_rule_through_the_substitute_and_back(net, tmp_path):
    lab, server, wa, wb = net
    eng = _engine(lab, tmp_path)
    eng.add({"destination": "2001:db8:5::/48", "interface": "b0"})
    tb = TABLE_BASE + 1
    assert "dev b0" in lab.ip(lab.node, "-6", "route", "show", "table", str(tb))
    lab.ip(lab.node, "link", "set", "b0", "down")
    eng.reconcile()
    assert not eng.listing()[0].in_kernel
    # the failover policy says: b0's rules through a0 for now
    eng.set_fallback({"b0": "a0"})
    [listed] = eng.listing()
    assert listed.in_kernel and listed.via == "a0" and listed.rule.interface == "b0"
    routes = lab.ip(lab.node, "-6", "route", "show", "table", "all")
    assert "2001:db8:5::/48 via" in routes and f"src {COA_A}" in routes and "dev b0" not in routes
    c = Conn(lab, SERVER6)
    c.echo()
    c.close()
    assert c.local == COA_A
    assert _path_of(c, wa, wb, closed=True) == ({COA_A}, set())
    # b0 back and the fallback ended: the rule is on its own interface again
    lab.ip(lab.node, "link", "set", "b0", "up")
    lab.ip(lab.node, "-6", "addr", "replace", COA_B + "/64", "dev", "b0", "nodad")
    lab.ip(lab.node, "-6", "route", "replace", "default", "via", "2001:db8:b::1", "dev", "b0", "metric", "2048")
    eng.set_fallback({})
    [listed] = eng.listing()
    assert listed.in_kernel and listed.via == "b0"
    d = Conn(lab, SERVER6)
    d.echo()
    d.close()
    assert d.local == COA_B
    assert _path_of(d, wa, wb, closed=True) == (set(), {COA_B})
    from mhgui.helper.steering import SteeringFailure
    with pytest.raises(SteeringFailure):
        eng.set_fallback({"b0": "bad/name"})
    assert eng.fallback == {}


@netns_only
def test_persisted_rules_come_back(net, tmp_path):
    from mhgui.helper.steering import SteeringEngine, SteeringFailure

    lab, server, wa, wb = net
    eng = _engine(lab, tmp_path)
    clean = lab.snapshot()
    r1 = eng.add({"destination": "2001:db8:5::/48", "interface": "b0"})
    r2 = eng.add({"destinations": ["10.5.0.0/24"], "interface": "b0"})
    applied = lab.snapshot()
    # "reboot": the kernel forgets, the state directory stays
    eng.clear_kernel()
    assert lab.snapshot() == clean
    again = SteeringEngine(eng.state_dir, netns=lab.node)
    assert again.kernel_matches() == {r1.id: False, r2.id: False}
    again.reconcile()
    assert lab.snapshot() == applied
    assert again.kernel_matches() == {r1.id: True, r2.id: True}
    c = Conn(lab, SERVER6)
    c.echo()
    c.close()
    assert c.local == COA_B
    # each change is one line of the journal; a rewrite of the state file takes them in (the previous
    # state file is the backup, the lines that led from it the journal's backup)
    state, journal = Path(eng.path), Path(eng.store.journal)
    assert not state.exists()
    assert [json.loads(x)["seq"] for x in journal.read_text().splitlines()] == [1, 2]
    again.store.rewrite(again.load())
    assert [x["id"] for x in json.loads(state.read_text())["rules"]] == [r1.id, r2.id]
    assert json.loads(state.read_text())["seq"] == 2 and not journal.exists()
    r3 = again.add({"destination": "2001:db8:6::/48", "interface": "b0"})
    again.store.rewrite(again.load())
    assert [x["id"] for x in json.loads(Path(eng.path + ".bak").read_text())["rules"]] == [r1.id, r2.id]
    r4 = again.add({"destination": "2001:db8:7::/48", "interface": "b0"})
    # a damaged state file falls back to the backup and the journals: nothing is lost
    state.write_text("{ not json")
    third = SteeringEngine(eng.state_dir, netns=lab.node)
    assert [r.id for r in third.load().rules] == [r1.id, r2.id, r3.id, r4.id]
    Path(eng.path + ".bak").write_text("[]")
    fourth = SteeringEngine(eng.state_dir, netns=lab.node)
    with pytest.raises(SteeringFailure) as e:
        fourth.add({"destination": "2001:db8:8::/48", "interface": "b0"})
    assert e.value.kind == "StateCorrupt"
    assert state.read_text() == "{ not json"
    assert [f.name for f in state.parent.iterdir() if f.name.endswith(".tmp")] == []


@netns_only
def test_failed_kernel_change_puts_the_previous_state_back(slab, tmp_path, monkeypatch):
    from mhgui.helper import steering as hs

    lab = slab
    eng = _engine(lab, tmp_path)
    r1 = eng.add({"destination": "2001:db8:5::/48", "interface": "b0"})
    good = lab.snapshot()
    real = hs._route_args

    def broken(r):
        args = real(r)
        if r.dst == "2001:db8:6::/48":
            args["prefsrc"] = "2001:db8:99::1"  # not an address of the node: the kernel refuses the route
        return args

    monkeypatch.setattr(hs, "_route_args", broken)
    with pytest.raises(hs.SteeringFailure) as e:
        eng.add({"destination": "2001:db8:6::/48", "interface": "b0"})
    monkeypatch.undo()
    assert e.value.kind == "KernelFailed" and "2001:db8:6::/48" in e.value.message
    assert lab.snapshot() == good
    assert [r.id for r in hs.SteeringEngine(eng.state_dir, netns=lab.node).load().rules] == [r1.id]


# --------------------------------------------------------------------------- the helper on D-Bus

STEER = "io.github.mhgui.MHGui.steer"
FALLBACK = "io.github.mhgui.MHGui.steer-fallback"


@pytest.fixture(scope="module")
def bus_stack():
    if NEED:
        pytest.skip(NEED)
    pytest.importorskip("dbus")
    from test_helper import _start_stack

    s = _start_stack(systemd=False)
    yield s
    s.stop()


def _start_helper(stack, lab: SteerLab, tmp_path: Path):
    from test_helper import HelperProc

    conf = tmp_path / "etc" / "mip6d.conf"
    conf.parent.mkdir(exist_ok=True)
    return HelperProc(stack, conf, "--state-dir", str(tmp_path / "state"),
                      wrapper=("ip", "netns", "exec", lab.node)).start()


@netns_only
@pytest.mark.asyncio
async def test_helper_steering_methods(bus_stack, net, tmp_path):
    from test_helper import READ

    from mhgui.helper.client import HelperClient, InvalidArguments, NoSuchRule, NotAuthorized, SteeringConflict

    lab, server, wa, wb = net
    clean = lab.snapshot()
    bus_stack.reset()
    h = _start_helper(bus_stack, lab, tmp_path)
    try:
        async with HelperClient(bus_stack.address) as client:
            # polkit says no: nothing changes
            bus_stack.allow(READ)
            with pytest.raises(NotAuthorized) as e:
                await client.add_steering_rule("2001:db8:5::/48", "b0")
            assert "steer" in str(e.value)
            assert await client.list_steering_rules() == []
            assert lab.snapshot() == clean
            assert not (tmp_path / "state" / "steering.json").exists()
            bus_stack.allow()
            with pytest.raises(NotAuthorized):
                await client.list_steering_rules()
            # polkit says yes
            bus_stack.allow(READ, STEER)
            rid = await client.add_steering_rule(["2001:db8:5::/48", "10.5.0.0/24"], "b0")
            [listed] = await client.list_steering_rules()
            assert listed["id"] == rid and listed["interface"] == "b0" and listed["in_kernel"] is True
            assert listed["destinations"] == ["2001:db8:5::/48", "10.5.0.0/24"]
            # a static setup (no advertisement names b0's prefix): its only router, and the state says so
            assert "b0 has one router, 2001:db8:b::1, which is used" in listed["status"]
            assert abs(listed["created"] - time.time()) < 60
            c = Conn(lab, SERVER6)
            c.echo()
            c.close()
            assert c.local == COA_B
            assert _path_of(c, wa, wb, closed=True) == (set(), {COA_B})
            # hostile and wrong input
            with pytest.raises(InvalidArguments):
                await client.add_steering_rule("fe80::/64", "b0")
            with pytest.raises(InvalidArguments):
                await client.add_steering_rule("2001:db8:6::/48", "bad/name")
            # rules that could never match (issue 13.13): InvalidArgs with the reason, nothing kept
            with pytest.raises(InvalidArguments) as e:
                await client.add_steering_rule("2001:db8:6::/48", "nosuch0")
            assert "no interface nosuch0 on this node" in str(e.value)
            with pytest.raises(InvalidArguments) as e:
                await client.add_steering_rule(["2001:db8:6::/48", "10.6.0.0/24"], "b0", source="2001:db8:b::/64")
            assert "is IPv6 but destination 10.6.0.0/24 is IPv4" in str(e.value)
            with pytest.raises(InvalidArguments) as e:
                await client.add_steering_rule("2001:db8:a::/80", "b0")
            assert "on a0's own link (2001:db8:a::/64)" in str(e.value)
            with pytest.raises(SteeringConflict):
                await client.add_steering_rule("2001:db8:5::/48", "a0")
            with pytest.raises(NoSuchRule):
                await client.remove_steering_rule("no-such-rule")
            with pytest.raises(InvalidArguments):
                await client.remove_steering_rule("../../etc/passwd")
            from dbus_fast import Message, Variant

            bus = await client.connect()
            reply = await bus.call(Message(
                destination="io.github.mhgui.MHGui.Helper1", path="/io/github/mhgui/MHGui/Helper1",
                interface="io.github.mhgui.MHGui.Helper1", member="AddSteeringRule", signature="a{sv}",
                body=[{"destination": Variant("u", 5), "interface": Variant("s", "b0")}]))
            assert reply.error_name == "io.github.mhgui.MHGui.Helper1.Error.InvalidArgs"
            reply = await bus.call(Message(
                destination="io.github.mhgui.MHGui.Helper1", path="/io/github/mhgui/MHGui/Helper1",
                interface="io.github.mhgui.MHGui.Helper1", member="RemoveSteeringRule", signature="u", body=[5]))
            assert reply.error_name == "org.freedesktop.DBus.Error.InvalidArgs"
            assert len(await client.list_steering_rules()) == 1
            actions = [a[2] for a in bus_stack.auth_calls()]
            assert actions[:3] == [STEER, READ, READ] and STEER in actions[3:]
        # helper restart after a "reboot" (kernel state lost): the rules come back by themselves
        assert h.stop() == 0
        applied = lab.snapshot()
        from mhgui.helper.steering import SteeringEngine

        # (pyroute2's synchronous API cannot run inside a running event loop: another thread)
        await asyncio.to_thread(SteeringEngine(str(tmp_path / "state"), netns=lab.node).clear_kernel)
        assert lab.snapshot() == clean
        h = _start_helper(bus_stack, lab, tmp_path)
        _wait_for(lambda: lab.snapshot() == applied, "the helper to re-apply the persisted rules")
        # the helper follows address changes on its own
        async with HelperClient(bus_stack.address) as client:
            lab.ip(lab.node, "-6", "addr", "add", "2001:db8:b::3/64", "dev", "b0", "nodad")
            lab.ip(lab.node, "-6", "addr", "del", COA_B + "/64", "dev", "b0")
            lab.ip(lab.node, "-6", "route", "replace", "default", "via", "2001:db8:b::1", "dev", "b0",
                   "metric", "2048")
            _wait_for(lambda: "src 2001:db8:b::3" in lab.ip(lab.node, "-6", "route", "show", "table",
                                                                 str(TABLE_BASE + 1)), "the rule to follow the CoA")
            [listed] = await client.list_steering_rules()
            assert listed["in_kernel"] is True
            c = Conn(lab, SERVER6)
            c.echo()
            c.close()
            assert c.local == "2001:db8:b::3"
            await client.remove_steering_rule(rid)
            assert await client.list_steering_rules() == []
        # the failover fallback lives as long as the client that set it
        rid = await client_fallback_round(bus_stack, lab)
        async with HelperClient(bus_stack.address) as client:
            await client.remove_steering_rule(rid)
        after = lab.snapshot()
        assert str(RULE_PRIORITY) not in after["rule6"] + after["rule4"]
        assert "table 18355" not in after["route6"] + after["route4"]
        assert after["nft"] == clean["nft"]
    finally:
        rc = h.stop()
    assert rc == 0, h.log
    assert "Traceback" not in h.log, h.log


async def client_fallback_round(bus_stack, lab) -> str:
    """SetSteeringFallback over D-Bus: refused without the steer action, applied with it, and
    cleared by the helper when the client that set it leaves the bus."""
    from test_helper import READ

    from mhgui.helper.client import HelperClient, InvalidArguments, NotAuthorized

    def table_all() -> str:
        return lab.ip(lab.node, "-6", "route", "show", "table", "all")

    async with HelperClient(bus_stack.address) as admin:
        rid = await admin.add_steering_rule("2001:db8:5::/48", "b0")
    def on(dev: str) -> bool:
        return any(x.startswith("2001:db8:5::/48") and f"dev {dev}" in x for x in table_all().splitlines())

    _wait_for(lambda: on("b0"), "the rule on b0")
    client = HelperClient(bus_stack.address)
    bus_stack.allow(READ, STEER)  # steering itself is not enough: the fallback has its own action
    with pytest.raises(NotAuthorized):
        await client.set_steering_fallback({"b0": "a0"})
    line = next(x for x in table_all().splitlines() if x.startswith("2001:db8:5::/48"))
    assert "dev b0" in line
    bus_stack.allow(READ, FALLBACK)
    with pytest.raises(InvalidArguments):
        await client.set_steering_fallback({"b0": "no/such"})
    await client.set_steering_fallback({"b0": "a0"})
    [listed] = await client.list_steering_rules()
    assert listed["via"] == "a0" and listed["in_kernel"] is True
    line = next(x for x in table_all().splitlines() if x.startswith("2001:db8:5::/48"))
    assert "dev a0" in line and f"src {COA_A}" in line
    await client.close()  # the app is gone: the rule goes back to b0 by itself
    await asyncio.to_thread(_wait_for, lambda: on("b0"), "the helper to drop the fallback of a client that left")
    async with HelperClient(bus_stack.address) as other:
        [listed] = await other.list_steering_rules()
        assert listed["via"] == "b0"
    bus_stack.allow(READ, STEER)
    return rid


@netns_only
def test_unprivileged_user_cannot_steer(bus_stack, slab, tmp_path):
    from test_helper import _dbus_send

    bus_stack.reset()
    bus_stack.allow(STEER)
    h = _start_helper(bus_stack, slab, tmp_path)
    try:
        r = _dbus_send(bus_stack, "AddSteeringRule", "dict:string:string:destination,2001:db8:5::/48")
        assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
        assert bus_stack.auth_calls() == []
    finally:
        assert h.stop() == 0
    assert str(RULE_PRIORITY) not in slab.ip(slab.node, "-6", "rule", "show")
