"""'Mobility daemon lost' offers a Restart button on the desktop notification (issue 15.7): sent with the
notification, and a press (the server's ActionInvoked signal) reaches the app. python-dbusmock's
notification_daemon on a private session bus."""

from __future__ import annotations

import asyncio
import shutil

import dbus
import pytest

from mhgui.core.notices import NoticeCoalescer, daemon_back, daemon_lost, summarise
from mhgui.ui.notify import DesktopNotifier
from test_notify import MOCK_IFACE, notification_daemon, notify_calls, run, session_bus  # noqa: F401

pytestmark = pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="needs dbus-daemon")


def test_the_lost_notice_carries_a_restart_and_back_does_not():
    lost = daemon_lost("the mobility engine", "nobody owns its name")
    assert lost.actions == (("restart-daemon", "Restart"),)
    assert daemon_lost("mip6d", restart=False).actions == ()
    assert summarise([lost], False).actions == lost.actions
    # lost then back in one burst: the newest event has nothing to restart
    assert summarise([lost, daemon_back("the mobility engine", 3.0)], False).actions == ()


def test_restart_button_is_sent_and_its_press_reaches_the_app(qloop, session_bus, notification_daemon):  # noqa: F811
    n = DesktopNotifier(bus_address=session_bus.address, clock=qloop.time)
    n.coalescer = NoticeCoalescer(qloop.time, quiet=0.05, max_delay=0.1)
    pressed: list[str] = []
    n.on_action = pressed.append

    async def scenario():
        n.notify(daemon_lost("the mobility engine", "nobody owns its name"))
        await asyncio.sleep(0.2)
        await n.drain()
        nid = n.sent[-1][0]
        mock = notification_daemon.obj
        # another notification's button, and an unknown key of ours: not for the app
        mock.EmitSignal("org.freedesktop.Notifications", "ActionInvoked", "us",
                        [dbus.UInt32(nid + 1000), "restart-daemon"], dbus_interface=MOCK_IFACE)
        mock.EmitSignal("org.freedesktop.Notifications", "ActionInvoked", "us",
                        [dbus.UInt32(nid), "reboot"], dbus_interface=MOCK_IFACE)
        mock.EmitSignal("org.freedesktop.Notifications", "ActionInvoked", "us",
                        [dbus.UInt32(nid), "restart-daemon"], dbus_interface=MOCK_IFACE)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not pressed and loop.time() < deadline:
            await asyncio.sleep(0.02)

    try:
        run(qloop, scenario())
        calls = notify_calls(notification_daemon)
        assert [list(map(str, c[5])) for c in calls] == [["restart-daemon", "Restart"]]
        assert str(calls[0][3]) == "Mobility daemon lost: the mobility engine"
        assert pressed == ["restart-daemon"]
    finally:
        run(qloop, n.close())
