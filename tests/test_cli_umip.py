"""``mhctl`` with a mobility daemon running (issue 15.9): the UMIP double as mip6d in a namespace lab with
two uplinks (tests/umipdouble; test_umip_double's TwoUplinkLab), its home agent stand-in in the peer.

- ``mhctl status`` shows the binding table itself (it printed a bare "Binding table: from umip");
- ``mhctl monitor`` reports the daemon's failover with where from and where to (it printed
  "home-addresses-changed bound CoAs" and nothing more);
- every ``--json`` output is one object with ``"schema": 1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from test_cli import read_events
from test_umip_double import TwoUplinkLab, VTClient, _ip, parse_bul, run_double, stop, two_uplinks  # noqa: F401

pytestmark = [pytest.mark.netns]

HOA = TwoUplinkLab.HOA


@pytest.fixture
def daemon(two_uplinks, tmp_path):  # noqa: F811
    """The double as the mobile node's mip6d (upA preferred), registered with the stand-in home agent."""
    lab = two_uplinks
    conf = tmp_path / "mn.conf"
    conf.write_text(f"""\
NodeConfig MN;
DebugLevel 1;
UseMnHaIPsec disabled;
InterfaceInitialInitDelay 0.2;
MnMaxHaBindingLife 3600;
Interface "upA" {{ MnIfPreference 1; }}
Interface "upB" {{ MnIfPreference 2; }}
MnHomeLink "home0" {{ HomeAgentAddress {lab.HA}; HomeAddress {lab.HOA}/64; }}
""")
    ha_conf = tmp_path / "ha.conf"
    ha_conf.write_text('NodeConfig HA;\nInterface "home";\nHaMaxBindingLife 3600;\n')
    logs = [open(tmp_path / "mn.log", "w"), open(tmp_path / "ha.log", "w")]
    mn = run_double("-c", str(conf), ns=lab.ns, stdout=logs[0], stderr=subprocess.STDOUT)
    ha = run_double("-c", str(ha_conf), "--ha-stand-in", "--vt-service", "7778", ns=lab.peer,
                    stdout=logs[1], stderr=subprocess.STDOUT)
    try:
        vt = VTClient(lab.ns, 7777)  # the terminal serves one client: closed before mhctl runs
        try:
            vt.read_exact(7)
            vt.cmd(b"fancy no\r\n")
            deadline = time.monotonic() + 15
            while not [e for e in parse_bul(vt.cmd(b"bul\r\n")) if e["ack"] == "ready"]:
                assert time.monotonic() < deadline, "the double did not register with the home agent"
                time.sleep(0.1)
            vt.sock.sendall(b"quit\r\n")
        finally:
            vt.close()
        yield lab, conf
    finally:
        stop(mn)
        stop(ha)
        for f in logs:
            f.close()


def mhctl(lab, conf, *args, check=True):
    p = subprocess.run(["ip", "netns", "exec", lab.ns, sys.executable, "-m", "mhgui.cli", *args,
                        "--no-networkmanager", "--mip6d-conf", str(conf)], capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"mhctl {args} → {p.returncode}: {p.stderr}")
    return p


def test_status_shows_the_binding_table(daemon):
    lab, conf = daemon
    lines = mhctl(lab, conf, "status").stdout.splitlines()
    assert not any(ln.startswith("Binding table: from") for ln in lines)
    i = lines.index("Binding table (umip):")
    assert lines[i + 1].startswith(f"  {HOA} → {lab.COA_A} via upA  HA {lab.HA}  registered  lifetime "), lines[i:]
    s = json.loads(mhctl(lab, conf, "status", "--json").stdout)
    assert s["schema"] == 1
    assert s["daemon"] == {"name": "umip", "connected": True, "state": "connected", "error": None}
    [b] = s["bindings"]
    assert (b["hoa"], b["coa"], b["interface"], b["peer"], b["state"]) == (HOA, lab.COA_A, "upA", lab.HA, "registered")
    # the same table as `mhctl bindings --json`, which carries the schema too
    t = json.loads(mhctl(lab, conf, "bindings", "--json").stdout)
    assert t["schema"] == 1 and [(x["hoa"], x["coa"]) for x in t["bindings"]] == [(HOA, lab.COA_A)]


def test_rebind_json_refusal_is_one_object_with_the_schema(daemon):
    lab, conf = daemon
    p = mhctl(lab, conf, "rebind", "2001:db8:9::9", "upB", "--json", "--timeout", "3", check=False)
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["schema"] == 1 and out["confirmed"] is False and out["reason"] and out["daemon"] == "umip"


def test_monitor_reports_the_failover_with_from_and_to(daemon):
    from mhgui.cli import monitor_text  # its text line (without --json)
    lab, conf = daemon
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = ["ip", "netns", "exec", lab.ns, sys.executable, "-m", "mhgui.cli", "monitor", "--json",
           "--no-networkmanager", "--mip6d-conf", str(conf)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            read_events(proc, lambda e: e["event"] == "snapshot", timeout=20)
            _ip("-n", lab.peer, "link", "set", "p-upA", "down")  # carrier lost on upA: mip6d moves to upB
            ev = read_events(proc, lambda e: e["event"] == "failover", timeout=20)[-1]
            assert (ev["from"], ev["to"], ev["hoas"], ev["by"]) == ("upA", "upB", [HOA], "daemon"), ev
            assert ev["reason"] == "link-down" and ev["interface"] == "upB" and ev["schema"] == 1
            assert ev["ifindex"] == int(_ip_out(lab.ns, "upB").split(":", 1)[0])
            assert "upA -> upB" in monitor_text(ev) and HOA in monitor_text(ev)
            if not ev["acknowledged"]:  # the same failover again once the home agent has acknowledged it
                ack = read_events(proc, lambda e: e["event"] == "failover" and e["acknowledged"], timeout=20)[-1]
                assert ack["failover"] == ev["failover"] and (ack["from"], ack["to"]) == ("upA", "upB")
            _ip("-n", lab.peer, "link", "set", "p-upA", "up")  # and back to the preferred uplink
            back = read_events(proc, lambda e: e["event"] == "failover" and e["to"] == "upA", timeout=20)[-1]
            assert (back["from"], back["hoas"], back["reason"]) == ("upB", [HOA], "link-up"), back
            assert back["failover"] != ev["failover"]
        finally:
            proc.terminate()
            err = proc.stderr.read()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err
    assert all(e["schema"] == 1 for e in proc._seen)


def _ip_out(ns: str, dev: str) -> str:
    return subprocess.run(["ip", "-n", ns, "-o", "link", "show", "dev", dev], capture_output=True, text=True,
                          check=True).stdout
