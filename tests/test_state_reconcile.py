"""A re-dump reconciled with the events that arrived while it ran (issue 13.3 and 14e), as pure functions.

A kernel model runs random operations (addresses added, changed, refreshed,
removed; a link removed with its addresses, re-added, going down), each with
the netlink events the kernel sends. A dump runs through the tables while the
operations go on: it passes each key once, in order, at a random moment, and
sees that key as it is then (a consistent dump: no ``NLM_F_DUMP_INTR``). The
source reads every event sent until the dump ended (and possibly more), merges
them into the dump (:func:`merge_dump`) and the store reconciles the result with
a model that may be stale in any way (events lost before the re-dump); the
remaining events follow one by one.

What must hold, for every interleaving:

- the changes the snapshot gives are exactly the differences between the model
  before and the kernel at that point: each once, nothing else (an address
  present before and in the kernel unchanged is never "removed and re-added");
- afterwards the model equals the kernel, and replaying the whole change stream
  (what ``mhctl monitor`` prints, one line per change) over the model before
  gives the kernel's final tables.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import given, settings, strategies as st

from mhgui.core.model import Address, AddressFlag, AddressKey, Interface, InterfaceKind, address_changed
from mhgui.core.state import (
    AddressRemoved, AddressUpsert, LinkRemoved, LinkUpsert, NetlinkSnapshot, StateStore, merge_dump,
)

LINKS = (2, 3)
POOL = [AddressKey(i, f"2001:db8:{i}::{n:x}", 64) for i in LINKS for n in range(1, 7)]
FLAGS = (AddressFlag(0), AddressFlag.DEPRECATED, AddressFlag.TENTATIVE, AddressFlag.MANAGETEMPADDR)
LIFETIMES = (None, 100.0, 250.0, 900.0)  # valid_until deadlines; finite ones differ only in countdown


def iface(ifindex: int, up: bool = True) -> Interface:
    return Interface(ifindex, f"eth{ifindex}", InterfaceKind.ETHERNET, admin_up=True, oper_up=up, carrier=up,
                     operstate="up" if up else "down")


def addr(key: AddressKey, flags: AddressFlag, valid: float | None) -> Address:
    return Address(key.ifindex, key.address, key.prefixlen, flags=flags, valid_until=valid,
                   preferred_until=valid)


@dataclass
class Kernel:
    links: dict[int, Interface] = field(default_factory=dict)
    addrs: dict[AddressKey, Address] = field(default_factory=dict)

    def copy(self) -> "Kernel":
        return Kernel(dict(self.links), dict(self.addrs))

    def do(self, op: tuple) -> list:
        """Apply one operation; returns the events the kernel sends for it, in order."""
        kind = op[0]
        if kind == "set":  # RTM_NEWADDR: added, flags changed, or lifetimes restarted
            _, key, flags, valid = op
            if key.ifindex not in self.links:
                return []
            a = addr(key, flags, valid)
            self.addrs[key] = a
            return [AddressUpsert(a)]
        if kind == "del":
            _, key = op
            return [AddressRemoved(self.addrs.pop(key).key)] if key in self.addrs else []
        if kind == "link-del":  # RTM_DELADDR for each address, then RTM_DELLINK
            _, ifindex = op
            if ifindex not in self.links:
                return []
            out = [AddressRemoved(self.addrs.pop(k).key) for k in [k for k in self.addrs if k.ifindex == ifindex]]
            del self.links[ifindex]
            return out + [LinkRemoved(ifindex)]
        _, ifindex, up = op  # "link": RTM_NEWLINK (added, or carrier changed)
        self.links[ifindex] = iface(ifindex, up)
        return [LinkUpsert(self.links[ifindex])]


operations = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(POOL), st.sampled_from(FLAGS), st.sampled_from(LIFETIMES)),
    st.tuples(st.just("del"), st.sampled_from(POOL)),
    st.tuples(st.just("link-del"), st.sampled_from(LINKS)),
    st.tuples(st.just("link"), st.sampled_from(LINKS), st.booleans()),
)
address_maps = st.dictionaries(st.sampled_from(POOL), st.tuples(st.sampled_from(FLAGS), st.sampled_from(LIFETIMES)))


@st.composite
def scenarios(draw):
    """(model before, kernel at bind time, operations, when the dump passes each key, how far events were read)."""
    kernel = Kernel({i: iface(i) for i in LINKS})
    for key, (flags, valid) in draw(address_maps).items():
        kernel.addrs[key] = addr(key, flags, valid)
    # the model before: the kernel as it was some lost events ago (anything, really)
    stale_links = draw(st.sets(st.sampled_from(LINKS)))
    stale = NetlinkSnapshot(tuple(iface(i, draw(st.booleans())) for i in sorted(stale_links)),
                            tuple(addr(k, f, v) for k, (f, v) in draw(address_maps).items()
                                  if k.ifindex in stale_links))
    ops = draw(st.lists(operations, max_size=25))
    n = len(ops)
    # the dump reads the links, then each address key in order, at nondecreasing moments
    # (moment t = after the first t operations)
    moments = sorted(draw(st.lists(st.integers(0, n), min_size=1 + len(POOL), max_size=1 + len(POOL))))
    # the source has read every event sent before the dump ended, perhaps some more
    read_upto = draw(st.integers(moments[-1], n))
    return stale, kernel, ops, moments, read_upto


def run_dump(kernel: Kernel, ops: list, moments: list[int]) -> tuple[NetlinkSnapshot, list[Kernel], list[list]]:
    """The kernel's states after each operation, the events of each operation, and the dump."""
    states, events = [kernel.copy()], []
    for op in ops:
        events.append(kernel.do(op))
        states.append(kernel.copy())
    at_links = states[moments[0]]
    links = tuple(at_links.links.values())
    addrs = tuple(states[t].addrs[k] for k, t in zip(POOL, moments[1:]) if k in states[t].addrs)
    return NetlinkSnapshot(links, addrs), states, events


def expected_diff(before: StateStore, after: Kernel) -> Counter:
    want: Counter = Counter()
    old_a, old_l = before.state.addresses, before.state.interfaces
    for k in old_a.keys() - after.addrs.keys():
        want["address-removed", k] += 1
    for k in after.addrs.keys() - old_a.keys():
        want["address-added", k] += 1
    for k in after.addrs.keys() & old_a.keys():
        if address_changed(old_a[k], after.addrs[k]):
            want["address-changed", k] += 1
    for i in old_l.keys() - after.links.keys():
        want["link-removed", i] += 1
    for i in after.links.keys() - old_l.keys():
        want["link-added", i] += 1
    for i in after.links.keys() & old_l.keys():
        if old_l[i] != after.links[i]:
            want["link-changed", i] += 1
    return want


def observed(changes) -> Counter:
    got: Counter = Counter()
    for c in changes:
        kind = "link-changed" if c.kind in ("link-up", "link-down") else c.kind
        got[kind, c.key if c.kind.startswith("address") else c.ifindex] += 1
    return got


def replay(links: set, addrs: set, changes) -> tuple[set, set]:
    """What a reader of the change stream alone (``mhctl monitor``) ends up knowing."""
    for c in changes:
        if c.kind == "address-added":
            assert c.key not in addrs, f"added twice: {c}"
            addrs.add(c.key)
        elif c.kind == "address-removed":
            assert c.key in addrs, f"removed while absent: {c}"
            addrs.discard(c.key)
        elif c.kind == "link-added":
            assert c.ifindex not in links
            links.add(c.ifindex)
        elif c.kind == "link-removed":
            assert c.ifindex in links
            links.discard(c.ifindex)
    return links, addrs


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_redump_merged_with_events_announces_each_difference_once(scenario):
    stale, kernel, ops, moments, read_upto = scenario
    store = StateStore()
    store.apply(stale)
    links0, addrs0 = set(store.state.interfaces), set(store.state.addresses)
    before = StateStore()
    before.apply(stale)

    dump, states, events = run_dump(kernel, ops, moments)
    received = [e for evs in events[:read_upto] for e in evs]
    later = [e for evs in events[read_upto:] for e in evs]

    changes = store.apply(merge_dump(dump, received))
    at_merge = states[read_upto]
    assert observed(changes) == expected_diff(before, at_merge), "snapshot changes != differences"
    assert store.state.addresses == at_merge.addrs
    assert {i: store.netlink_links[i] for i in store.netlink_links} == at_merge.links

    stream = list(changes)
    for e in later:
        stream += store.apply(e)
    final = states[-1]
    assert store.state.addresses == final.addrs and store.state.interfaces == final.links
    assert replay(links0, addrs0, stream) == (set(final.links), set(final.addrs))
    # a key the same before and at the end, and untouched by any later event, is never announced
    touched_later = {e.address.key if isinstance(e, AddressUpsert) else e.key
                     for e in later if isinstance(e, (AddressUpsert, AddressRemoved))}
    for k in set(before.state.addresses) & set(final.addrs):
        if k not in touched_later and not address_changed(before.state.addresses[k], final.addrs[k]):
            assert all(c.key != k for c in stream), f"{k} unchanged but announced"


@settings(max_examples=200, deadline=None)
@given(address_maps, st.lists(operations, max_size=20))
def test_merge_is_the_kernel_when_the_dump_is_taken_before_every_event(initial, ops):
    """All events after the dump's last entry: the merge is the dump with the events applied in order."""
    kernel = Kernel({i: iface(i) for i in LINKS})
    for key, (flags, valid) in initial.items():
        kernel.addrs[key] = addr(key, flags, valid)
    dump = NetlinkSnapshot(tuple(kernel.links.values()), tuple(kernel.addrs.values()))
    events = [e for op in ops for e in kernel.do(op)]
    merged = merge_dump(dump, events)
    assert {a.key: a for a in merged.addresses} == kernel.addrs
    assert {i.ifindex: i for i in merged.interfaces} == kernel.links
    assert len(merged.addresses) == len(kernel.addrs)
