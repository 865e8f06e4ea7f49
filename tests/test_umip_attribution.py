"""UMIP rebinds asked from another process (``mhctl rebind``) are the user's in the app's failover log.

The privileged helper announces a rebind (``RebindRequested(hoa, interface, uid, caller)``) when the caller
that wrote mip6d.conf with ``SetInterfacePreferencesForRebind`` restarts mip6d; the running app follows
the announcements (:mod:`mhgui.sources.rebind_requests`) and logs the move that follows as the user's.

- the real helper on a private system bus (tests/test_helper.py's recipe, dbusmock polkit and systemd):
  announced at the restart, not at the write; with the caller's uid and unique name; nothing for a plain
  write (the rollback's) or for a rebind write followed by a plain one; a bad home address is refused;
  a signal of the same name from anyone but the helper is ignored; the app's own requests are dropped;
  a user who is not root is named by their uid;
- end to end (test_rebind_e2e's World: the UMIP double restarted by the real helper, in namespaces):
  the app (runtime, window, shell) runs; ``mhctl rebind`` moves the home address from another process;
  the failover log and its journal say the user did it, timed from the announcement, acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import subprocess
import sys

import pytest

from test_helper import CHANGE, READ, REPO, SWAP, HelperProc, _write_conf  # noqa: E402 (skips without root)
from test_rebind_e2e import world  # noqa: F401,E402 (fixture: the UMIP double in namespaces)
from waiting import until
from mhgui.helper.client import HelperClient, InvalidArguments

HOA_TEXT = "2001:db8:1:0:0:0:0:100"


@contextlib.asynccontextmanager
async def watching(bus_address: str, **kw):
    """A :class:`~mhgui.sources.rebind_requests.RebindRequestWatcher` on ``bus_address``, subscribed:
    ``(watcher, requests)``, ``requests`` the list of what it reported; stopped at the end."""
    from mhgui.sources.rebind_requests import RebindRequestWatcher
    got: list = []
    watcher = RebindRequestWatcher(bus_address, got.append, **kw)
    watcher.start()
    try:
        await asyncio.wait_for(watcher.subscribed.wait(), 10)
        yield watcher, got
    finally:
        await watcher.stop()


@pytest.fixture
def helper(helper_stack, tmp_path):
    helper_stack.reset()
    h = HelperProc(helper_stack, _write_conf(tmp_path / "etc")).start()
    try:
        yield h
    finally:
        rc = h.stop()
    assert rc == 0 and "Traceback" not in h.log, h.log


def test_parse_request_refuses_what_the_helper_never_sends():
    from mhgui.sources.rebind_requests import parse_request
    ok = parse_request(["2001:db8:1::100", "wlan0", 1000, ":1.42"], 5.0)
    assert ok is not None and (ok.hoa, ok.interface, ok.uid, ok.caller, ok.at) == ("2001:db8:1::100", "wlan0", 1000,
                                                                                   ":1.42", 5.0)
    assert parse_request([HOA_TEXT, "wlan0", 0, ":1.1"], 0).hoa == "2001:db8:1::100"  # RFC 5952 text
    for bad in (None, [], ["192.0.2.1", "wlan0", 0, ":1.1"], ["2001:db8::1", "", 0, ":1.1"],
                ["2001:db8::1", "x" * 16, 0, ":1.1"], ["2001:db8::1", "a/b", 0, ":1.1"],
                ["2001:db8::1", "wlan0", -1, ":1.1"], ["2001:db8::1", "wlan0", True, ":1.1"],
                ["2001:db8::1", "wlan0", 0, "io.github.x"], ["2001:db8::1", "wlan0", 0]):
        assert parse_request(bad, 0) is None, bad


@pytest.mark.asyncio
async def test_the_helper_announces_a_rebind_at_its_restart(helper_stack, helper):
    async with watching(helper_stack.address) as (_watcher, got):
        helper_stack.allow(READ, CHANGE)
        async with HelperClient(helper_stack.address) as client:
            # a bad home address: refused before anything is written
            with pytest.raises(InvalidArguments, match="IPv6 address"):
                await client.set_interface_preferences(SWAP, rebind=("192.0.2.1", "wlan0"))
            await client.set_interface_preferences(SWAP, rebind=(HOA_TEXT, "wlan0"))
            await asyncio.sleep(0.3)
            assert got == []  # the write alone moves nothing: announced when mip6d restarts
            await client.restart_daemon()
            await until(lambda: got, "the announcement")
            (r,) = got
            assert (r.hoa, r.interface, r.uid, r.caller) == ("2001:db8:1::100", "wlan0", 0, client.unique_name)
            # announced once: the next restart of the same caller says nothing
            await client.restart_daemon()
            # a rebind write, then a plain one (the driver's rollback), then the restart: no rebind
            await client.set_interface_preferences({"eth1": 1, "wlan0": 2, "wwan0": 3}, rebind=(HOA_TEXT, "eth1"))
            await client.set_interface_preferences(SWAP)
            await client.restart_daemon()
            await asyncio.sleep(0.5)
            assert len(got) == 1, got
        # another connection's rebind write is announced only at its own restart
        async with HelperClient(helper_stack.address) as writer, HelperClient(helper_stack.address) as other:
            await writer.set_interface_preferences({"eth1": 1, "wlan0": 2, "wwan0": 3}, rebind=(HOA_TEXT, "eth1"))
            await other.restart_daemon()
            await asyncio.sleep(0.5)
            assert len(got) == 1, got
            await writer.restart_daemon()
            await until(lambda: len(got) == 2, "the second announcement")
            assert (got[1].interface, got[1].caller) == ("eth1", writer.unique_name)


@pytest.mark.asyncio
async def test_forged_announcements_and_own_requests_are_ignored(helper_stack, helper):
    from dbus_fast import BusType, Message
    from dbus_fast.aio import MessageBus

    from mhgui.sources.rebind_requests import HELPER_IFACE, HELPER_PATH
    own: set = set()
    async with watching(helper_stack.address, is_own=lambda caller: caller in own) as (watcher, got):
        # root, but not the helper's name owner, broadcasts the same signal: nobody is told
        forger = await MessageBus(bus_address=helper_stack.address, bus_type=BusType.SYSTEM).connect()
        try:
            await forger.send(Message.new_signal(HELPER_PATH, HELPER_IFACE, "RebindRequested", "ssus",
                                                 [HOA_TEXT, "wlan0", 0, forger.unique_name]))
            watcher._on_message(Message.new_signal(HELPER_PATH, HELPER_IFACE, "RebindRequested", "ssus",
                                                   [HOA_TEXT, "wlan0", 0, ":1.9"]))  # (no sender: not the owner)
        finally:
            forger.disconnect()
        helper_stack.allow(READ, CHANGE)
        async with HelperClient(helper_stack.address) as client:
            await client.connect()
            own.add(client.unique_name)  # the app's own rebind: already logged when asked
            await client.set_interface_preferences(SWAP, rebind=(HOA_TEXT, "wlan0"))
            await client.restart_daemon()
            await asyncio.sleep(0.7)
        assert got == []
        assert "Traceback" not in helper.log


SCRIPT = """
import asyncio, sys
from mhgui.helper.client import HelperClient
async def go():
    async with HelperClient(sys.argv[1]) as c:
        await c.set_interface_preferences({"eth1": 2, "wlan0": 1, "wwan0": 3}, rebind=(sys.argv[2], "wlan0"))
        await c.restart_daemon()
        print(c.unique_name)
asyncio.run(go())
"""


@pytest.mark.asyncio
async def test_a_user_who_is_not_root_is_named_by_uid(helper_stack, helper):
    try:
        netdev = grp.getgrnam("netdev").gr_gid
    except KeyError:
        pytest.skip("no group netdev here (the helper's bus policy lets it call)")
    async with watching(helper_stack.address) as (_watcher, got):
        helper_stack.allow(READ, CHANGE)
        p = await asyncio.create_subprocess_exec(
            "setpriv", "--reuid=65534", "--regid=65534", f"--groups={netdev}", sys.executable, "-c", SCRIPT,
            helper_stack.address, HOA_TEXT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "HOME": "/nonexistent"}, cwd="/")
        out, err = await asyncio.wait_for(p.communicate(), 30)
        assert p.returncode == 0, err.decode()
        await until(lambda: got, "the announcement")
        assert (got[0].uid, got[0].caller, got[0].interface) == (65534, out.decode().strip(), "wlan0")


# --------------------------------------------------------------------------- end to end, UMIP double
@pytest.mark.netns
@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_mhctl_rebind_is_logged_as_the_users_in_the_running_app(world, qtbot, qloop, tmp_path):  # noqa: F811
    from test_rebind_e2e import HOA, in_netns
    from test_umip_double import TwoUplinkLab
    from test_user_rebind_e2e import mhctl

    from mhgui.core.failover import Preferences
    from mhgui.core.prefsfile import FailoverSettings
    from mhgui.runtime import Runtime
    from mhgui.sources.journal import FailoverJournal, read_journal
    from mhgui.sources.prefs_store import save_prefs
    from mhgui.ui.shell import AppShell
    from mhgui.ui.window import LiveController, MainWindow

    w = world
    w.wait_registered(TwoUplinkLab.COA_A)
    w.stack.allow(READ, CHANGE)
    prefs_path = tmp_path / "failover.toml"
    save_prefs(FailoverSettings(Preferences(("upA", "upB"), holdup=1.0)), prefs_path)
    journal_path = tmp_path / "failover.jsonl"
    with in_netns(w.lab.ns):
        rt = Runtime(mip6d_conf=str(w.conf), system_bus=w.stack.address, use_networkmanager=False,
                     poll_interval=0.3)
        c = LiveController(rt.store, rt.clock, daemon=rt.daemon)
        win = MainWindow(c)
        qtbot.addWidget(win)
        shell = AppShell(rt, win, lambda: None, system_bus=w.stack.address, tray=False,
                         journal=FailoverJournal(str(journal_path)), prefs_path=str(prefs_path),
                         mip6d_conf=str(w.conf))

        async def scenario():
            await rt.start()
            await shell.start()
            try:
                await until(lambda: shell.svc.policy.current == "upA" and any(
                    b.coa == TwoUplinkLab.COA_A for b in rt.daemon.bindings()), "upA in use", 15)
                watcher = getattr(shell, "rebind_requests", None)
                if watcher is not None:
                    await asyncio.wait_for(watcher.subscribed.wait(), 10)
                before = len(shell.svc.log.entries)
                await mhctl(w, "rebind", HOA, "upB", "--yes")  # another process, another user session
                await until(lambda: any(e.to_interface == "upB" and e.ack_time is not None
                                        for e in shell.svc.log.entries[before:]),
                            f"the move in the log: {shell.svc.log.entries}", 20)
                moves = [e for e in shell.svc.log.entries[before:] if e.to_interface == "upB"]
                assert len(moves) == 1, moves
                (e,) = moves
                assert (e.who, e.by, e.reason, e.from_interface) == ("user", "user", "user rebind", "upA"), e
                assert HOA in e.hoas
                assert e.trigger_time <= e.bu_time <= e.ack_time
                assert not [x for x in shell.svc.log.entries[before:] if x.who == "daemon"], shell.svc.log.entries
            finally:
                await shell.stop()
                await rt.stop()

        try:
            qloop.run_until_complete(scenario())
        finally:
            c.close()
    got = read_journal(str(journal_path))
    by = [(x["by"], x["reason"]) for x in got.entries if x["to"] == "upB"]
    assert by and set(by) == {("user", "user rebind")}, json.dumps(got.entries, indent=1)
