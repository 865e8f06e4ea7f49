"""End to end with several care-of addresses (RFC 5648) and flow bindings (RFC 6089), in ``mhctl lab``.

The mobile node registers both uplinks (``multiple_care_of = true``). On real sockets, kernels, NAT44:

- the bulk Binding Update's BID options as tshark decodes them, and the Flow Identification option
  checked byte by byte against engine.md §4 (tshark has no fields for it);
- two TCP connections from the home address: one is moved to the other uplink; both keep running with
  every byte verified; the captures, decrypted with the node's key (an implementation written here from
  docs/engine-design.md, not the engine's), show the moved flow in both directions on the new uplink
  only and the other flow unchanged;
- a UDP stream at 1,000 packets/s each way bound to both uplinks (bicast) with 1 % duplicates sent by
  the application: one uplink is cut mid-stream; nothing is lost and exactly the intentional
  duplicates are delivered;
- refusals: a malformed selector, an unknown uplink, the per-node limit.

One lab for the module (prefix ``m<pid % 1000>``). Needs root, iproute2, nftables, dbus-daemon, tshark.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time

import pytest

from enginelab import (CN_ADDRESS, HOA, UDP_PEER, UP, DBusError, LabHandle, Stream, capturing, dbus_call, dbus_json,
                       end, flow_reply, flows_on_the_wire, ns_popen, read_line, tshark_rows, wait_for, why_not)
from mhgui.engine import wire
from mhgui.engine.config import read_key_file
from mhgui.lab import Lab

pytestmark = [pytest.mark.netns, pytest.mark.skipif(why_not() is not None, reason=why_not() or "")]

PREFIX = f"m{os.getpid() % 1000}"
COA6, COA4 = UP["up0"][1], UP["up1"][1]


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def lab():
    if Lab.is_up(PREFIX):
        Lab.down(PREFIX)
    try:
        handle = LabHandle(PREFIX, Lab.up(PREFIX, mcoa=True))
        handle.settle()
        wait_for(lambda: both_paths(handle), 10, "the home agent to know both paths")
        yield handle
    finally:
        Lab.down(PREFIX)


@pytest.fixture
def record(request):
    """``record(name, value)`` into the test's report (as in test_engine_lab.py)."""
    return lambda name, value: request.node.user_properties.append((name, value))


@pytest.fixture(autouse=True)
def _clean(lab):
    """Each test starts with both uplinks up, both paths known, no flow bindings."""
    lab.settle()
    for f in flows(lab)["flows"]:
        remove_flow(lab, f["fid"])
    wait_for(lambda: both_paths(lab), 10, "both paths again")
    yield


def both_paths(lab: LabHandle) -> bool:
    b = lab.ha_binding()
    return b is not None and len([p for p in b.get("paths", []) if p["peer"] and p["priority"] < 127]) == 2


def flows(lab: LabHandle) -> dict:
    return dbus_json(lab.bus, "GetFlowBindings")


def add_flow(lab: LabHandle, selector: dict, uplinks: list[str]) -> dict:
    return flow_reply(dbus_call(lab.bus, "AddFlowBinding", f"string:{HOA}", f"string:{json.dumps(selector)}",
                            "array:string:" + ",".join(uplinks)))


def remove_flow(lab: LabHandle, fid: int) -> dict:
    return flow_reply(dbus_call(lab.bus, "RemoveFlowBinding", f"string:{HOA}", f"uint16:{fid}"))


# ----------------------------------------------------------------------------- 1. on the wire
def test_bulk_registration_and_flow_identification_on_the_wire(lab, tmp_path):
    with capturing(lab, ("ar1", "ar2"), tmp_path) as (ar1, ar2):
        r = dbus_call(lab.bus, "Rebind", f"string:{HOA}", "string:up1")  # the default moves: one bulk BU on up1
        assert "true" in r
        sel = {"source_address": CN_ADDRESS, "protocol": "tcp", "source_port": 443, "destination_port": [50000, 50010]}
        added = add_flow(lab, sel, ["up0"])
        assert added["confirmed"], added
    fields = ["mip6.mhtype", "mip6.bi.bid", "mip6.bi.coa_ipv4", "mip6.bi.coa_ipv6", "mip6.bi.status", "udp.payload"]
    rows = [r for r in tshark_rows(ar2.path, fields, display_filter="mip6.mhtype == 5")]
    assert rows, "no Binding Update on up1"
    first = rows[0]
    bids = first["mip6.bi.bid"].split(",")
    assert len(bids) == 2 and first["mip6.bi.coa_ipv4"] == COA4 and first["mip6.bi.coa_ipv6"] == COA6, first
    # the Flow Identification option, byte by byte (engine.md §4), in the BU that carried the flow
    bu = None
    for r in tshark_rows(ar2.path, fields, display_filter="mip6.mhtype == 5"):
        src, dst, mh = wire.decode_packet(bytes.fromhex(r["udp.payload"]))
        if 45 in _option_types(mh):
            bu = mh
    assert bu is not None, "no BU with a Flow Identification option"
    d = _option(bu, 45)
    fid, fid_pri, rsvd, status = struct.unpack_from(">HHBB", d)
    assert (fid, fid_pri, rsvd, status) == (added["fid"], added["fid"], 0, 0)
    assert d[6] == 2 and d[7] == 2  # Binding Reference: one BID
    up0_bid = int(bids[1]) if rows[0]["mip6.bi.coa_ipv6"] else None
    assert struct.unpack_from(">H", d, 8)[0] == up0_bid
    assert d[10] == 3 and d[12] == 2 and d[13] == 0  # Traffic Selector, TS format 2 (IPv6 binary), reserved
    flags = struct.unpack_from(">H", d, 14)[0]
    assert flags == (1 << 15) | (1 << 7) | (1 << 5) | (1 << 4) | (1 << 1)  # A, I, K+L, O
    body = d[18:]
    assert body[:16] == wire.addr16(CN_ADDRESS) and struct.unpack_from(">HHHB", body, 16) == (443, 50000, 50010, 6)


def _option_types(mh: bytes) -> list[int]:
    return [t for t, _o, _d in _walk(mh)]


def _option(mh: bytes, t: int) -> bytes:
    return next(d for tt, _o, d in _walk(mh) if tt == t)


def _walk(mh: bytes):
    """Options of a BU (after its 12-byte start), read here without the codec."""
    off, out = 12, []
    while off < len(mh):
        t = mh[off]
        if t == 0:
            off += 1
            continue
        n = mh[off + 1]
        out.append((t, off, mh[off + 2:off + 2 + n]))
        off += 2 + n
    return out


# ----------------------------------------------------------------------------- 2. move one connection
def test_move_one_tcp_connection_the_other_keeps_its_path(lab, tmp_path, record):
    key = read_key_file(str(lab.state / "keys" / "mn1.key"))
    with capturing(lab, ("ar1", "ar2"), tmp_path) as (ar1, ar2):
        a, b = Stream(lab, rate=400e3), Stream(lab, rate=400e3)
        try:
            time.sleep(1.0)
            sel = {"source_address": CN_ADDRESS, "protocol": "tcp", "source_port": a.server_port,
                   "destination_port": a.client_port}
            t0 = time.time()
            moved = add_flow(lab, sel, ["up1"])
            assert moved["confirmed"], moved
            time.sleep(2.5)
            ra, rb = a.stop(), b.stop()
        finally:
            a.close()
            b.close()
    for r in (ra, rb):
        assert r["client"]["error"] is None and r["server"]["error"] is None, r
        assert r["server"]["ok"] and r["server"]["received"] == r["client"]["sent"] > 0, r
    record("flow_move_ms", moved["elapsed_ms"])
    seen = flows_on_the_wire(key, {"up0": ar1.path, "up1": ar2.path}, after=t0 + moved["elapsed_ms"] / 1000 + 0.05)
    print(f"\nflow moved in {moved['elapsed_ms']:.1f} ms; frames per (link, direction, ports): {seen_summary(seen)}")
    fa = {(a.client_port, a.server_port), (a.server_port, a.client_port)}
    fb = {(b.client_port, b.server_port), (b.server_port, b.client_port)}
    a_links = {(link, d) for (link, d, ports) in seen if ports in fa}
    b_links = {(link, d) for (link, d, ports) in seen if ports in fb}
    assert a_links == {("up1", "up"), ("up1", "down")}, seen
    assert b_links == {("up0", "up"), ("up0", "down")}, seen


def seen_summary(seen: dict) -> str:
    return ", ".join(f"{k[0]}/{k[1]}/{k[2][0]}>{k[2][1]}: {v}" for k, v in sorted(seen.items()))


# ----------------------------------------------------------------------------- 3. bicast across a cut
def test_bicast_udp_across_a_link_cut_loses_nothing_and_dedups(lab, record):
    mport, cport, n = 41000, 41001, 3000
    sel = {"source_address": CN_ADDRESS, "protocol": "udp", "source_port": cport, "destination_port": mport}
    r = add_flow(lab, sel, ["up0", "up1"])
    assert r["confirmed"], r
    wait_for(lambda: flows(lab)["flows"][0]["bound_to"] == ["up0", "up1"], 5, "the flow on both uplinks")
    mn = ns_popen(lab.ns("mn"), UDP_PEER, HOA, str(mport), CN_ADDRESS, str(cport), str(n), "1000")
    cn = ns_popen(lab.ns("cn"), UDP_PEER, CN_ADDRESS, str(cport), HOA, str(mport), str(n), "1000")
    try:
        assert read_line(mn) == "ready" and read_line(cn) == "ready"
        mn.stdin.write("go\n")
        mn.stdin.flush()
        cn.stdin.write("go\n")
        cn.stdin.flush()
        time.sleep(1.2)
        Lab.cut(lab.prefix, "up0")  # mid-stream: the default path and one copy's path
        out_mn = json.loads(read_line(mn, timeout=20))
        out_cn = json.loads(read_line(cn, timeout=20))
    finally:
        end(mn)
        end(cn)
        Lab.restore(lab.prefix, "up0")
    record("bicast", {"to_mn": out_mn, "to_cn": out_cn})
    print(f"\nbicast across a cut: to the node {out_mn}, to the correspondent {out_cn}")
    for side, out, other in (("MN", out_mn, out_cn), ("CN", out_cn, out_mn)):
        assert out["received"] == n and not out["missing"], (side, out)
        assert out["dups"] == other["intended"] == 30, (side, out)  # the intentional ones, no more


# ----------------------------------------------------------------------------- 4. refusals
def test_refusals_are_clear_and_change_nothing(lab):
    before = flows(lab)["flows"]
    with pytest.raises(DBusError) as e:
        add_flow(lab, {"source_port": [9, 1]}, ["up1"])
    assert e.value.name.endswith("InvalidArgs") and "after end" in e.value.message
    with pytest.raises(DBusError) as e:
        add_flow(lab, {"protocol": "icmpv6", "destination_port": 53}, ["up1"])
    assert "never match" in e.value.message
    r = add_flow(lab, {"protocol": "tcp", "source_port": 22}, ["wlan7"])
    assert not r["confirmed"] and "wlan7 is not an access interface" in r["reason"]
    assert flows(lab)["flows"] == before
    n = 0
    while True:
        r = add_flow(lab, {"source_address": CN_ADDRESS, "protocol": "tcp", "source_port": 443,
                           "destination_port": 20000 + n}, ["up1"])
        if not r["confirmed"]:
            break
        n += 1
        assert n < 100
    assert "2048 bytes" in r["reason"] and f"({n} fit)" in r["reason"]
    assert len(flows(lab)["flows"]) == n
    ha = lab.ha_binding()
    wait_for(lambda: len(lab.ha_binding()["flows"]) == n, 5, "the home agent's flow count")
    assert ha is not None


# ----------------------------------------------------------------------------- 5. the app's driver, real daemon
@pytest.mark.asyncio
async def test_the_apps_driver_binds_moves_and_removes_a_flow(lab):
    from mhgui.daemons.base import STATE_CONNECTED, FlowBinding, TrafficSelector
    from mhgui.daemons.engine import EngineDriver

    drv = EngineDriver(bus_address=lab.bus, backoff_initial=0.05, backoff_max=0.2)
    await drv.start()
    try:
        deadline = time.monotonic() + 10
        while drv.status.state != STATE_CONNECTED:
            assert time.monotonic() < deadline, drv.status
            await asyncio.sleep(0.02)
        caps = drv.capabilities
        assert caps.multiple_coas and caps.flow_bindings
        paths = {p["interface"]: p["bid"] for p in drv.raw_bindings()[0]["paths"]}
        assert set(paths) == {"up0", "up1"}
        ts = TrafficSelector(source_address=CN_ADDRESS, destination_address=HOA, source_port=443,
                             destination_port=50123, next_header=6)
        r = await drv.bind_flow(HOA, ts, ["up1"])
        assert r.confirmed and r.fid and r.elapsed_ms > 0, r
        [f] = drv.flow_bindings()
        assert f["bound_to"] == ["up1"] and f["state"] == "bound"
        r2 = await drv.set_flow_binding(FlowBinding(r.fid, r.fid, (paths["up0"], paths["up1"]), ts), HOA)
        assert r2.confirmed, r2  # the same FID, now on both (bicast)
        assert (await drv.list_flow_bindings())[0]["bound_to"] == ["up0", "up1"]
        bad = await drv.set_flow_binding(FlowBinding(9, 9, (77,), ts), HOA)
        assert not bad.confirmed and "BID 77" in bad.reason
        gone = await drv.remove_flow_binding(HOA, r.fid)
        assert gone.confirmed and drv.flow_bindings() == []
    finally:
        await drv.stop()


# ----------------------------------------------------------------------------- 6. mhctl flow-bindings
def test_mhctl_flow_bindings(lab):
    import subprocess
    import sys
    mhctl = [sys.executable, "-m", "mhgui.cli"]
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=lab.bus)

    def run(*args):
        return subprocess.run(mhctl + ["flow-bindings", *args], capture_output=True, text=True, env=env, timeout=60)

    r = run("add", "--remote", CN_ADDRESS, "--remote-port", "443", "--local-port", "40000", "--via", "up1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["schema"] == 1 and out["confirmed"] and out["fid"] >= 1
    fid = out["fid"]
    r = run()
    assert r.returncode == 0 and f"FID {fid:>5}" in r.stdout and "up1 (BID" in r.stdout and "[bound]" in r.stdout
    r = run("change", str(fid), "--via", "up0, up1")  # as a user types it
    assert r.returncode == 0 and "its packets go out on each and the first copy is kept" in r.stdout
    listed = json.loads(run("list", "--json").stdout)["flow_bindings"]
    assert [f["bound_to"] for f in listed] == [["up0", "up1"]]
    r = run("add", "--remote-port", "9-1", "--via", "up1")
    assert r.returncode == 2 and "after end" in r.stderr
    r = run("add", "--remote", CN_ADDRESS, "--via", "wlan9")
    assert r.returncode == 1 and "wlan9 is not an access interface" in r.stderr
    r = run("remove", "77")
    assert r.returncode == 1 and "no flow binding with that FID" in r.stderr
    assert run("share").returncode == 2
    r = run("share", "up0=0", "up1=0")
    assert r.returncode == 0 and "load sharing off" in r.stdout
    r = run("add", "--remote", "192.0.2.77", "--via", "up1")
    assert r.returncode == 2 and "--remote: 192.0.2.77 is not an IPv6 address" in r.stderr
    r = run("add", "--remote-port", "99999", "--via", "up1")
    assert r.returncode == 2 and "--remote-port:" in r.stderr
    r = run("share", "up0=1", "up1=2")
    assert r.returncode == 0 and json.loads(run("list", "--json").stdout)["weights"] == {"up0": 1, "up1": 2}
    assert "[load_sharing.weights]" in (lab.state / "mn.toml").read_text()  # saved: it outlives a restart
    Lab.stop_daemons(lab.prefix)
    lab.info = Lab.start_daemons(lab.prefix)
    wait_for(lambda: both_paths(lab), 15, "both paths after the restart")
    assert json.loads(run("list", "--json").stdout)["weights"] == {"up0": 1, "up1": 2}
    fid = json.loads(run("add", "--remote", CN_ADDRESS, "--remote-port", "443", "--local-port", "40000", "--via",
                         "up1", "--json").stdout)["fid"]  # (the restart deregistered the flow binding)
    assert run("share", "off").returncode == 0
    assert "load_sharing" not in (lab.state / "mn.toml").read_text()
    r = run("remove", str(fid))
    assert r.returncode == 0 and "follows its home address again" in r.stdout


# ----------------------------------------------------------------------------- 7. temp files of a killed writer
def test_daemons_remove_temp_files_left_by_a_killed_writer(lab):
    import subprocess
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that is gone
    stale = [lab.state / f".mn.toml.mhgui-tmp.{dead.pid}.abcd1234.tmp",
             lab.state / "ha-state" / f".bindings.json.mhgui-tmp.{dead.pid}.abcd1234.tmp"]
    live = lab.state / f".mn.toml.mhgui-tmp.{os.getpid()}.abcd1234.tmp"  # a writer still alive: kept
    Lab.stop_daemons(lab.prefix)
    try:
        for p in stale + [live]:
            p.write_bytes(b"half a file")
        lab.info = Lab.start_daemons(lab.prefix)
        wait_for(lambda: not any(p.exists() for p in stale), 10, "the stale temp files to go")
        assert live.exists()
    finally:
        live.unlink(missing_ok=True)
        lab.settle()


# ----------------------------------------------------------------------------- 8. the window moves one connection
def test_window_moves_one_live_connection_the_other_stays(lab, tmp_path, qtbot, qloop, record):
    from mhgui.core.flows import flow_id
    from mhgui.daemons.engine import EngineDriver
    from mhgui.runtime import Runtime
    from mhgui.ui.flows_model import FLOW_MIME
    from mhgui.ui.window import LiveController, MainWindow
    from test_flows_gui import drop
    from test_rebind_e2e import in_netns

    key = read_key_file(str(lab.state / "keys" / "mn1.key"))
    loop = qloop

    async def until(pred, what, timeout=15.0):
        deadline = loop.time() + timeout
        while not pred():
            assert loop.time() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)

    with capturing(lab, ("ar1", "ar2"), tmp_path) as (ar1, ar2):
        a, b = Stream(lab, rate=300e3), Stream(lab, rate=300e3)
        try:
            fa = flow_id("tcp", HOA, a.client_port, CN_ADDRESS, a.server_port)
            fb = flow_id("tcp", HOA, b.client_port, CN_ADDRESS, b.server_port)
            with in_netns(lab.ns("mn")):
                rt = Runtime(system_bus=lab.bus, use_networkmanager=False, flows=True,
                             daemon=EngineDriver(bus_address=lab.bus))
                c = LiveController(rt.store, rt.clock, daemon=rt.daemon, flow_source=rt.flows)
                win = MainWindow(c)
                qtbot.addWidget(win)
                t0 = []

                async def scenario():
                    await rt.start()
                    try:
                        await until(lambda: rt.daemon.capabilities.flow_bindings, "the engine with flow bindings")
                        await until(lambda: c.flows.row_of(fa) is not None and c.flows.row_of(fb) is not None,
                                    "both connections in the flows view")
                        c.refresh()
                        assert c.flows.placement(fa).local_role == "hoa"
                        t0.append(time.time())
                        assert drop(win.interfaces_view, "up1", None, FLOW_MIME, fa.encode())
                        await until(lambda: win.flowbinder.last_result is not None, "the flow binding")
                        r = win.flowbinder.last_result
                        assert r.confirmed, r
                        text = win.flow_label.text()
                        assert text.startswith("Moved, the connection continues: confirmed by the home agent in "), text
                        record("window_flow_move_ms", r.elapsed_ms)
                        await until(lambda: [f["bound_to"] for f in rt.daemon.flow_bindings()] == [["up1"]],
                                    "the driver's flow list")

                        def iface_text(fid_text):
                            c.refresh()
                            return c.flows.index(c.flows.row_of(fid_text), c.flows.COL_IFACE).data()
                        await until(lambda: iface_text(fa).startswith("up1 (FID "), "the flows view")
                        assert iface_text(fb) == "up0"  # the other: its HoA's
                        # the binding table: one row per BID, the default path first
                        bm = c.bindings
                        rows = [(bm.index(r, bm.COL_IFACE).data(), bm.index(r, bm.COL_BID).data())
                                for r in range(bm.rowCount())]
                        assert [r[0] for r in rows] == ["up0", "up1"] and all(r[1] not in ("", "—") for r in rows)
                        # the same connection again, to both: its binding changes, no second one
                        win.send_on_all(fa)
                        await until(lambda: [f["bound_to"] for f in rt.daemon.flow_bindings()] == [["up0", "up1"]],
                                    "the flow on both uplinks")
                        assert len(rt.daemon.flow_bindings()) == 1
                        win.move_flow(fa, "up1")
                        await until(lambda: [f["bound_to"] for f in rt.daemon.flow_bindings()] == [["up1"]],
                                    "back to up1 only")
                        await asyncio.sleep(1.5)
                    finally:
                        await rt.stop()
                try:
                    loop.run_until_complete(scenario())
                finally:
                    c.close()
            ra, rb = a.stop(), b.stop()
        finally:
            a.close()
            b.close()
    for r in (ra, rb):
        assert r["server"]["ok"] and r["server"]["received"] == r["client"]["sent"] > 0, r
    seen = flows_on_the_wire(key, {"up0": ar1.path, "up1": ar2.path}, after=t0[0] + 0.5)
    fa_ports = {(a.client_port, a.server_port), (a.server_port, a.client_port)}
    fb_ports = {(b.client_port, b.server_port), (b.server_port, b.client_port)}
    assert {(link, d) for (link, d, p) in seen if p in fb_ports} == {("up0", "up"), ("up0", "down")}, seen
    assert ("up1", "up") in {(link, d) for (link, d, p) in seen if p in fa_ports}, seen


def test_mhctl_move_binds_one_connection(lab):
    import subprocess
    import sys
    from mhgui.core.flows import flow_id
    s = Stream(lab, rate=200e3)
    try:
        fid_text = flow_id("tcp", HOA, s.client_port, CN_ADDRESS, s.server_port)
        p = subprocess.run(["ip", "netns", "exec", lab.ns("mn"), sys.executable, "-m", "mhgui.cli", "move", fid_text,
                            "up1", "--yes", "--no-networkmanager", "--system-bus", lab.bus],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "Only this connection moves to up1" in p.stdout and "moved, the connection continues" in p.stdout
        assert [f["bound_to"] for f in flows(lab)["flows"]] == [["up1"]]
        shown = subprocess.run(["ip", "netns", "exec", lab.ns("mn"), sys.executable, "-m", "mhgui.cli", "flows",
                                "--no-networkmanager", "--system-bus", lab.bus], capture_output=True, text=True,
                               timeout=60).stdout
        assert "up1 (FID " in next(line for line in shown.splitlines() if f":{s.client_port} " in line)
        back = subprocess.run(["ip", "netns", "exec", lab.ns("mn"), sys.executable, "-m", "mhgui.cli", "move",
                               fid_text, "up0", "--yes", "--no-networkmanager", "--system-bus", lab.bus],
                              capture_output=True, text=True, timeout=60)
        assert back.returncode == 0, back.stdout + back.stderr  # a bound connection moves back, not "already"
        assert [f["bound_to"] for f in flows(lab)["flows"]] == [["up0"]] and len(flows(lab)["flows"]) == 1
        r = s.stop()
    finally:
        s.close()
    assert r["server"]["ok"] and r["server"]["received"] == r["client"]["sent"], r


# ----------------------------------------------------------------------------- 9. the system bus restarts
def test_the_control_api_comes_back_after_the_bus_restarts(lab):
    import signal
    import mhgui.lab as labmod
    for role in ("authority", "bus"):
        pid = lab.info.pids[role]
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not labmod._alive(pid), 10, f"the lab's {role} to stop")
    lab.info.pids["bus"] = labmod._start_bus(lab.state)
    lab.info.pids["authority"] = labmod._start_authority(lab.state, lab.bus, ())
    Lab._save(lab.info)

    def back():
        try:
            return dbus_json(lab.bus, "GetStatus")["multiple_care_of"]
        except DBusError:
            return False
    wait_for(back, 20, "the mobile node's control API on the new bus")
    assert "offering it again" in lab.log("mn")
