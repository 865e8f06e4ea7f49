"""Lifetimes and deprecation from rtnetlink address messages (issue 13.1).

Real ``RTM_NEWADDR`` bytes (encoded and decoded by pyroute2's ``ifaddrmsg``) go
through the source's parser into the store, as on a node that receives router
advertisements:

- a prefix advertised with a preferred lifetime of 0 gives an address that is
  deprecated from its first message, and each refresh (the kernel sends the
  address once with ``IFA_F_DEPRECATED`` cleared, then once with it set again)
  changes nothing: no "address-changed", no flag flip;
- lifetimes that only count down or restart are no change; deprecation, other
  flags, and a lifetime turning finite or infinite are.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from mhgui.core.model import INFINITE_LIFETIME, AddressFlag, address_changed
from mhgui.core.state import AddressUpsert, StateStore
from mhgui.sources.netlink import RTM_NEWADDR, parse_addr

IFINDEX, ADDR = 7, "2001:db8:77:0:857:53ff:fefb:198d"
DEPRECATED = int(AddressFlag.DEPRECATED)

#: flags an RA-made (SLAAC) address may carry besides "deprecated"
other_flags = st.sampled_from([0, int(AddressFlag.MANAGETEMPADDR), int(AddressFlag.STABLE_PRIVACY),
                               int(AddressFlag.NOPREFIXROUTE | AddressFlag.MANAGETEMPADDR)])
finite = st.integers(1, INFINITE_LIFETIME - 1)
elapsed = st.floats(0.0, 86_400.0, allow_nan=False)


def newaddr(flags: int, preferred: int, valid: int) -> ifaddrmsg:
    """An RTM_NEWADDR message as the kernel sends it, decoded from its bytes."""
    m = ifaddrmsg()
    m["header"]["type"] = RTM_NEWADDR
    m["family"], m["prefixlen"], m["scope"], m["index"] = 10, 64, 0, IFINDEX
    m["flags"] = flags & 0xFF
    m["attrs"] = [("IFA_ADDRESS", ADDR), ("IFA_FLAGS", flags),
                  ("IFA_CACHEINFO", {"ifa_preferred": preferred, "ifa_valid": valid, "cstamp": 0, "tstamp": 0})]
    m.encode()
    out = ifaddrmsg(bytes(m.data[:m["header"]["length"]]))
    out.decode()
    return out


def feed(messages: list[tuple[float, ifaddrmsg]]) -> tuple[StateStore, list, list]:
    """Parse each (time, message) and apply it; returns the store, the parsed addresses, the changes."""
    store, parsed, changes = StateStore(), [], []
    store.subscribe(changes.extend)
    for now, msg in messages:
        a = parse_addr(msg, now)
        assert a is not None
        parsed.append(a)
        store.apply(AddressUpsert(a))
    return store, parsed, changes


@settings(max_examples=200, deadline=None)
@given(flags=other_flags, first_flagged=st.booleans(), first_valid=finite,
       refreshes=st.lists(st.tuples(elapsed, finite, st.integers(0, 1)), min_size=1, max_size=6))
def test_prefix_with_preferred_lifetime_0_is_deprecated_at_once_and_refreshes_are_quiet(
        flags, first_flagged, first_valid, refreshes):
    now = 1000.0
    msgs = [(now, newaddr(flags | (DEPRECATED if first_flagged else 0), 0, first_valid))]
    for dt, valid, tick in refreshes:
        now += dt
        # addrconf_prefix_rcv_add_addr: lifetimes restarted, IFA_F_DEPRECATED cleared, notified;
        # then addrconf_verify finds the preferred lifetime over, sets the flag, notifies again
        msgs.append((now, newaddr(flags, 0, valid)))
        msgs.append((now + tick, newaddr(flags | DEPRECATED, 0, max(1, valid - tick))))
    store, parsed, changes = feed(msgs)

    assert all(a.flags & AddressFlag.DEPRECATED for a in parsed), "a message read as not deprecated"
    assert [c.kind for c in changes] == ["address-added"], changes
    assert changes[0].after.flags & AddressFlag.DEPRECATED
    # the newest lifetimes are kept, quietly
    assert store.state.addresses[changes[0].key] == parsed[-1]


lifetime_pair = st.one_of(
    st.tuples(finite, finite).map(sorted).map(tuple),          # preferred <= valid, both finite
    st.tuples(st.just(0), finite),                             # deprecated, still valid
    finite.map(lambda v: (v, INFINITE_LIFETIME)),              # preferred finite, valid infinite
    st.just((INFINITE_LIFETIME, INFINITE_LIFETIME)),           # permanent
    st.just((0, INFINITE_LIFETIME)),
)


@settings(max_examples=300, deadline=None)
@given(flags=other_flags,
       msgs=st.lists(st.tuples(elapsed, st.booleans(), lifetime_pair), min_size=1, max_size=10))
def test_only_what_a_user_sees_counts_as_a_change(flags, msgs):
    """Lifetime countdowns and restarts are no change; deprecation and (in)finiteness are."""
    now, timed = 0.0, []
    for dt, flagged, (preferred, valid) in msgs:
        now += dt
        # the kernel sets the flag only when the preferred lifetime is over, but may lag behind it
        timed.append((now, newaddr(flags | (DEPRECATED if flagged and preferred == 0 else 0), preferred, valid)))
    store, parsed, changes = feed(timed)

    def seen(preferred: int, valid: int) -> tuple:
        return preferred == 0, preferred == INFINITE_LIFETIME, valid == INFINITE_LIFETIME

    states = [seen(p, v) for _, _, (p, v) in msgs]
    at = [0] + [i for i in range(1, len(states)) if states[i] != states[i - 1]]
    assert [c.kind for c in changes] == ["address-added"] + ["address-changed"] * (len(at) - 1), (states, changes)
    for c, i in zip(changes, at):
        assert c.after == parsed[i]
        assert bool(c.after.flags & AddressFlag.DEPRECATED) == states[i][0]
    for a, b, sa, sb in zip(parsed, parsed[1:], states, states[1:]):
        assert address_changed(a, b) == (sa != sb)
    # the newest lifetimes are kept, quietly
    assert store.state.addresses[parsed[-1].key] == parsed[-1]
