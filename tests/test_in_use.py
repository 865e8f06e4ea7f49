"""One answer to "which uplink is in use" (issue 13.9): mhgui.core.bindings.uplinks_in_use and the binding
table's interface column (resolve_interfaces) say the same, by ifindex, whatever the daemon named."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from mhgui.core.bindings import (
    Binding, BindingState, in_use_fingerprint, in_use_text, resolve_interfaces, uplinks_in_use,
)
from mhgui.core.model import Address, Interface, InterfaceKind, NodeState

NAMES = ["eth0", "eth9", "wlan0", "upA", "upB", "wwan0"]
COAS = [f"2001:db8:{i}::5" for i in range(1, 7)]
HOAS = ["2001:db8:100::1", "2001:db8:200::1"]


@st.composite
def worlds(draw):
    """A node (interfaces with any names, CoAs on some of them) and a binding update list whose interface
    names may be stale (UMIP printed them before a rename) or missing."""
    idx = draw(st.lists(st.integers(2, 12), min_size=1, max_size=5, unique=True))
    names = draw(st.lists(st.sampled_from(NAMES), min_size=len(idx), max_size=len(idx), unique=True))
    state = NodeState(interfaces={i: Interface(i, n, InterfaceKind.ETHERNET, True, True, True, "up")
                                  for i, n in zip(idx, names)})
    for coa in COAS:
        if draw(st.booleans()):
            i = draw(st.sampled_from(idx))
            state.addresses[(i, coa, 64)] = Address(i, coa, 64)
    bindings = []
    for hoa in HOAS:
        for _ in range(draw(st.integers(0, 2))):
            bindings.append(Binding(
                hoa, draw(st.sampled_from(COAS + [hoa])), "2001:db8:100::ff",
                bid=draw(st.none() | st.integers(1, 3)),
                state=draw(st.sampled_from(list(BindingState))), flags=draw(st.sampled_from([("A", "H"), ("A",)])),
                interface=draw(st.none() | st.sampled_from(NAMES)), source=draw(st.sampled_from(["bul", "bul", "bc"]))))
    return state, bindings


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_the_table_and_the_answer_agree_by_ifindex(w):
    state, bindings = w
    uses = uplinks_in_use(bindings, state)
    table = resolve_interfaces(bindings, state)
    holder = {a.address: a.ifindex for a in sorted(state.addresses.values(), key=lambda a: -a.ifindex)}
    for b, shown in zip(bindings, table):
        assert (shown.hoa, shown.coa, shown.state) == (b.hoa, b.coa, b.state)
        if b.coa in holder:  # the interface holding the CoA now, by ifindex: never a stale daemon name
            assert shown.interface == state.interfaces[holder[b.coa]].name
        else:
            assert shown.interface == b.interface
    for hoa, u in uses.items():
        # the answer is one of the HoA's live home registrations, and the table's row for it says the same
        rows = [s for b, s in zip(bindings, table) if b.hoa == hoa and b.coa == u.coa and b.home_registration
                and b.source == "bul" and b.state in (BindingState.REGISTERED, BindingState.WAITING_ACK)]
        assert rows and u.ifindex == holder.get(u.coa)
        if u.ifindex is not None:  # by ifindex: the same name in every row
            assert all(r.interface == u.interface == state.interfaces[u.ifindex].name for r in rows)
        else:  # no interface holds the CoA now: the name a daemon gave, if any
            assert u.interface in {r.interface for r in rows}
        if any(r.state is BindingState.REGISTERED for r in
               (b for b in bindings if b.hoa == hoa and b.home_registration and b.source == "bul" and b.coa != hoa)):
            assert u.acknowledged  # an acknowledged registration wins over one waiting
        assert f"{hoa} through " in in_use_text(uses, [hoa])
    live = {b.hoa for b in bindings if b.source == "bul" and b.home_registration and b.coa != b.hoa
            and b.state in (BindingState.REGISTERED, BindingState.WAITING_ACK)}
    assert set(uses) == live
    assert in_use_fingerprint(uses) == in_use_fingerprint(uplinks_in_use(list(reversed(bindings)), state))


def test_a_renamed_interface_is_named_as_it_is_now():
    state = NodeState(interfaces={2: Interface(2, "eth9", InterfaceKind.ETHERNET, True, True, True, "up")},
                      addresses={(2, COAS[0], 64): Address(2, COAS[0], 64)})
    b = Binding(HOAS[0], COAS[0], "2001:db8:100::ff", state=BindingState.REGISTERED, flags=("A", "H"),
                interface="eth0")  # what the daemon printed before the rename
    assert resolve_interfaces([b], state)[0].interface == "eth9"
    u = uplinks_in_use([b], state)[HOAS[0]]
    assert (u.ifindex, u.interface, u.acknowledged) == (2, "eth9", True)
    assert in_use_text({}, [HOAS[0]]) == f"{HOAS[0]} is not bound"
