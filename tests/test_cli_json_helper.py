"""``--json`` of the commands that act through the privileged helper (issue 15.9): ``flows``, ``move`` and
``rules`` each print one object with ``"schema": 1`` (``move --json`` printed sentences, no JSON).

The lab of tests/test_flows_gui.py: a namespace with two uplinks, a TCP connection from the node to the
peer, the real helper on a private system bus with polkit allowing steering.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from netns import lab  # noqa: F401  (fixture)
from test_flows_gui import CLIENT, SERVER, _reap, helper  # noqa: F401  (fixture)

pytestmark = [pytest.mark.netns]


def test_flows_move_and_rules_print_one_object_with_the_schema(lab, helper):  # noqa: F811
    lab.uplink("up0")
    lab.uplink("up1")
    for cmd in (("-6", "addr", "add", "2001:db8:a::5/64", "dev", "up0", "nodad"),
                ("-6", "addr", "add", "2001:db8:b::5/64", "dev", "up1", "nodad"),
                ("-6", "route", "add", "default", "via", "2001:db8:a::1", "dev", "up0", "metric", "100"),
                ("-6", "route", "add", "default", "via", "2001:db8:b::1", "dev", "up1", "metric", "200")):
        lab.ip(*cmd)
    for cmd in (("-6", "addr", "add", "2001:db8:a::1/64", "dev", "p-up0", "nodad"),
                ("-6", "addr", "add", "2001:db8:b::1/64", "dev", "p-up1", "nodad"),
                ("-6", "addr", "add", "2001:db8:f::1/128", "dev", "lo")):
        lab.ip(*cmd, ns=lab.peer)

    def mhctl(*args):
        return subprocess.run(["ip", "netns", "exec", lab.ns, sys.executable, "-m", "mhgui.cli", *args,
                               "--system-bus", helper.address, "--no-networkmanager", "--vt-port", "7999"],
                              capture_output=True, text=True, timeout=60)

    def obj(p) -> dict:
        out = json.loads(p.stdout)  # stdout holds the object alone; sentences went to stderr
        assert isinstance(out, dict) and out["schema"] == 1, out
        return out

    server = subprocess.Popen(["ip", "netns", "exec", lab.peer, sys.executable, "-c", SERVER],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    client = None
    try:
        assert server.stdout.readline().strip() == "ready"
        client = subprocess.Popen(["ip", "netns", "exec", lab.ns, sys.executable, "-c", CLIENT],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(client.stdout.readline())
        flow_id = f"tcp [2001:db8:a::5]:{port} [2001:db8:f::1]:8080"
        flows = obj(mhctl("flows", "--json"))["flows"]
        assert any(f["local"]["port"] == port for f in flows)

        p = mhctl("move", "tcp [2001:db8:a::5]:1 [2001:db8:f::1]:2", "up1", "--json")
        out = obj(p)
        assert p.returncode == 1 and out["action"] is None and out["done"] is False and "no flow" in out["reason"]

        p = mhctl("move", flow_id, "upB", "--json")
        out = obj(p)
        assert p.returncode == 1 and out["action"] == "refuse" and "there is no interface upB" in out["summary"]
        assert out["reason"] == out["summary"] and out["done"] is False

        p = mhctl("move", flow_id, "up1", "--json")  # not on a terminal, no --yes: not done, and said so
        out = obj(p)
        assert p.returncode == 1 and out["action"] == "steer" and out["done"] is False and out["rule"] is None

        p = mhctl("move", flow_id, "up1", "--json", "--yes")
        out = obj(p)
        assert p.returncode == 0, p.stderr
        assert (out["flow"], out["interface"], out["action"], out["done"]) == (flow_id, "up1", "steer", True)
        assert out["summary"] in p.stderr and "steering rule" in p.stderr
        rules = obj(mhctl("rules", "--json"))["rules"]
        assert [(r["id"], r["interface"]) for r in rules] == [(out["rule"], "up1")]
        assert mhctl("rules", "remove", out["rule"]).returncode == 0
        assert obj(mhctl("rules", "--json"))["rules"] == []
    finally:
        _reap(client, server)
