"""``mhctl`` against a real NetworkManager in a namespace: status, and monitor across its stop and start."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nmlab import NmLab, missing_requirements
from test_cli import read_events

pytestmark = [pytest.mark.netns, pytest.mark.nm]


@pytest.fixture(scope="module")
def lab():
    why = missing_requirements()
    if why:
        pytest.skip(f"real NetworkManager lab unavailable: {why}")
    lab = NmLab().setup()
    try:
        yield lab
    finally:
        lab.teardown()


def mhctl_cmd(lab, *args):
    return ["ip", "netns", "exec", lab.ns, sys.executable, "-m", "mhgui.cli", *args,
            "--system-bus", lab.address, "--mip6d-conf", os.devnull]


def test_status_names_networkmanager_as_the_device_source(lab):
    p = subprocess.run(mhctl_cmd(lab, "status", "--json"), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["source"] == "networkmanager"
    assert s["sources"] == {"networkmanager": "running", "netlink": "ok"}
    veth = next(i for i in s["interfaces"] if i["name"] == "veth-nm")
    assert veth["ifindex"] == lab.ifindex("veth-nm")
    assert veth["networkmanager_state"] is not None and veth["kind"] == "ethernet"
    um = next(i for i in s["interfaces"] if i["name"] == "veth-um")
    assert um["networkmanager_state"] == 10  # unmanaged, as configured


def test_monitor_keeps_running_across_a_networkmanager_restart(lab):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with subprocess.Popen(mhctl_cmd(lab, "monitor", "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env) as proc:
        try:
            read_events(proc, lambda e: e["event"] == "snapshot", timeout=20)
            lab.stop_nm()
            lost = read_events(proc, lambda e: e["event"] == "source-lost", timeout=20)[-1]
            assert "networkmanager: stopped" in lost["detail"]
            lab.start_nm()
            back = read_events(proc, lambda e: e["event"] == "source-back", timeout=30)[-1]
            assert "networkmanager: running" in back["detail"]
            # still alive and reporting netlink changes
            lab.ip("-6", "addr", "add", "2001:db8:77::1/64", "dev", "veth-nm", "nodad")
            ev = read_events(proc, lambda e: e["event"] == "address-added" and e["address"] == "2001:db8:77::1/64")[-1]
            assert ev["interface"] == "veth-nm"
        finally:
            proc.terminate()
            err = proc.stderr.read()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err


def test_status_a_bridge_is_no_access_link_whatever_its_name(lab):
    """Issue 13.5 end to end: a bridge called eth9, up with carrier and a global address, is listed as a
    virtual link (netlink IFLA_INFO_KIND, NetworkManager DeviceType 13), holds no CoA, is not counted in x."""
    lab.ip("link", "add", "eth9", "type", "bridge")
    lab.ip("link", "add", "br9p", "type", "veth", "peer", "name", "br9q")
    try:
        lab.ip("link", "set", "br9p", "master", "eth9")
        for name in ("br9p", "br9q", "eth9"):
            lab.ip("link", "set", name, "up")
        lab.ip("-6", "addr", "add", "2001:db8:99::1/64", "dev", "eth9", "nodad")
        p = subprocess.run(mhctl_cmd(lab, "status", "--json"), capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        s = json.loads(p.stdout)
        br = next(i for i in s["interfaces"] if i["name"] == "eth9")
        assert br["kind"] == "virtual" and br["up"] and not br["active"]
        a = next(a for a in br["addresses"] if a["address"] == "2001:db8:99::1")
        assert a["role"] == "other" and "virtual link" in a["reason"]
        assert s["modems"] == []  # NetworkManager knows no modem here
    finally:
        lab.ip("link", "del", "br9p")
        lab.ip("link", "del", "eth9")
