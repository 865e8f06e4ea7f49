"""plan_when_ready: a rebind waits for DAD on the target interface, and gives up when DAD fails."""

from __future__ import annotations

import asyncio

import pytest

from mhgui.core.analysis import analyse
from mhgui.core.model import Address, AddressFlag, HomeAddress, Interface, InterfaceKind, NodeState
from mhgui.daemons.base import DaemonDriver, RebindPlan, as_live_view, plan_when_ready


class PlanOnlyDriver(DaemonDriver):
    """Plans like UMIP's driver does for this one question (the interface's CoA), nothing else."""

    name = "plan-only"

    async def start(self): ...

    async def stop(self): ...

    async def rebind(self, plan): raise NotImplementedError

    async def plan_rebind(self, hoa, ifname, live):
        view = as_live_view(live)
        i = view.interfaces[ifname]
        self.calls = getattr(self, "calls", 0) + 1
        if i.coas:
            return RebindPlan(hoa, ifname, moves=(hoa,), restart_required=True, target_coas=i.coas)
        if i.tentative:
            return RebindPlan(hoa, ifname, refusal="not yet: DAD in progress", pending=True)
        return RebindPlan(hoa, ifname, refusal=f"{ifname} has no usable care-of address")


def node(flags: AddressFlag) -> NodeState:
    s = NodeState()
    s.interfaces = {3: Interface(3, "wlan0", InterfaceKind.WIFI, True, True, True, "up")}
    a = Address(3, "2001:db8:b::5", 64, flags=flags)
    s.addresses = {a.key: a}
    s.home_addresses = (HomeAddress("2001:db8:1::100", 64, "2001:db8:1::1"),)
    return s


@pytest.mark.asyncio
async def test_waits_for_dad_then_plans():
    states = [node(AddressFlag.TENTATIVE)] * 3 + [node(AddressFlag(0))]
    seen = []

    def live():
        s = states.pop(0) if len(states) > 1 else states[0]
        return s, analyse(s, 0.0)

    d = PlanOnlyDriver()
    plan = await plan_when_ready(d, "2001:db8:1::100", "wlan0", live, interval=0.01, on_wait=seen.append)
    assert plan.allowed and plan.target_coas == ("2001:db8:b::5",)
    assert seen == ["not yet: DAD in progress"] and d.calls == 4


@pytest.mark.asyncio
async def test_dad_failure_cancels_with_the_reason():
    states = [node(AddressFlag.TENTATIVE), node(AddressFlag.TENTATIVE | AddressFlag.DADFAILED)]

    def live():
        s = states.pop(0) if len(states) > 1 else states[0]
        return s, analyse(s, 0.0)

    plan = await plan_when_ready(PlanOnlyDriver(), "2001:db8:1::100", "wlan0", live, interval=0.01)
    assert not plan.allowed and not plan.pending
    assert "duplicate address detection failed on wlan0 for 2001:db8:b::5" in plan.refusal


@pytest.mark.asyncio
async def test_gives_up_after_the_timeout():
    s = node(AddressFlag.TENTATIVE)
    plan = await plan_when_ready(PlanOnlyDriver(), "2001:db8:1::100", "wlan0", lambda: (s, analyse(s, 0.0)),
                                 timeout=0.05, interval=0.01)
    assert not plan.allowed and "still so after 0.05 s" in plan.refusal
    await asyncio.sleep(0)
