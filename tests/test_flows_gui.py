"""Moving a live connection in the window: by drag and drop and from the keyboard, with honest outcomes."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from netns import lab  # noqa: F401  (fixture)
from test_rebind_e2e import in_netns

pytestmark = [pytest.mark.netns]

SERVER = r'''
import socket, sys
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("2001:db8:f::1", 8080)); s.listen(); print("ready", flush=True)
c, _ = s.accept(); sys.stdin.read()
'''
CLIENT = r'''
import socket, sys
c = socket.create_connection(("2001:db8:f::1", 8080)); print(c.getsockname()[1], flush=True); sys.stdin.read()
'''


def drop(view, row_text: str, mime, fmt: str, data: bytes) -> bool:
    from PySide6.QtCore import QMimeData
    md = QMimeData()
    md.setData(fmt, data)
    model = view.model()
    target = next(r for r in range(model.rowCount()) if model.index(r, 0).data() == row_text)
    pos = QPointF(view.visualRect(model.index(target, 0)).center())
    b, m = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    ok = True
    for ev in (QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, md, b, m),
               QDragMoveEvent(pos.toPoint(), Qt.DropAction.CopyAction, md, b, m),
               QDropEvent(pos, Qt.DropAction.CopyAction, md, b, m)):
        QApplication.sendEvent(view.viewport(), ev)
        ok = ok and ev.isAccepted()
    return ok


@pytest.fixture
def helper(lab, tmp_path):  # noqa: F811
    """The privileged helper on a private system bus, in the node namespace, polkit allowing steering."""
    from test_helper import READ, HelperProc, _start_stack

    from mhgui.helper.service import ACTION_STEER
    tmp_path.chmod(0o755)
    stack = _start_stack(systemd=False)
    proc = None
    try:
        conf = tmp_path / "mip6d.conf"
        conf.write_text("NodeConfig MN;\n")
        proc = HelperProc(stack, conf, "--state-dir", str(tmp_path / "state"),
                          wrapper=("ip", "netns", "exec", lab.ns)).start()
        stack.allow(READ, ACTION_STEER)
        yield stack
    finally:
        if proc is not None:
            proc.stop()
        stack.stop()


def _reap(*procs) -> None:
    """End the socket opener processes (killed if still running) and close their pipes."""
    for p in procs:
        if p is not None:
            if p.poll() is None:
                p.kill()
            p.wait(5)
            for f in (p.stdin, p.stdout):
                if f and not f.closed:
                    f.close()



def test_move_a_live_connection_by_drag_and_by_keyboard(lab, helper, qtbot, qloop):  # noqa: F811

    from mhgui.helper.client import HelperClient

    from mhgui.runtime import Runtime
    from mhgui.ui.flows_model import FLOW_MIME
    from mhgui.ui.window import LiveController, MainWindow

    lab.uplink("up0")
    lab.uplink("up1")
    lab.uplink("up2")
    lab.ip("-6", "addr", "add", "2001:db8:a::5/64", "dev", "up0", "nodad")
    lab.ip("-6", "addr", "add", "2001:db8:b::5/64", "dev", "up1", "nodad")
    lab.ip("link", "set", "p-up2", "down", ns=lab.peer)  # up2: no carrier
    # the peer routes for both uplinks and serves from 2001:db8:f::1, off-link for the node
    lab.ip("-6", "addr", "add", "2001:db8:a::1/64", "dev", "p-up0", "nodad", ns=lab.peer)
    lab.ip("-6", "addr", "add", "2001:db8:b::1/64", "dev", "p-up1", "nodad", ns=lab.peer)
    lab.ip("-6", "addr", "add", "2001:db8:f::1/128", "dev", "lo", ns=lab.peer)
    lab.ip("-6", "route", "add", "default", "via", "2001:db8:a::1", "dev", "up0", "metric", "100")
    lab.ip("-6", "route", "add", "default", "via", "2001:db8:b::1", "dev", "up1", "metric", "200")
    server = subprocess.Popen(["ip", "netns", "exec", lab.peer, sys.executable, "-c", SERVER],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    client = None
    loop = qloop
    offers = []
    try:
        assert server.stdout.readline().strip() == "ready"
        client = subprocess.Popen(["ip", "netns", "exec", lab.ns, sys.executable, "-c", CLIENT],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(client.stdout.readline())
        flow_id = f"tcp [2001:db8:a::5]:{port} [2001:db8:f::1]:8080"
        with in_netns(lab.ns):
            rt = Runtime(use_networkmanager=False, vt_port=None, flows=True)
            c = LiveController(rt.store, rt.clock, flow_source=rt.flows)
            win = MainWindow(c)
            qtbot.addWidget(win)
            win.steer_offer.connect(offers.append)
            shown = []
            win.show_menu = lambda menu, where: shown.append(menu)  # offscreen: no popup grabs
            dialogs = []
            win.open_dialog = dialogs.append  # the test answers the dialog itself
            win.helper_factory = lambda: HelperClient(helper.address)

            async def until(pred, what, timeout=10.0):
                deadline = loop.time() + timeout
                while not pred():
                    assert loop.time() < deadline, f"timed out waiting for {what}"
                    await asyncio.sleep(0.05)

            async def scenario():
                await rt.start()
                try:
                    await until(lambda: c.flows.row_of(flow_id) is not None, "the connection as a flow")
                    c.refresh()
                    place = c.flows.placement(flow_id)
                    assert (place.interface, place.local_role, place.movable) == ("up0", "coa", "re-establish")
                    assert c.flows.flow(flow_id).pid == client.pid or c.flows.flow(flow_id).process == "python3" \
                        or c.flows.flow(flow_id).process.startswith("python")
                    # selecting an interface filters the flows too
                    iv = win.interfaces_view
                    row_of = {iv.model().index(r, 0).data(): r for r in range(iv.model().rowCount())}
                    iv.selectRow(row_of["up1"])
                    assert win.flow_filter.mapFromSource(c.flows.index(c.flows.row_of(flow_id), 0)).isValid() is False
                    iv.selectRow(row_of["up0"])
                    assert win.flow_filter.mapFromSource(c.flows.index(c.flows.row_of(flow_id), 0)).isValid()
                    iv.clearSelection()
                    # drag onto an interface without carrier: refused, with the reason
                    assert drop(win.interfaces_view, "up2", None, FLOW_MIME, flow_id.encode())
                    assert "up2 is down or has no carrier" in win.flow_label.text()
                    assert not offers
                    # drag onto up1: honest about the outcome, and a steering rule is offered
                    assert drop(win.interfaces_view, "up1", None, FLOW_MIME, flow_id.encode())
                    assert win.flow_label.text().startswith("This connection will not survive")
                    assert offers[-1].destination == "2001:db8:f::1" and offers[-1].interface == "up1"
                    # the keyboard: select the flow, Ctrl+M's action opens the menu; choose up1
                    v = win.flows_view
                    src_row = c.flows.row_of(flow_id)
                    proxy_index = win.flow_filter.mapFromSource(c.flows.index(src_row, 0))
                    v.selectRow(proxy_index.row())
                    action = next(a for a in v.actions() if a.shortcut().toString() == "Ctrl+M")
                    action.trigger()
                    menu = win._last_flow_menu
                    assert shown == [menu]
                    sub = menu.actions()[0].menu()
                    up1 = next(a for a in sub.actions() if a.text() == "up1")
                    offers.clear()
                    up1.trigger()
                    assert offers and offers[0].destination == "2001:db8:f::1"
                    # the user accepts the offer: the helper installs the rule, the rules tab lists it
                    box = dialogs[-1]
                    assert box.text().startswith("This connection will not survive")
                    accept = next(b for b in box.buttons() if b.text().startswith("Send new connections"))
                    accept.click()
                    await until(lambda: win.rules_model.rowCount() == 1, "the rule in the rules tab")
                    m = win.rules_model
                    assert m.index(0, m.COL_DEST).data() == "2001:db8:f::1/128"
                    assert m.index(0, m.COL_IFACE).data() == "up1" and m.index(0, m.COL_KERNEL).data() == "yes"
                    assert "2001:db8:f::1 via 2001:db8:b::1 dev up1" in lab.ip("-6", "route", "show", "table", "all")
                    # changed, then removed, from the rules tab
                    rid = m.rule_id(0)
                    await win.change_rule(rid, "up0")
                    assert m.rowCount() == 1 and m.index(0, m.COL_IFACE).data() == "up0"
                    await win.remove_rule(m.rule_id(0))
                    assert m.rowCount() == 0
                    assert "2001:db8:f::1" not in lab.ip("-6", "route", "show", "table", "all")
                    # the client closes: the row follows the kernel (FIN-WAIT/TIME-WAIT, then gone)
                    client.stdin.close()
                    client.wait(5)
                    await until(lambda: c.flows.row_of(flow_id) is None or c.flows.flow(flow_id).state != "ESTAB",
                                "the flow to close")
                finally:
                    await rt.stop()

            try:
                loop.run_until_complete(scenario())
            finally:
                c.close()
    finally:
        _reap(client, server)


def test_mhctl_move_and_rules(lab, helper):  # noqa: F811
    import json

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

    server = subprocess.Popen(["ip", "netns", "exec", lab.peer, sys.executable, "-c", SERVER],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    client = None
    try:
        assert server.stdout.readline().strip() == "ready"
        client = subprocess.Popen(["ip", "netns", "exec", lab.ns, sys.executable, "-c", CLIENT],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(client.stdout.readline())
        flow_id = f"tcp [2001:db8:a::5]:{port} [2001:db8:f::1]:8080"
        flows = json.loads(mhctl("flows", "--json").stdout)["flows"]
        mine = next(f for f in flows if f["local"]["port"] == port and f["protocol"] == "tcp")
        assert (mine["interface"], mine["local_role"], mine["movable"]) == ("up0", "coa", "re-establish")
        p = mhctl("move", flow_id, "upB")
        assert p.returncode == 1 and "there is no interface upB" in p.stdout
        p = mhctl("move", flow_id, "up1", "--yes")
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("This connection will not survive") and "steering rule" in p.stdout
        rules = json.loads(mhctl("rules", "--json").stdout)["rules"]
        assert [(r["destinations"], r["interface"], r["in_kernel"]) for r in rules] == [(["2001:db8:f::1/128"], "up1", True)]
        rid = rules[0]["id"]
        assert mhctl("rules", "edit", rid, "up0").returncode == 0
        rules = json.loads(mhctl("rules", "--json").stdout)["rules"]
        assert [(r["destinations"], r["interface"]) for r in rules] == [(["2001:db8:f::1/128"], "up0")]
        assert mhctl("rules", "remove", rules[0]["id"]).returncode == 0
        assert "no steering rules" in mhctl("rules").stdout
        assert "2001:db8:f::1" not in lab.ip("-6", "route", "show", "table", "all")
    finally:
        _reap(client, server)
