"""``mhctl status`` says NetworkManager's device states in words (issue 15.9), not ``NMDeviceState`` numbers.

Property-based over every ``NMDeviceState`` value (and values NetworkManager may add later), then with a
real NetworkManager in a namespace (tests/nmlab.py): a managed veth it has not connected, and an
unmanaged one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mhgui.core.model import Interface, InterfaceKind as K
from mhgui.core.report import NM_STATE_WORDS, render_text, status
from mhgui.core.state import LinkUpsert, NmDevice, StateStore
from nmlab import NmLab, missing_requirements

#: nm-dbus-interface.h, NMDeviceState
NM_DEVICE_STATES = {0: "unknown", 10: "unmanaged", 20: "unavailable", 30: "disconnected", 40: "prepare",
                    50: "config", 60: "need-auth", 70: "ip-config", 80: "ip-check", 90: "secondaries",
                    100: "activated", 110: "deactivating", 120: "failed"}


def test_every_device_state_has_a_word():
    assert set(NM_STATE_WORDS) == set(NM_DEVICE_STATES)
    assert all(w and not any(c.isdigit() for c in w) for w in NM_STATE_WORDS.values())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(sorted(NM_DEVICE_STATES)), st.integers(0, 2**32 - 1)),
                min_size=1, max_size=4), st.booleans())
def test_status_says_each_device_state_in_words(states, up):
    store = StateStore()
    for n, state in enumerate(states, 2):
        store.apply(LinkUpsert(Interface(n, f"eth{n}", K.ETHERNET, admin_up=up, oper_up=up, carrier=up,
                                         operstate="up" if up else "down")))
        store.apply(NmDevice(f"/org/freedesktop/NetworkManager/Devices/{n}", n, f"eth{n}", K.ETHERNET, state,
                             managed=state != 10))
    s = status(store, 0.0)
    text = render_text(s).splitlines()
    for n, state in enumerate(states, 2):
        row = next(i for i in s["interfaces"] if i["ifindex"] == n)
        word = NM_STATE_WORDS.get(state, "unknown")
        assert row["networkmanager_state"] == state and row["networkmanager_state_name"] == word
        line = next(ln for ln in text if ln.startswith(f"{n}: eth{n} "))
        assert f"(NetworkManager: {word})" in line, line
        assert not re.search(r"NetworkManager: \d", line)


def test_an_interface_networkmanager_does_not_know_has_no_state():
    store = StateStore()
    store.apply(LinkUpsert(Interface(2, "veth0", K.ETHERNET, admin_up=True, oper_up=True, carrier=True,
                                     operstate="up")))
    s = status(store, 0.0)
    assert s["interfaces"][0]["networkmanager_state_name"] is None
    assert "NetworkManager:" not in next(ln for ln in render_text(s).splitlines() if ln.startswith("2: veth0"))


@pytest.fixture(scope="module")
def nm():
    why = missing_requirements()
    if why:
        pytest.skip(f"real NetworkManager lab unavailable: {why}")
    lab = NmLab().setup()
    try:
        yield lab
    finally:
        lab.teardown()


@pytest.mark.netns
@pytest.mark.nm
def test_status_with_a_real_networkmanager_says_its_states_in_words(nm):
    def mhctl(*args):
        p = subprocess.run(["ip", "netns", "exec", nm.ns, sys.executable, "-m", "mhgui.cli", "status", *args,
                            "--system-bus", nm.address, "--mip6d-conf", os.devnull],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout

    s = json.loads(mhctl("--json"))
    assert s["sources"]["networkmanager"] == "running"
    rows = {i["name"]: i for i in s["interfaces"]}
    assert rows["veth-um"]["networkmanager_state"] == 10 and rows["veth-um"]["networkmanager_state_name"] == "unmanaged"
    veth = rows["veth-nm"]
    assert veth["networkmanager_state_name"] == NM_STATE_WORDS[veth["networkmanager_state"]]
    lines = mhctl().splitlines()
    um = next(ln for ln in lines if ln.startswith(f"{rows['veth-um']['ifindex']}: veth-um "))
    assert "(NetworkManager: unmanaged)" in um, um
    line = next(ln for ln in lines if ln.startswith(f"{veth['ifindex']}: veth-nm "))
    assert f"(NetworkManager: {veth['networkmanager_state_name']})" in line, line
    assert not any(re.search(r"NetworkManager: \d", ln) for ln in lines)
