"""Only the notification server presses our buttons (review of issue 15.7): a second connection on the same
private session bus forges ``ActionInvoked`` (broadcast, and sent straight to the app's unique name, past
every match rule) and ``NotificationClosed``; neither counts. The server's own signals do, and a server
that is replaced takes its notifications' buttons with it. python-dbusmock's notification_daemon."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import dbus
import pytest
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from dbusmock import SpawnedMock
from dbusmock.testcase import BusType

from mhgui.core.notices import NoticeCoalescer, daemon_lost
from mhgui.ui.notify import DesktopNotifier
from test_notify import MOCK_IFACE, notification_daemon, run, session_bus  # noqa: F401

pytestmark = pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="needs dbus-daemon")
IFACE = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"


def _signal(member: str, signature: str, body: list, destination: str | None = None) -> Message:
    return Message.new_signal(PATH, IFACE, member, signature, body) if destination is None else Message(
        message_type=MessageType.SIGNAL, path=PATH, interface=IFACE, member=member, signature=signature,
        body=body, destination=destination)


async def _until(pred, timeout=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return pred()


async def _settle():
    await asyncio.sleep(0.3)  # what was sent has been delivered (one bus, one host: a round trip is ~1 ms)


def _notifier(qloop, session_bus):  # noqa: F811
    n = DesktopNotifier(bus_address=session_bus.address, clock=qloop.time)
    n.coalescer = NoticeCoalescer(qloop.time, quiet=0.05, max_delay=0.1)
    pressed: list[str] = []
    n.on_action = pressed.append
    return n, pressed


async def _notified(n, note) -> int:
    """``note`` sent by the notifier ``n`` (what it sends is in ``n.sent``): its notification id."""
    n.notify(note)
    await asyncio.sleep(0.2)
    await n.drain()
    return n.sent[-1][0]


def test_a_forged_action_from_another_connection_is_ignored(qloop, session_bus, notification_daemon):  # noqa: F811
    n, pressed = _notifier(qloop, session_bus)

    async def scenario():
        nid = await _notified(n, daemon_lost("the mobility engine", "nobody owns its name"))
        forger = await MessageBus(bus_address=session_bus.address).connect()
        try:
            # broadcast, then straight to the app's connection (no match rule stands in the way of that)
            await forger.send(_signal("ActionInvoked", "us", [nid, "restart-daemon"]))
            await forger.send(_signal("ActionInvoked", "us", [nid, "restart-daemon"], n._bus.unique_name))
            # a forged close must not retire the real buttons either
            await forger.send(_signal("NotificationClosed", "uu", [nid, 2], n._bus.unique_name))
            await _settle()
            forged = list(pressed)
            # the server's own press counts
            notification_daemon.obj.EmitSignal(IFACE, "ActionInvoked", "us", [dbus.UInt32(nid), "restart-daemon"],
                                               dbus_interface=MOCK_IFACE)
            await _until(lambda: pressed)
            real = list(pressed)
            # the server closes it: its button can no longer be pressed (a late ActionInvoked is ignored)
            notification_daemon.obj.EmitSignal(IFACE, "NotificationClosed", "uu", [dbus.UInt32(nid), dbus.UInt32(2)],
                                               dbus_interface=MOCK_IFACE)
            await _settle()
            notification_daemon.obj.EmitSignal(IFACE, "ActionInvoked", "us", [dbus.UInt32(nid), "restart-daemon"],
                                               dbus_interface=MOCK_IFACE)
            await _settle()
            return forged, real, list(pressed)
        finally:
            forger.disconnect()

    try:
        forged, real, after_close = run(qloop, scenario())
    finally:
        run(qloop, n.close())
    assert forged == []
    assert real == ["restart-daemon"]
    assert after_close == ["restart-daemon"]


def test_a_new_server_takes_over_and_the_old_buttons_go(qloop, session_bus, notification_daemon):  # noqa: F811
    """The server is replaced (it crashed, another desktop's started): whoever owns the name now is the
    server; the old one's notification ids mean nothing to it."""
    n, pressed = _notifier(qloop, session_bus)

    async def scenario():
        nid = await _notified(n, daemon_lost("the mobility engine", "gone"))
        notification_daemon.terminate()
        notification_daemon.process.wait()
        await _until(lambda: getattr(n, "_server", "?") is None, 2.0)
        newcomer = await MessageBus(bus_address=session_bus.address).connect()
        try:
            reply = await newcomer.request_name(IFACE)
            await _until(lambda: getattr(n, "_server", None) == newcomer.unique_name, 2.0)
            # the new owner presses a button of the old server's notification: not ours any more
            await newcomer.send(_signal("ActionInvoked", "us", [nid, "restart-daemon"]))
            await _settle()
            return reply, getattr(n, "_server", None) == newcomer.unique_name, list(pressed)
        finally:
            newcomer.disconnect()

    try:
        reply, followed, got = run(qloop, scenario())
    finally:
        run(qloop, n.close())
    assert got == []  # (before: the newcomer's press of an id it never gave counted)
    assert reply.value == 1 and followed  # PRIMARY_OWNER, and the notifier followed the name


def test_a_server_started_on_demand_is_known_from_its_reply(qloop, session_bus):  # noqa: F811
    """No owner when the app connects (a server activated by the first Notify): the reply names it."""
    n, pressed = _notifier(qloop, session_bus)

    async def scenario():
        await n._connect()
        assert n._server is None
        mock = SpawnedMock.spawn_with_template("notification_daemon", bustype=BusType.SESSION,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            n.notify(daemon_lost("the mobility engine", "gone"))
            await asyncio.sleep(0.2)
            await n.drain()
            await _until(lambda: n._server is not None)
            nid = n.sent[-1][0]
            mock.obj.EmitSignal(IFACE, "ActionInvoked", "us", [dbus.UInt32(nid), "restart-daemon"],
                                dbus_interface=MOCK_IFACE)
            await _until(lambda: pressed)
            return list(pressed)
        finally:
            mock.terminate()
            mock.process.wait()

    try:
        assert run(qloop, scenario()) == ["restart-daemon"]
    finally:
        run(qloop, n.close())
