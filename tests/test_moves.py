"""What moving a flow means (mhgui.core.moves), decided from real placements (mhgui.core.flows.classify)."""

from __future__ import annotations

from mhgui.core.analysis import analyse
from mhgui.core.bindings import Binding, BindingState
from mhgui.core.capabilities import NO_DAEMON, DaemonCapabilities
from mhgui.core.flows import Flow, classify
from mhgui.core.model import Address, HomeAddress, Interface, InterfaceKind, NodeState
from mhgui.core.moves import move_outcome

HOA = "2001:db8:1::100"
UMIP = DaemonCapabilities(name="umip", connected=True)
FB = DaemonCapabilities(name="mcoa-fb", connected=True, multiple_coas=True, flow_bindings=True)


def node() -> NodeState:
    s = NodeState()
    s.interfaces = {2: Interface(2, "eth0", InterfaceKind.ETHERNET, True, True, True, "up"),
                    3: Interface(3, "wlan0", InterfaceKind.WIFI, True, True, True, "up"),
                    4: Interface(4, "wwan0", InterfaceKind.WWAN, True, False, False, "lowerlayerdown")}
    for a in (Address(2, "2001:db8:a::5", 64), Address(3, "2001:db8:b::5", 64), Address(4, "2001:db8:c::5", 64)):
        s.addresses[a.key] = a
    s.home_addresses = (HomeAddress(HOA, 64, "2001:db8:1::1"),)
    return s


BINDINGS = [Binding(HOA, "2001:db8:a::5", "2001:db8:1::1", state=BindingState.REGISTERED, flags=("A", "H"))]


def placed(flow: Flow, s: NodeState):
    return classify(flow, s, analyse(s, 0.0), BINDINGS)


def test_hoa_flow_with_umip_rebinds_every_hoa_and_lists_what_moves():
    s = node()
    an = analyse(s, 0.0)
    f1 = Flow("tcp", 10, HOA, 40000, "2001:db8:f::1", 443, "ESTAB")
    f2 = Flow("tcp", 10, HOA, 40001, "2001:db8:f::2", 22, "ESTAB")
    f3 = Flow("tcp", 10, "2001:db8:a::5", 40002, "2001:db8:f::3", 80, "ESTAB")
    others = [(f, placed(f, s)) for f in (f1, f2, f3)]
    assert others[0][1].interface == "eth0" and others[0][1].movable == "transparent"
    out = move_outcome(f1, others[0][1], "wlan0", s, an, UMIP, others)
    assert out.action == "rebind" and out.hoa == HOA and out.also_moves == (f2.id,)
    assert "keeps working" in out.summary and "every home address" in out.summary
    out = move_outcome(f1, others[0][1], "wlan0", s, an, FB, others)
    assert out.action == "flow-binding" and "Only this connection" in out.summary
    out = move_outcome(f1, others[0][1], "wlan0", s, an, NO_DAEMON, others)
    assert out.action == "refuse" and "no mobility daemon" in out.summary


def test_coa_flow_is_said_to_break_and_offers_a_steering_rule():
    s = node()
    f = Flow("tcp", 10, "2001:db8:a::5", 40002, "2001:db8:f::3", 80, "ESTAB")
    out = move_outcome(f, placed(f, s), "wlan0", s, analyse(s, 0.0), UMIP)
    assert out.action == "steer" and out.destination == "2001:db8:f::3"
    assert out.summary.startswith("This connection will not survive")


def test_invalid_targets_and_unmovable_flows_are_refused_with_the_reason():
    s = node()
    an = analyse(s, 0.0)
    f = Flow("tcp", 10, "2001:db8:a::5", 40002, "2001:db8:f::3", 80, "ESTAB")
    p = placed(f, s)
    assert "wwan0 is down or has no carrier" in move_outcome(f, p, "wwan0", s, an, UMIP).summary
    assert "there is no interface nope0" in move_outcome(f, p, "nope0", s, an, UMIP).summary
    assert "already goes through eth0" in move_outcome(f, p, "eth0", s, an, UMIP).summary
    ll = Flow("tcp", 10, "fe80::5", 40003, "fe80::1", 22, "ESTAB")
    out = move_outcome(ll, placed(ll, s), "wlan0", s, an, UMIP)
    assert out.action == "refuse" and out.summary.startswith("This connection cannot move")


def test_a_closing_connection_does_not_move():
    s = node()
    f = Flow("tcp", 10, HOA, 40000, "2001:db8:f::1", 443, "FIN-WAIT-2")
    p = placed(f, s)
    assert p.movable == "no" and p.reason.startswith("closing (FIN-WAIT-2)")
    out = move_outcome(f, p, "wlan0", s, analyse(s, 0.0), UMIP)
    assert out.action == "refuse" and "closing" in out.summary
