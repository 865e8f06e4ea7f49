"""Issue 14: adding (or removing) one steering rule costs the same at 10 and at 10,000 rules.

Pure: :class:`mhgui.core.steering_planner.SteeringPlanner`, changed one rule at a time, against the
planner as it was before (tests/steering_oracle.py: everything re-planned), after any sequence of
additions and removals, on generated nodes (nested destinations, on-link prefixes, two routers with
their own prefixes, missing interfaces, failover substitutes); the indexed state functions against the
linear ones; the journal replayed in any order. Files: the state store (steering.json + journal) on a
real file system, a full one included (a small tmpfs). Kernel (root): what one change costs in netlink
messages, next-hop decisions and bytes written does not depend on the number of rules, and the kernel
after incremental changes is what a full reconcile makes.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import random
import subprocess

import pytest
import steering_oracle as oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netns import Lab, netns_available

from mhgui.core import steering as core
from mhgui.core.ra import Advert
from mhgui.core.steering import SteeringError, SteeringState, Uplink
from mhgui.core.steering_planner import SteeringPlanner

NEED = netns_available()
netns_only = pytest.mark.skipif(NEED is not None, reason=NEED or "")

# --------------------------------------------------------------------------- pure: the planner

LINKS = {
    "a0": Uplink(2, "2001:db8:a::2", "fe80::1", ("2001:db8:a::/64",), "10.1.0.2", "10.1.0.1", ("10.1.0.0/24",)),
    "b0": Uplink(3, "2001:db8:b::2", "2001:db8:b::1", ("2001:db8:b::/64",)),
    "c0": Uplink(4, None, None, ("2001:db8:c::/64",)),  # an address, but none usable
    # one link, two routers, each advertising its own prefix (two providers on one LAN)
    "e0": Uplink(5, "2001:db8:e1::5", "fe80::e1", ("2001:db8:e1::/64", "2001:db8:e2::/64"),
                 addresses=("2001:db8:e1::5", "2001:db8:e2::5"), routers=("fe80::e1", "fe80::e2"),
                 adverts=(Advert(5, "fe80::e1", "2001:db8:e1::/64", True),
                          Advert(5, "fe80::e2", "2001:db8:e2::/64", True))),
    # two routers and no advertisement: a source there is refused
    "f0": Uplink(6, "2001:db8:f1::5", "fe80::f1", ("2001:db8:f1::/64",), addresses=("2001:db8:f1::5",),
                 routers=("fe80::f1", "fe80::f2")),
    "g0": Uplink(7, None, None, (), "10.7.0.2", None, ("10.7.0.0/16",)),  # IPv4 only, no router
    "h0": Uplink(8, "2001:db8:1:8::2", "2001:db8:1:8::1", ("2001:db8:1::/48", "2001:db8:1:8::/64")),  # nested
}
NAMES = sorted(LINKS) + ["wlan9"]  # (wlan9: never there)

v6_dest = st.one_of(
    # 2001:db8:HI:LO::/PLEN: nested often, and now and then on (or around) an on-link prefix
    st.builds(lambda hi, lo, plen: str(ipaddress.IPv6Network(((0x2001_0DB8 << 96 | hi << 80 | lo << 64)
                                                              >> (128 - plen) << (128 - plen), plen))),
              st.sampled_from([4, 5, 0xA, 0xE1, 0xE2, 0x10]), st.sampled_from([0, 1, 0x80]),
              st.sampled_from([40, 46, 47, 48, 56, 63, 64, 65])),
    st.sampled_from(["::/0", "2000::/3", "2001:db8::/32", "2001:db8:1:8::/64", "2001:db8:1:8:1::/80",
                     "2001:db8:5::1/128", "2001:db8:a::/80"]))
v4_dest = st.sampled_from(["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.0.0/24", "10.1.0.128/25", "10.7.0.0/16",
                           "10.7.1.0/24", "192.0.2.0/24", "192.0.2.7/32"])
# a rule's source: one of its interface's prefixes or addresses, or another's (it then waits)
OWN = {"a0": ["2001:db8:a::/64", "10.1.0.0/24"], "b0": ["2001:db8:b::2"], "c0": ["2001:db8:c::/64"],
       "e0": ["2001:db8:e1::/64", "2001:db8:e2::/64", "2001:db8:e2::5"], "f0": ["2001:db8:f1::/64"],
       "g0": ["10.7.0.2"], "h0": ["2001:db8:1::/48", "2001:db8:1:8::/64"], "wlan9": ["2001:db8:99::/64"]}


def _spec_for(iface: str):
    own6 = [x for x in OWN[iface] if ":" in x] + ["2001:db8:e2::/64"]
    own4 = [x for x in OWN[iface] if ":" not in x] + ["10.99.0.0/16"]
    kinds = {
        "plain": st.tuples(st.lists(st.sampled_from([0, 0, 1]).flatmap(lambda k: (v6_dest, v4_dest)[k]), min_size=1,
                                    max_size=3, unique=True), st.just(iface), st.none()),
        "source6": st.tuples(st.lists(v6_dest, min_size=1, max_size=2, unique=True), st.just(iface),
                             st.sampled_from(own6)),
        "source4": st.tuples(st.lists(v4_dest, min_size=1, max_size=2, unique=True), st.just(iface),
                             st.sampled_from(own4)),
    }
    return st.sampled_from(["plain", "plain", "source6", "source4"]).flatmap(kinds.__getitem__)


# interfaces that can carry rules come up more often
rule_spec = st.sampled_from(["a0", "a0", "b0", "b0", "e0", "e0", "h0", "g0", "f0", "c0", "wlan9"]).flatmap(_spec_for)
# three additions for one removal (one_of would not weigh them: sampled_from does)
ops_st = st.lists(st.sampled_from(["add", "add", "add", "remove"]).flatmap(
    lambda op: st.tuples(st.just(op), rule_spec if op == "add" else st.integers(0, 99))), min_size=6, max_size=40)
FALLBACKS = [{}, {"b0": "a0"}, {"a0": "e0", "b0": "e0"}, {"b0": "z0"}, {"e0": "h0", "wlan9": "b0"}]


def _make(i: int, spec) -> core.SteeringRule:
    dests, iface, source = spec
    request: dict = {"destinations": dests, "interface": iface}
    if source is not None:
        request["source"] = source
    return core.rule_from_request(request, rule_id=f"r{i}", now=float(i))


def _check_change(change, routes: set, rules: set) -> tuple[set, set]:
    """The kernel after ``change``: it only adds what is not there and removes what is."""
    assert not change.routes_added & routes and change.routes_removed <= routes
    assert not change.rules_added & rules and change.rules_removed <= rules
    return (routes - change.routes_removed) | change.routes_added, (rules - change.rules_removed) | change.rules_added


@settings(max_examples=300, deadline=None)
@given(present=st.sets(st.sampled_from(sorted(LINKS)), min_size=4), fallback=st.sampled_from(FALLBACKS),
       ops=ops_st)
def test_one_rule_at_a_time_ends_where_a_fresh_plan_does(present, fallback, ops):
    """After any sequence of additions and removals (refused ones included), the planner that changed one
    rule at a time holds the plan that planning everything afresh gives (the pre-issue-14 planner), and the
    changes it handed out, applied in turn, make exactly that plan; the indexed state functions give the
    states (rules, slots, next slot) and the refusals the linear ones gave."""
    ups = {n: LINKS[n] for n in present}
    state = old = SteeringState()
    planner = SteeringPlanner(ups, {})
    routes: set = set()
    rules: set = set()
    for i, (op, arg) in enumerate(ops):
        if op == "add":
            rule = _make(i, arg)
            try:
                new = core.add_rule(state, rule)
            except SteeringError as e:
                with pytest.raises(SteeringError) as was:
                    oracle.add_rule(old, rule)
                assert (was.value.kind, str(was.value)) == (e.kind, str(e))
                continue
            old = oracle.add_rule(old, rule)
            planner.set_slots(core.with_fallback(new, fallback).slots)
            planner.add(core.fallback_rule(rule, fallback))
        else:
            if not state.rules:
                continue
            rid = state.rules[arg % len(state.rules)].id
            new = core.remove_rule(state, rid)
            old = oracle.remove_rule(old, rid)
            planner.remove(rid)
            planner.set_slots(core.with_fallback(new, fallback).slots)
        state = new
        assert state == old
        eff = core.with_fallback(state, fallback)
        want = oracle.plan_kernel_state(eff.rules, ups, eff.slots)
        assert planner.plan() == want
        routes, rules = _check_change(planner.take_change(), routes, rules)
        assert routes == set(want.routes) and rules == set(want.rules)
    assert core.plan_kernel_state(core.with_fallback(state, fallback).rules, ups,
                                  core.with_fallback(state, fallback).slots) == planner.plan()
    # the index of a state that handed its index on is built again when asked
    assert all(old.rule(r.id) == r for r in old.rules)


NESTED = ["::/0", "2000::/3", "2001:db8::/32", "2001:db8::/44", "2001:db8:4::/46", "2001:db8:4::/47",
          "2001:db8:4::/48", "2001:db8:5::/48", "2001:db8:4::/63", "2001:db8:4::/64", "2001:db8:4::/65",
          "2001:db8:4:0:8000::/65", "2001:db8:4::1/128", "2001:db8:a::/63", "2001:db8:e0::/44", "2001:db8:2::/47",
          "0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/9", "10.1.0.0/23", "10.1.0.0/24", "10.5.0.0/16", "10.5.0.0/17"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(NESTED), st.sampled_from(["a0", "b0", "e0", "h0", "g0"])), min_size=2,
                max_size=14, unique_by=lambda t: t[0]),
       st.lists(st.integers(0, 13), max_size=6), st.randoms(use_true_random=False))
def test_nested_destinations_in_any_order(pairs, removals, rnd):
    """Destinations nested one bit deep and more, on usable interfaces, added in any order, some removed
    and added again: each step ends where a fresh plan does."""
    planner = SteeringPlanner(LINKS, {})
    state = SteeringState()
    ops = [("add", i) for i in range(len(pairs))] + [("remove", i % len(pairs)) for i in removals]
    rnd.shuffle(ops)
    routes: set = set()
    policy: set = set()
    for op, i in ops:
        rule = core.rule_from_request({"destination": pairs[i][0], "interface": pairs[i][1]}, rule_id=f"n{i}", now=0)
        if op == "add" and state.rule(rule.id) is None:
            state = core.add_rule(state, rule)
            planner.set_slots(state.slots)
            planner.add(rule)
        elif op == "remove" and state.rule(rule.id) is not None:
            state = core.remove_rule(state, rule.id)
            planner.remove(rule.id)
            planner.set_slots(state.slots)
        want = oracle.plan_kernel_state(state.rules, LINKS, state.slots)
        assert planner.plan() == want
        routes, policy = _check_change(planner.take_change(), routes, policy)
        assert (routes, policy) == (set(want.routes), set(want.rules))


def test_a_removed_covering_rule_gives_back_what_it_threw_out():
    """The throws of a covering rule go with it, those another covering rule of the same slot needs stay."""
    up = {"a0": LINKS["a0"], "b0": LINKS["b0"]}
    r = [core.rule_from_request({"destination": d, "interface": i}, rule_id=f"r{k}", now=0.0)
         for k, (d, i) in enumerate([("2001:db8:5::/48", "a0"), ("::/0", "b0"), ("2001:db8::/32", "b0")])]
    planner = SteeringPlanner(up, {"a0": 1, "b0": 2})
    planner.add_all(r)
    planner.take_change()
    throw = core.Route(6, core.TABLE_BASE + 2, "2001:db8:5::/48", "throw")
    assert throw in planner.plan().routes
    planner.remove("r1")  # ::/0 goes; 2001:db8::/32 still covers a0's /48 in b0's table
    assert throw in planner.plan().routes
    gone = planner.take_change().routes_removed
    assert core.Route(6, core.TABLE_BASE + 2, "2001:db8:a::/64", "throw") not in gone  # /32 still covers it
    assert core.Route(6, core.TABLE_BASE + 2, "::1/128", "throw") in gone  # ::/0 alone covered it
    planner.remove("r2")
    assert throw not in planner.plan().routes and throw in planner.take_change().routes_removed


# --------------------------------------------------------------------------- pure: the journal


@settings(max_examples=150, deadline=None)
@given(ops=ops_st, cut=st.integers(0, 30), rnd=st.randoms(use_true_random=False))
def test_the_journal_replayed_in_any_order_gives_the_state(ops, cut, rnd):
    """A state file written after change k and the journal lines (in any order, some in both the journal
    and its predecessor) give the state after the last change; a missing change stops the replay there,
    with a warning; a line that is not a change, or two different changes with one number, are refused."""
    state = SteeringState()
    states, lines = [state], []
    for i, (op, arg) in enumerate(ops):
        try:
            if op == "add":
                rule = _make(i, arg)
                state, line = core.add_rule(state, rule), core.render_change(len(lines) + 1, add=rule)
            elif state.rules:
                rid = state.rules[arg % len(state.rules)].id
                state, line = core.remove_rule(state, rid), core.render_change(len(lines) + 1, remove=rid)
            else:
                continue
        except SteeringError:
            continue
        states.append(state)
        lines.append(line)
    k = min(cut, len(lines))
    snap, seq = core.parse_snapshot(core.render_state(states[k], k))
    assert (snap, seq) == (states[k], k)
    numbered = [("steering.journal", i + 1, x.rstrip(b"\n")) for i, x in enumerate(lines)]
    shuffled = numbered + rnd.sample(numbered, len(numbered) // 2)  # (some twice: journal and its backup)
    rnd.shuffle(shuffled)
    got, last, warnings = core.replay(snap, seq, shuffled)
    assert (got, last, warnings) == (state, len(lines), [])
    if len(lines) - k >= 2:  # one change missing: the replay stops before it
        gap = rnd.randrange(k + 1, len(lines))
        got, last, warnings = core.replay(snap, seq, [x for x in numbered if x[1] != gap])
        assert (got, last) == (states[gap - 1], gap - 1)
        assert f"change {gap}, before them, is missing" in warnings[0]
    if lines:
        bad = rnd.randrange(len(lines))
        with pytest.raises(SteeringError) as e:
            core.replay(SteeringState(), 0, [*numbered[:bad], ("steering.journal", bad + 1, b'{"seq": 1}')])
        assert e.value.kind == "corrupt" and f"steering.journal line {bad + 1}" in str(e.value)
        other = core.render_change(bad + 1, remove="x-other").rstrip(b"\n")
        with pytest.raises(SteeringError) as e:
            core.replay(SteeringState(), 0, [*numbered, ("steering.journal.bak", 1, other)])
        assert "differently" in str(e.value) or "cannot be applied" in str(e.value)


@pytest.mark.parametrize("line,words", [
    (b"", "not a JSON object"),
    (b"[]", 'not {"seq": N'),
    (b'{"seq": 0, "remove": "a"}', "seq must be"),
    (b'{"seq": true, "remove": "a"}', "seq must be"),
    (b'{"seq": 1, "remove": "../x"}', "is not a rule id"),
    (b'{"seq": 1, "add": {"id": "a"}}', "created"),
    (b'{"seq": 1, "add": {}, "remove": "a"}', 'not {"seq": N'),
    (b"\xff", "not a JSON object"),
    (b'{"seq": 1, "remove": "' + b"a" * 9000 + b'"}', "longer than"),
])
def test_a_damaged_journal_line_is_refused(line, words):
    with pytest.raises(SteeringError) as e:
        core.parse_change(line)
    assert e.value.kind == "corrupt" and words in str(e.value)


# --------------------------------------------------------------------------- files: the store


def _rule(i: int, iface: str = "b0") -> core.SteeringRule:
    return core.rule_from_request({"destination": f"2001:db8:{0x1000 + i:x}::/48", "interface": iface},
                                  rule_id=f"id{i:06d}", now=1.0)


def _fill(store, n: int, start: int = 0, state: SteeringState | None = None) -> SteeringState:
    state = state if state is not None else SteeringState()
    for i in range(start, start + n):
        rule = _rule(i)
        state = core.add_rule(state, rule)
        store.record(state, add=rule)
    return state


def test_a_change_is_one_journal_line_and_the_state_file_is_rewritten_once_per_n(tmp_path):
    from mhgui.helper.steering_store import StateStore

    store = StateStore(str(tmp_path), compact_after=8)
    state = _fill(store, 7)
    journal, path = tmp_path / "steering.journal", tmp_path / "steering.json"
    assert not path.exists() and len(journal.read_bytes().splitlines()) == 7
    state = _fill(store, 1, 7, state)  # the 8th change folds the journal into the state file
    assert core.parse_snapshot(path.read_text()) == (state, 8) and not journal.exists()
    inode = path.stat().st_ino
    state = _fill(store, 7, 8, state)
    assert path.stat().st_ino == inode and len(journal.read_bytes().splitlines()) == 7
    state = _fill(store, 1, 15, state)  # 8 changes since: rewritten
    assert path.stat().st_ino != inode and core.parse_snapshot(path.read_text()) == (state, 16)
    inode = path.stat().st_ino
    state = _fill(store, 15, 16, state)  # the file has 16 rules: the next rewrite waits for 16 changes
    assert path.stat().st_ino == inode and len(journal.read_bytes().splitlines()) == 15
    state = _fill(store, 1, 31, state)
    assert path.stat().st_ino != inode and core.parse_snapshot(path.read_text()) == (state, 32)
    assert StateStore(str(tmp_path)).load() == state
    assert json.loads((tmp_path / "steering.json.bak").read_text())["seq"] == 16


def test_a_line_cut_short_is_ignored_and_cut_off(tmp_path, caplog):
    from mhgui.helper.steering_store import StateStore

    store = StateStore(str(tmp_path))
    state = _fill(store, 3)
    journal = tmp_path / "steering.journal"
    whole = journal.read_bytes()
    journal.write_bytes(whole + core.render_change(4, add=_rule(3))[:25])  # the helper died mid-write
    again = StateStore(str(tmp_path))
    assert again.load() == state and "cut short" in caplog.text
    state = _fill(again, 1, 10, state)
    assert journal.read_bytes() == whole + core.render_change(4, add=_rule(10))
    assert StateStore(str(tmp_path)).load() == state


def test_a_damaged_line_in_the_middle_makes_the_state_corrupt(tmp_path):
    from mhgui.helper.steering_store import StateStore

    _fill(StateStore(str(tmp_path)), 3)
    journal = tmp_path / "steering.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(lines[0] + b'{"seq": 2, "add": 5}\n' + lines[2])
    with pytest.raises(SteeringError) as e:
        StateStore(str(tmp_path)).load()
    assert e.value.kind == "corrupt" and "steering.journal line 2" in str(e.value)
    assert journal.read_bytes() == lines[0] + b'{"seq": 2, "add": 5}\n' + lines[2]  # untouched


def test_lost_changes_are_numbered_past_and_the_next_change_rewrites(tmp_path, caplog):
    """State file damaged and the journal's backup gone: what can be reached is kept, the rest is
    reported; the next change is numbered after every change seen and rewrites the state file."""
    from mhgui.helper.steering_store import StateStore

    store = StateStore(str(tmp_path), compact_after=3)
    state = _fill(store, 3)  # rewritten at 3: steering.json has 3, journal.bak 1..3
    assert core.parse_snapshot((tmp_path / "steering.json").read_text())[1] == 3
    state = _fill(store, 3, 3, state)  # rewritten at 6: .bak has 3, journal.bak 4..6
    state = _fill(store, 2, 6, state)  # journal 7, 8
    (tmp_path / "steering.json").write_text("{")
    (tmp_path / "steering.journal.bak").unlink()
    again = StateStore(str(tmp_path))
    got = again.load()
    assert [r.id for r in got.rules] == [r.id for r in state.rules[:3]]
    assert "changes 7..8 are not applied: change 4, before them, is missing" in caplog.text
    assert again.seq == 8
    rule = _rule(50)
    after = core.add_rule(got, rule)
    again.record(after, add=rule)
    assert core.parse_snapshot((tmp_path / "steering.json").read_text()) == (after, 9)
    assert StateStore(str(tmp_path)).load() == after


@pytest.fixture
def small_fs(tmp_path):
    """A 64 KiB tmpfs (root): writes there run out of space for real."""
    if os.geteuid() != 0:
        pytest.skip("needs root (mount)")
    where = tmp_path / "small"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                      capture_output=True, check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_a_full_disk_takes_the_cut_line_back(small_fs):
    from mhgui.helper.steering_store import StateStore

    store = StateStore(str(small_fs), compact_after=10**6)
    state = SteeringState()
    filler = small_fs / "filler"
    with open(filler, "wb") as f:
        try:
            f.write(b"x" * (64 << 10))
        except OSError:
            pass
    os.truncate(filler, os.path.getsize(filler) - 4096)  # room for one page of journal (~30 lines)
    i = 0
    with pytest.raises(OSError) as e:
        while True:
            rule = _rule(i)
            new = core.add_rule(state, rule)
            store.record(new, add=rule)
            state, i = new, i + 1
    assert e.value.errno == errno.ENOSPC and 10 < i < 60
    assert (small_fs / "steering.journal").read_bytes().endswith(b"\n")
    assert StateStore(str(small_fs)).load() == state
    os.unlink(filler)
    rule = _rule(99)
    new = core.add_rule(state, rule)
    store.record(new, add=rule)
    assert StateStore(str(small_fs)).load() == new


# --------------------------------------------------------------------------- the kernel (root)


@pytest.fixture
def node():
    if NEED:
        pytest.skip(NEED)
    lab = Lab("st14")
    try:
        for dev, n in (("a0", "a"), ("b0", "b")):
            lab.uplink(dev)
            lab.ip("-6", "addr", "add", f"2001:db8:{n}::2/64", "dev", dev, "nodad")
            lab.ip("-4", "addr", "add", f"10.{1 if n == 'a' else 2}.0.2/24", "dev", dev)
        lab.ip("-6", "route", "add", "default", "via", "2001:db8:a::1", "dev", "a0", "metric", "1024")
        lab.ip("-6", "route", "add", "default", "via", "2001:db8:b::1", "dev", "b0", "metric", "2048")
        lab.ip("-4", "route", "add", "default", "via", "10.2.0.1", "dev", "b0")
        yield lab
    finally:
        lab.close()


def _kernel(ns: str):
    from pyroute2 import IPRoute

    from mhgui.helper.steering import read_kernel

    with IPRoute(netns=ns) as ipr:
        routes, rules = read_kernel(ipr)
    return set(routes), set(rules)


class _Work:
    """What one engine call costs, counted: netlink messages decoded (pyroute2's parser), next-hop
    decisions (mhgui.core.nexthop.next_hop, as the planner calls it) and bytes written to the state
    directory (files rewritten count whole)."""

    def __init__(self, monkeypatch, state_dir: str) -> None:
        from pyroute2.netlink import marshal

        from mhgui.core import steering as steering_core

        self.messages = self.hops = 0
        self.state_dir = state_dir
        parse_one = marshal.Marshal.parse_one_message
        hop = steering_core.next_hop

        def counting_parse(*args, **kwargs):
            self.messages += 1
            return parse_one(*args, **kwargs)

        def counting_hop(*args, **kwargs):
            self.hops += 1
            return hop(*args, **kwargs)

        monkeypatch.setattr(marshal.Marshal, "parse_one_message", counting_parse)
        monkeypatch.setattr(steering_core, "next_hop", counting_hop)

    def files(self) -> dict[str, tuple[int, int]]:
        out = {}
        for name in os.listdir(self.state_dir):
            s = os.stat(os.path.join(self.state_dir, name))
            out[name] = (s.st_ino, s.st_size)
        return out

    def measure(self, fn) -> tuple[int, int, int]:
        before, self.messages, self.hops = self.files(), 0, 0
        fn()
        after = self.files()
        written = sum(size if before.get(name, (None, 0))[0] != ino else size - before[name][1]
                      for name, (ino, size) in after.items())
        return self.messages, self.hops, written


@netns_only
def test_one_change_does_the_same_work_with_5_and_with_1000_rules(node, tmp_path, monkeypatch):
    """Before issue 14 an added rule re-planned every rule (a next-hop decision each), decoded every
    steering route of every table when it read the main table's default routes, and rewrote the whole
    state file and its backup; now what it decodes, decides and writes is the same with 5 and 1,000 rules."""
    from mhgui.helper.steering import SteeringEngine

    costs = {}
    for n in (5, 1000):
        state_dir = str(tmp_path / f"state{n}")
        eng = SteeringEngine(state_dir, netns=node.ns, clock=lambda: 1.0)
        rules = [core.rule_from_request({"destination": f"2001:db8:{0x1000 + i:x}::/48", "interface": "b0"},
                                        rule_id=f"r{i}", now=1.0) for i in range(n)]
        eng.store.rewrite(core.state_with(rules))
        eng.reconcile()  # (the start-up)
        eng.add({"destination": "192.0.2.0/24", "interface": "b0"})
        work = _Work(monkeypatch, state_dir)
        added: list[core.SteeringRule] = []
        cost_add = work.measure(lambda eng=eng, added=added: added.append(
            eng.add({"destination": "2001:db8:ff00::/48", "interface": "b0"})))
        cost_remove = work.measure(lambda eng=eng, added=added: eng.remove(added[0].id))
        costs[n] = (cost_add, cost_remove)
        assert all(eng.kernel_matches().values())
        monkeypatch.undo()
        eng.clear_kernel()
    assert costs[5] == costs[1000], costs
    (_msgs, hops, written), _ = costs[1000]
    assert hops == 0 and 0 < written < 400


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
@netns_only
def test_the_kernel_after_single_changes_is_what_a_full_reconcile_makes(node, tmp_path, seed):
    """Random additions and removals through the engine (each sent to the kernel as its difference, with a
    failover substitute for a while): the kernel holds what a fresh engine's start-up makes of the same
    rules on an empty kernel, and what the plan says."""
    from mhgui.helper.steering import SteeringEngine, SteeringFailure

    rnd = random.Random(seed)
    pool6 = list(dict.fromkeys(str(ipaddress.IPv6Network(((0x2001_0DB8 << 96 | hi << 80) >> (128 - p) << (128 - p), p)))
                               for hi in (0x5, 0x6, 0x50) for p in (32, 40, 48, 64))) + ["::/0", "2001:db8:5::1/128"]
    pool4 = ["0.0.0.0/0", "10.5.0.0/16", "10.5.1.0/24", "192.0.2.0/24"]
    state_dir = str(tmp_path / f"s{seed}")
    eng = SteeringEngine(state_dir, netns=node.ns)
    try:
        for step in range(14):
            if step == 7:
                eng.set_fallback({"b0": "a0"} if rnd.random() < 0.5 else {})
            rules = eng.load().rules
            if rules and rnd.random() < 0.35:
                eng.remove(rnd.choice(rules).id)
                continue
            dests = rnd.sample(pool6 + pool4, rnd.randint(1, 2))
            try:
                eng.add({"destinations": dests, "interface": rnd.choice(["a0", "b0"])})
            except SteeringFailure as e:
                assert e.kind == "Conflict", e.message
        incremental = _kernel(node.ns)
        plan = eng.plan()
        assert incremental == (set(plan.routes), set(plan.rules))
        fallback = eng.fallback
        eng.clear_kernel()
        fresh = SteeringEngine(state_dir, netns=node.ns)
        fresh.fallback = dict(fallback)
        fresh.reconcile()
        assert _kernel(node.ns) == incremental
        assert json.dumps([r.to_json() for r in fresh.load().rules]) == json.dumps(
            [r.to_json() for r in eng.load().rules])
    finally:
        eng.clear_kernel()
