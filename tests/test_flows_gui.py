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
s.bind(("2001:db8:a::1", 8080)); s.listen(); print("ready", flush=True)
c, _ = s.accept(); sys.stdin.read()
'''
CLIENT = r'''
import socket, sys
c = socket.create_connection(("2001:db8:a::1", 8080)); print(c.getsockname()[1], flush=True); sys.stdin.read()
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


def test_move_a_live_connection_by_drag_and_by_keyboard(lab, qtbot, qapp):  # noqa: F811
    import qasync

    from mhgui.runtime import Runtime
    from mhgui.ui.flows_model import FLOW_MIME
    from mhgui.ui.window import LiveController, MainWindow

    lab.uplink("up0")
    lab.uplink("up1")
    lab.uplink("up2")
    lab.ip("-6", "addr", "add", "2001:db8:a::5/64", "dev", "up0", "nodad")
    lab.ip("-6", "addr", "add", "2001:db8:b::5/64", "dev", "up1", "nodad")
    lab.ip("link", "set", "p-up2", "down", ns=lab.peer)  # up2: no carrier
    lab.ip("-6", "addr", "add", "2001:db8:a::1/64", "dev", "p-up0", "nodad", ns=lab.peer)
    server = subprocess.Popen(["ip", "netns", "exec", lab.peer, sys.executable, "-c", SERVER],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    client = None
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    offers = []
    try:
        assert server.stdout.readline().strip() == "ready"
        client = subprocess.Popen(["ip", "netns", "exec", lab.ns, sys.executable, "-c", CLIENT],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(client.stdout.readline())
        flow_id = f"tcp [2001:db8:a::5]:{port} [2001:db8:a::1]:8080"
        with in_netns(lab.ns):
            rt = Runtime(use_networkmanager=False, vt_port=None, flows=True)
            c = LiveController(rt.store, rt.clock, flow_source=rt.flows)
            win = MainWindow(c)
            qtbot.addWidget(win)
            win.steer_offer.connect(offers.append)
            shown = []
            win.show_menu = lambda menu, where: shown.append(menu)  # offscreen: no popup grabs

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
                    # drag onto an interface without carrier: refused, with the reason
                    assert drop(win.interfaces_view, "up2", None, FLOW_MIME, flow_id.encode())
                    assert "up2 is down or has no carrier" in win.flow_label.text()
                    assert not offers
                    # drag onto up1: honest about the outcome, and a steering rule is offered
                    assert drop(win.interfaces_view, "up1", None, FLOW_MIME, flow_id.encode())
                    assert win.flow_label.text().startswith("This connection will not survive")
                    assert offers[-1].destination == "2001:db8:a::1" and offers[-1].interface == "up1"
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
                    assert offers and offers[0].destination == "2001:db8:a::1"
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
        asyncio.set_event_loop(None)
        loop.close()
        for p in (client, server):
            if p is not None:
                if p.poll() is None:
                    p.kill()
                p.wait(5)
                for f in (p.stdin, p.stdout):
                    if f and not f.closed:
                        f.close()
