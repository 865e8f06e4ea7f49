"""Start-up order (issue 14): structural checks in a fresh app process (which modules are loaded at the
window's first frame), not timings (those are in benchmarks/first_paint.py).

The window is painted before the daemon's driver is made (mhgui.daemons.*) and before the modules
of the tab pages it does not show (Node, Health), and before asyncio and qasync; its first frame already shows the node's addresses,
from iproute2's ``ip -j`` started before Qt's import (``mhgui.ui.app.start_ip_snapshot``): neither the
driver nor pyroute2 is needed for it. Netlink's dump then takes over with nothing lost or said twice.
"""

from __future__ import annotations

import json
import os

from test_startup import APP, run_py

NOT_AT_THE_FIRST_FRAME = ("mhgui.daemons.", "mhgui.ui.nodeview", "mhgui.ui.health_view", "mhgui.ui.flows_page",
                          "mhgui.sources.flows", "mhgui.ui.flows_model", "mhgui.core.flows", "mhgui.core.moves",
                          "mhgui.sources.config")


def test_first_frame_before_the_driver_and_hidden_pages(tmp_path):
    out = tmp_path / "seen.json"
    run_py(APP, "--no-tray", "--mip6d-conf", "/dev/null", timeout=90,
           env={"OUT": str(out), "QT_QPA_PLATFORM": "offscreen", "DBUS_SESSION_BUS_ADDRESS": "disabled:",
                "MHGUI_INSTANCE": f"p{os.getpid()}", "XDG_RUNTIME_DIR": str(tmp_path),
                "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "config")})
    seen = json.loads(out.read_text())
    assert seen["rc"] == 0
    assert [m for m in seen["visible"] if m.startswith(NOT_AT_THE_FIRST_FRAME)] == []
    # painted with Qt alone (mhgui.ui.app.show_window): asyncio, qasync and the runtime come after
    assert [m for m in seen["visible"] if m.split(".")[0] in ("asyncio", "qasync") or m == "mhgui.runtime"] == []
    assert seen["rc"] == 0  # the SIGTERM sent at the first frame with addresses (before the loop) closed it cleanly
    # the first frame with addresses is `ip -j`'s snapshot: before the driver and pyroute2 (netlink)
    assert [m for m in seen["addresses"] if m.startswith(("mhgui.daemons.", "pyroute2."))] == []
    assert "mhgui.sources.iproute_json" in seen["addresses"]
    assert "mhgui.ui.nodeview" not in seen["addresses"]  # its tab was never shown
    assert "_ssl" not in seen["addresses"]  # asyncio without TLS (mhgui.ui.app.import_asyncio_without_tls)


HANDOVER = r"""
import asyncio, json, subprocess
from mhgui.core.state import StateStore
from mhgui.sources.netlink import NetlinkSource
from mhgui.ui.app import apply_ip_snapshot, start_ip_snapshot

def ip(*args):
    subprocess.run(["ip", *args], check=True)

def view(state):
    return ({i.ifindex: (i.name, i.kind.value, i.admin_up, i.oper_up, i.carrier, i.mac) for i in state.interfaces.values()},
            {f"{k.ifindex} {k.address}/{k.prefixlen}": (a.flags, a.scope) for k, a in state.addresses.items()},
            {i: sorted(r) for i, r in state.routers.items()})

async def main():
    out = {}
    store = StateStore()
    early = start_ip_snapshot()                  # what the app starts before Qt's import
    out["applied"] = apply_ip_snapshot(store, early)
    out["early"] = view(store.state)
    # changes between the snapshot and netlink's start: they must come with netlink's dump, once each
    ip("-6", "addr", "add", "2001:db8:77::9/64", "dev", "p2a-a", "nodad")
    ip("-6", "addr", "del", "2001:db8:77::1/64", "dev", "p2a-a")
    heard = []
    store.subscribe(lambda changes: heard.extend(c for c in changes if c.kind.startswith(("link", "address", "router"))))
    src = NetlinkSource(store.apply)
    await src.start()
    await asyncio.wait_for(src.first_snapshot.wait(), 10)
    out["heard"] = sorted(f"{c.kind} {c.key.address}/{c.key.prefixlen}" if c.key is not None else c.kind for c in heard)
    out["after"] = view(store.state)
    await src.stop()
    fresh = StateStore()                         # netlink alone, as before this change
    src = NetlinkSource(fresh.apply)
    await src.start()
    await asyncio.wait_for(src.first_snapshot.wait(), 10)
    out["netlink_only"] = view(fresh.state)
    await src.stop()
    print(json.dumps(out))

asyncio.run(main())
"""


def test_early_ip_snapshot_then_netlink_same_state_no_event_lost_or_twice(tmp_path):
    """The first frame's addresses come from `ip -j` (mhgui.ui.app.start_ip_snapshot, no pyroute2); netlink's
    dump then replaces them: a change made in between is heard once, nothing else is announced again, and
    the state ends as netlink alone makes it. In namespace p2a (veth pair, IPv4 and IPv6, a default router)."""
    import subprocess
    import sys

    from test_startup import ROOT

    ns = "p2a"
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        def nsip(*a):
            subprocess.run(["ip", "-n", ns, *a], check=True)
        nsip("link", "set", "lo", "up")
        nsip("link", "add", "p2a-a", "type", "veth", "peer", "name", "p2a-b")
        nsip("link", "set", "p2a-a", "up")
        nsip("link", "set", "p2a-b", "up")
        nsip("-6", "addr", "add", "2001:db8:77::1/64", "dev", "p2a-a", "nodad")
        nsip("-6", "addr", "add", "2001:db8:77::2/64", "dev", "p2a-a", "nodad", "preferred_lft", "600",
             "valid_lft", "1200")
        nsip("addr", "add", "192.0.2.1/24", "dev", "p2a-a")
        nsip("-6", "addr", "add", "2001:db8:78::1/64", "dev", "p2a-b", "nodad")
        nsip("-6", "route", "add", "default", "via", "2001:db8:78::fe", "dev", "p2a-b")
        p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", HANDOVER], capture_output=True,
                           text=True, timeout=60, cwd=str(ROOT),
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert p.returncode == 0, p.stderr[-3000:]
        out = json.loads(p.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    assert out["applied"] is True
    links, addrs, routers = out["early"]
    assert {v[0] for v in links.values()} >= {"lo", "p2a-a", "p2a-b"}
    assert any(a.endswith(" 2001:db8:77::2/64") for a in addrs) and any(a.endswith(" 192.0.2.1/24") for a in addrs)
    assert any(a.endswith(" 2001:db8:77::1/64") for a in addrs)
    assert list(routers.values()) == [["2001:db8:78::fe"]]
    # netlink's dump: the two changes made after the snapshot, each once, and nothing else
    assert out["heard"] == ["address-added 2001:db8:77::9/64", "address-removed 2001:db8:77::1/64"]
    assert out["after"] == out["netlink_only"]


FEATURE = r"""
import json, sys
import PySide6.QtCore
import mhgui.core.state, mhgui.ui.window, _socket, select
from mhgui.ui.app import fast_feature_check
feature = sys.modules["shibokensupport.feature"]
original = feature._mod_uses_pyside
mods = [sys.modules[n] for n in ("mhgui.ui.window", "mhgui.core.state", "sys", "_socket", "select", "json",
                                 "PySide6.QtCore", "mhgui.ui.app")]
before = [original(m) for m in mods]
first, again = fast_feature_check(), fast_feature_check()
after = [feature._mod_uses_pyside(m) for m in mods]
print(json.dumps({"first": first, "again": again, "before": before, "after": after}))
"""


def test_fast_feature_check_gives_pysides_answers():
    """PySide6's per-import check ("does this module's source mention PySide6?") read the plain way gives the
    same answers as PySide's own for .py files, built-in and extension modules; patched once."""
    out = json.loads(run_py(FEATURE).stdout)
    assert out["first"] is True and out["again"] is False
    assert out["after"] == out["before"]
    assert out["before"][:2] == [True, False]  # the window uses PySide6, the core does not
