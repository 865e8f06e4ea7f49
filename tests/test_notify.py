"""Desktop notifications over a private session bus with python-dbusmock's notification_daemon template."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess

import pytest
from dbusmock import SpawnedMock
from dbusmock.testcase import BusType, PrivateDBus

from mhgui.core.notices import NoticeCoalescer, failover_done, link_lost
from mhgui.ui.notify import DesktopNotifier

pytestmark = pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="needs dbus-daemon")
MOCK_IFACE = "org.freedesktop.DBus.Mock"


@pytest.fixture
def session_bus(monkeypatch):
    """A private session bus for this test; the process environment is restored after it."""
    import os
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", os.environ.get("DBUS_SESSION_BUS_ADDRESS", "disabled:"))
    bus = PrivateDBus(BusType.SESSION)
    bus.start()  # sets DBUS_SESSION_BUS_ADDRESS (restored by monkeypatch)
    yield bus
    bus.stop()


@pytest.fixture
def notification_daemon(session_bus):
    mock = SpawnedMock.spawn_with_template("notification_daemon", bustype=BusType.SESSION,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield mock
    mock.terminate()
    mock.process.wait()


def notify_calls(mock) -> list:
    return [args for _ts, args in mock.obj.GetMethodCalls("Notify", dbus_interface=MOCK_IFACE)]


def run(loop, coro, timeout=10.0):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def test_burst_makes_one_notify_then_replaces(qloop, session_bus, notification_daemon):
    n = DesktopNotifier(bus_address=session_bus.address,
                        coalescer=None, clock=qloop.time)
    n.coalescer = NoticeCoalescer(qloop.time, quiet=0.2, max_delay=0.6, replace_within=30.0)

    async def burst(prefix: str, count: int) -> None:
        for i in range(count):
            n.notify(link_lost(f"{prefix}{i}") if i < count - 1 else failover_done("eth0", "wlan0", 187.0))
            await asyncio.sleep(0.05)
        await asyncio.sleep(0)
        await n.drain()

    run(qloop, burst("eth", 10))
    calls = notify_calls(notification_daemon)
    assert len(calls) == 1, calls
    app_name, replaces_id, icon, summary, body, actions, hints, expire = calls[0]
    assert app_name == "mhgui" and replaces_id == 0
    assert icon.startswith("file://") and icon.endswith("/tray/ok-light.svg")
    assert summary == "Failover done: eth0 → wlan0 in 187 ms (and 9 more events)"
    assert body.splitlines()[0] == "Link lost: eth0"
    assert int(hints["urgency"]) == 1 and str(hints["desktop-entry"]) == "io.github.mhgui.MHGui"
    first_id = n.sent[0][0]
    assert first_id > 0

    # the next burst within replace_within updates that notification
    run(qloop, burst("wlan", 3))
    calls = notify_calls(notification_daemon)
    assert len(calls) == 2
    assert calls[1][1] == first_id

    # switched off: nothing is sent
    n.enabled = False
    n.notify(link_lost("eth9"))
    run(qloop, asyncio.sleep(0.8))
    assert len(notify_calls(notification_daemon)) == 2
    run(qloop, n.close())


def test_server_absent_is_logged_once_and_never_raised(qloop, session_bus, caplog):
    n = DesktopNotifier(bus_address=session_bus.address, clock=qloop.time,
                        coalescer=NoticeCoalescer(qloop.time, quiet=0.05, max_delay=0.1))

    async def go() -> None:
        for name in ("eth0", "wlan0"):
            n.notify(link_lost(name))
            await asyncio.sleep(0.2)
            await n.drain()

    with caplog.at_level(logging.DEBUG, logger="mhgui.ui.notify"):
        run(qloop, go())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "desktop notifications unavailable" in warnings[0].getMessage()
    assert "ServiceUnknown" in warnings[0].getMessage() or "org.freedesktop.Notifications" in \
        warnings[0].getMessage()
    assert n.sent == []
    run(qloop, n.close())


def test_no_session_bus_at_all(qloop, caplog):
    n = DesktopNotifier(bus_address="disabled:", clock=qloop.time,
                        coalescer=NoticeCoalescer(qloop.time, quiet=0.05, max_delay=0.1))
    n.notify(link_lost("eth0"))

    async def go() -> None:
        await asyncio.sleep(0.2)
        await n.drain()

    with caplog.at_level(logging.WARNING, logger="mhgui.ui.notify"):
        run(qloop, go())
    assert len(caplog.records) == 1 and n.sent == []
    run(qloop, n.close())
