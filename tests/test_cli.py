"""``mhctl status`` and ``mhctl monitor`` run for real inside a network namespace."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time

import pytest

from netns import lab  # noqa: F401  (fixture)

pytestmark = [pytest.mark.netns]

CONF = """\
NodeConfig MN;
DoRouteOptimizationMN disabled;   # comments survive
Interface "up0" { MnIfPreference 1; }
Interface "up1" { MnIfPreference 2; }
MnHomeLink "up0" {
    HomeAgentAddress 2001:db8:100::1;
    HomeAddress 2001:db8:100::10/64;
}
"""


def mhctl(lab, *args, check=True):
    p = subprocess.run(["ip", "netns", "exec", lab.ns, sys.executable, "-m", "mhgui.cli", *args],
                       capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"mhctl {args} → {p.returncode}: {p.stderr}")
    return p


@pytest.fixture
def node(lab, tmp_path):  # noqa: F811
    lab.uplink("up0")
    lab.uplink("up1")
    lab.ip("-6", "addr", "add", "2001:db8:a::5/64", "dev", "up0", "nodad")
    lab.ip("-6", "addr", "add", "2001:db8:b::5/64", "dev", "up1", "nodad")
    lab.ip("-6", "addr", "add", "2001:db8:c::5/64", "dev", "up1", "nodad")
    lab.ip("-6", "addr", "add", "2001:db8:a::1/64", "dev", "p-up0", "nodad", ns=lab.peer)
    lab.ip("-6", "route", "add", "default", "via", "2001:db8:a::1", "dev", "up0")
    conf = tmp_path / "mip6d.conf"
    conf.write_text(CONF)
    return lab, conf


def iface(status, name):
    return next(i for i in status["interfaces"] if i["name"] == name)


def test_status_json_in_a_namespace(node):
    lab, conf = node
    s = json.loads(mhctl(lab, "status", "--json", "--no-networkmanager", "--mip6d-conf", str(conf)).stdout)
    assert s["schema"] == 1
    assert s["source"] == "netlink"
    # no mip6d here: the binding table is empty and says why (the port of mip6d's terminal does not answer)
    assert s["bindings"] == [] and s["daemon"]["name"] == "umip" and s["daemon"]["connected"] is False
    assert s["daemon"]["state"] == "absent" and "7777" in s["daemon"]["error"]
    assert s["sources"] == {"networkmanager": "absent", "netlink": "ok"}
    up0, up1 = iface(s, "up0"), iface(s, "up1")
    assert up0["ifindex"] == lab.ifindex("up0") and up0["kind"] == "ethernet" and up0["up"]
    roles = {a["address"]: a["role"] for a in up0["addresses"] + up1["addresses"]}
    assert roles["2001:db8:a::5"] == roles["2001:db8:b::5"] == roles["2001:db8:c::5"] == "coa"
    assert up0["default_routers"] == ["2001:db8:a::1"]
    assert s["home_addresses"] == [{
        "address": "2001:db8:100::10", "prefixlen": 64, "home_agent": "2001:db8:100::1",
        "home_prefix": "2001:db8:100::/64", "home_link": "up0", "origin": f"{conf}:5",
        "at_home": False, "at_home_on": None}]
    t = s["taxonomy"]
    assert (t["interfaces"], t["home_addresses"], t["care_of_addresses"]) == (2, 1, 3)
    assert t["label"] == "(n,1,n)" and t["scenario"] == "5.6"
    assert "bicasting" in t["goals"] and not any(g["available"] for g in t["goals_available"])
    assert {"6.1.2", "6.2.1"} <= {i["section"] for i in t["issues"]}
    for a in up0["addresses"]:
        assert set(a) >= {"address", "prefixlen", "flags", "preferred_lft", "valid_lft", "role"}

    # the node goes home on up0: its HoA's prefix appears there
    lab.ip("-6", "addr", "add", "2001:db8:100::10/64", "dev", "up0", "nodad")
    s = json.loads(mhctl(lab, "status", "--json", "--no-networkmanager", "--mip6d-conf", str(conf)).stdout)
    assert s["home_addresses"][0]["at_home"] and s["home_addresses"][0]["at_home_on"] == "up0"
    roles = {a["address"]: a["role"] for a in iface(s, "up0")["addresses"]}
    assert roles["2001:db8:100::10"] == "hoa" and roles["2001:db8:a::5"] == "home-link"
    assert s["taxonomy"]["label"] == "(n,1,n)" and s["taxonomy"]["care_of_addresses"] == 2


def test_status_text_and_config_errors(node):
    lab, conf = node
    out = mhctl(lab, "status", "--no-networkmanager", "--mip6d-conf", str(conf)).stdout
    assert out.splitlines()[0] == "(n,1,n) — 2 interfaces, 1 home address, 3 care-of addresses — scenario 5.6"
    # the binding table's line says why there is none (issue 15.9: not a bare "Binding table: from umip")
    last = out.splitlines()[-1]
    assert last.startswith("Binding table: no mobility daemon connected (umip: nothing answers on localhost port "
                           "7777"), last
    bad = conf.with_name("bad.conf")
    bad.write_text(CONF.replace("HomeAddress 2001:db8:100::10/64;", "HomeAddress 2001:db8:100::zz/64;"))
    p = mhctl(lab, "status", "--json", "--no-networkmanager", "--mip6d-conf", str(bad), check=False)
    assert p.returncode == 1 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and f"{bad}:7" in p.stderr
    p = mhctl(lab, "status", "--no-networkmanager", "--mip6d-conf", str(conf.with_name("missing.conf")), check=False)
    assert p.returncode == 1 and "missing.conf" in p.stderr


def read_events(proc, until, timeout=10.0):
    """Read JSON lines from ``proc.stdout`` until ``until(event)``; a thread reads, so no line waits in a buffer."""
    q = getattr(proc, "_lines", None)
    if q is None:
        q = proc._lines = queue.Queue()

        def pump():
            for line in proc.stdout:
                q.put(line)
            q.put(None)

        threading.Thread(target=pump, daemon=True).start()
    got = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = q.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            q.put(None)
            break
        ev = json.loads(line)
        got.append(ev)
        proc.__dict__.setdefault("_seen", []).append(ev)
        if until(ev):
            return got
    raise AssertionError(f"no matching event; got {[e['event'] for e in got]}")


def test_monitor_json_prints_one_line_per_change(node):
    lab, conf = node
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = ["ip", "netns", "exec", lab.ns, sys.executable, "-m", "mhgui.cli", "monitor", "--json",
           "--no-networkmanager", "--mip6d-conf", str(conf)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            monitor_steps(lab, proc)
        finally:
            proc.terminate()
            err = proc.stderr.read()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err


def monitor_steps(lab, proc):
    first = read_events(proc, lambda e: e["event"] == "snapshot")
    assert first[-1]["taxonomy"]["label"] == "(n,1,n)" and first[-1]["schema"] == 1
    lab.ip("link", "set", "p-up1", "down", ns=lab.peer)
    evs = read_events(proc, lambda e: e["event"] == "link-down")
    assert evs[-1]["interface"] == "up1" and evs[-1]["taxonomy"]["label"] == "(1,1,1)"
    lab.ip("-6", "addr", "add", "2001:db8:a::6/64", "dev", "up0", "nodad")
    evs = read_events(proc, lambda e: e["event"] == "address-added")
    assert evs[-1]["address"] == "2001:db8:a::6/64" and evs[-1]["interface"] == "up0"
    assert set(evs[-1]) >= {"time", "event", "interface", "address", "taxonomy"}
    lab.ip("-6", "addr", "del", "2001:db8:a::6/64", "dev", "up0")
    evs = read_events(proc, lambda e: e["event"] == "address-removed")
    assert evs[-1]["address"] == "2001:db8:a::6/64"
    assert all(e["schema"] == 1 for e in proc._seen), [e for e in proc._seen if e.get("schema") != 1]


def test_monitor_into_a_closed_pipe_ends_quietly(node):
    lab, conf = node
    cmd = " ".join(["ip", "netns", "exec", lab.ns, sys.executable, "-m", "mhgui.cli", "monitor", "--json",
                    "--no-networkmanager", "--mip6d-conf", str(conf)])
    with subprocess.Popen(["bash", "-c", f"set -o pipefail; {cmd} | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True) as p:
        time.sleep(3)  # the first line has been read by now; the next change hits the closed pipe
        lab.ip("-6", "addr", "add", "2001:db8:a::77/64", "dev", "up0", "nodad")
        try:
            out, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)  # the monitor kept running after its reader left
            p.communicate()
            pytest.fail("mhctl monitor did not end when its reader went away")
    assert out.strip() == "0" and "Traceback" not in err and "Broken pipe" not in err, err


def test_config_files_that_are_not_files(node, tmp_path):
    lab, conf = node
    fifo = tmp_path / "fifo.conf"
    os.mkfifo(fifo)
    p = mhctl(lab, "status", "--no-networkmanager", "--mip6d-conf", str(fifo), check=False)
    assert p.returncode == 1 and "not a regular file" in p.stderr
    inc = tmp_path / "inc.conf"
    inc.write_text('NodeConfig MN;\ninclude "/dev/zero"\n')
    p = mhctl(lab, "status", "--no-networkmanager", "--mip6d-conf", str(inc), check=False)
    assert p.returncode == 1 and "/dev/zero: not a regular file" in p.stderr
    bom = tmp_path / "bom.conf"
    bom.write_bytes(b"\xef\xbb\xbf" + CONF.encode())
    p = mhctl(lab, "status", "--no-networkmanager", "--mip6d-conf", str(bom), check=False)
    assert p.returncode == 1 and f"{bom}:1: starts with a UTF-8 byte order mark" in p.stderr
    sub = tmp_path / "sub.conf"
    sub.write_bytes(b"# ok\nDebugLevel 0; # \xff\n")
    main = tmp_path / "main.conf"
    main.write_text('NodeConfig MN;\ninclude "sub.conf"\n')
    p = mhctl(lab, "status", "--no-networkmanager", "--mip6d-conf", str(main), check=False)
    assert p.returncode == 1 and f"{sub}:2: not UTF-8 text" in p.stderr
    p = mhctl(lab, "status", "--no-networkmanager", "--settings", str(tmp_path / "none.toml"), check=False)
    assert p.returncode == 1 and "none.toml: no such file" in p.stderr
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 3000 + "]" * 3000 + "\n")
    p = mhctl(lab, "status", "--no-networkmanager", "--settings", str(deep), check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_misspelt_option_is_reported(node):
    lab, conf = node
    conf.write_text(CONF.replace("MnHomeLink", "MnHomelink"))
    s = json.loads(mhctl(lab, "status", "--json", "--no-networkmanager", "--mip6d-conf", str(conf)).stdout)
    assert s["home_addresses"] == []
    assert any("unknown option MnHomelink (did you mean MnHomeLink?)" in n for n in s["notes"])


@pytest.mark.parametrize("hoa,why", [
    ("fe80::1/64", "link-local address"),
    ("ff02::1/64", "multicast address"),
    ("2001:db8:100::10/0", "shorter than /16"),
])
def test_nonsense_home_addresses_are_ignored_with_a_note(node, hoa, why):
    lab, conf = node
    conf.write_text(CONF.replace("2001:db8:100::10/64", hoa))
    s = json.loads(mhctl(lab, "status", "--json", "--no-networkmanager", "--mip6d-conf", str(conf)).stdout)
    assert s["home_addresses"] == [] and s["taxonomy"]["home_addresses"] == 0
    assert any(why in n and f"{conf}:5" in n for n in s["notes"]), s["notes"]
    # nothing became a home link
    assert all(a["role"] != "home-link" for i in s["interfaces"] for a in i["addresses"])


#: what `mhctl status` has no use for (issue 14: its start-up is most of its time); prefixes of module names
NOT_FOR_STATUS = ("PySide6", "shiboken6", "qasync", "mhgui.ui", "mhgui.lab", "mhgui.sources.flows", "mhgui.core.flows",
                  "pyroute2.ndb", "pyroute2.ipdb", "pyroute2.conntrack", "pyroute2.nftables", "pyroute2.ipset",
                  "pyroute2.iwutil", "pyroute2.plan9")
MODULES_AFTER = """
import json, sys
sys.argv = ["mhctl", *sys.argv[2:]]
from mhgui import cli
rc = cli.main()  # as the `mhctl` program runs it
from mhgui._pyroute2 import package_init_ran
with open(OUT, "w") as f:
    json.dump({"rc": rc, "modules": sorted(sys.modules), "pyroute2_init": package_init_ran()}, f)
"""


@pytest.mark.parametrize("args", [("--json",), ("--no-networkmanager",), ("--json", "--no-networkmanager")])
def test_status_imports_no_qt_and_nothing_it_does_not_use(node, tmp_path, args):
    lab, conf = node
    out = tmp_path / "modules.json"
    script = f"OUT = {str(out)!r}\n" + MODULES_AFTER
    p = subprocess.run(["ip", "netns", "exec", lab.ns, sys.executable, "-c", script, "x", "status", *args,
                        "--mip6d-conf", str(conf)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    got = json.loads(out.read_text())
    assert got["rc"] == 0
    assert "2001:db8:b::5" in p.stdout  # it did its work: the addresses were read
    unwanted = [m for m in got["modules"] if m.startswith(NOT_FOR_STATUS)]
    assert unwanted == []
    if "mhgui.sources.netlink" in got["modules"]:  # the full path (a system bus or a daemon answers here)
        # pyroute2's package __init__ (which imports every socket class it has) never ran
        assert got["pyroute2_init"] is False
    else:  # the fast path (mhgui.status_fast): iproute2's JSON, no loop, no D-Bus, no pyroute2 at all
        assert "mhgui.sources.iproute_json" in got["modules"]
        assert [m for m in got["modules"] if m.split(".")[0] in ("asyncio", "pyroute2", "dbus_fast")] == []


def test_status_gives_the_command_of_its_next_step(lab):  # noqa: F811
    """A node without home address: `mhctl status` gives the command of "Try the lab", not only the window's
    button label (issue 15 n1.12), in the text and in the JSON."""
    lab.uplink("up0")
    lab.ip("addr", "add", "192.0.2.5/24", "dev", "up0")
    lab.ip("-6", "addr", "add", "fd00:5::5/64", "dev", "up0", "nodad")
    lab.ip("route", "add", "default", "via", "192.0.2.1", "dev", "up0")
    out = mhctl(lab, "status", "--no-networkmanager").stdout
    node = next(line for line in out.splitlines() if line.startswith("Node: "))
    assert node.endswith(" — next: Try the lab: sudo mhctl lab up --allow-user $USER"), node
    action = json.loads(mhctl(lab, "status", "--json", "--no-networkmanager").stdout)["headline"]["action"]
    assert action == {"id": "try-lab", "label": "Try the lab", "command": "sudo mhctl lab up --allow-user $USER"}
