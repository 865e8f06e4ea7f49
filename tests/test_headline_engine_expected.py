"""The engine not running when the app or ``mhctl status`` starts (review of issue 15.3/15.7): a node configured
for mhgui's engine (its mn.toml, the file the engine reads by default, or the lab's) said "not a Mobile IPv6 node
yet — Try the lab". Now the runtime drives the engine anyway, and the answer is "Mobility daemon not running"
with "Start the mobility daemon"; one that ran and went is "lost" with "Restart". The window's taxonomy summary
no longer says "Not a Mobile IPv6 node" under it.

Real parts: the runtime's choice of driver and the real EngineDriver on a bus that is not there, ``mhctl
status`` as a subprocess, the window (offscreen), and a lab whose engine is stopped (``mhctl lab``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from mhgui.core.analysis import analyse
from mhgui.core.headline import ACTION_RESTART_DAEMON, node_headline
from mhgui.core.trayview import build_tray_view
from netns import lab_why_not
from test_headline import Status, mobile, normal_machine

MN_TOML = "# stands for the engine's configuration: only its presence counts here\n"


def test_the_runtime_drives_the_engine_on_a_node_configured_for_it(qloop, tmp_path, monkeypatch):
    from mhgui.daemons.engine import EngineDriver
    from mhgui.daemons.umip import UmipDriver
    from mhgui.runtime import choose_driver
    nobus = f"unix:path={tmp_path}/no-bus"
    conf = tmp_path / "mn.toml"
    monkeypatch.setenv("MHGUI_MN_CONFIG", str(conf))
    assert isinstance(qloop.run_until_complete(choose_driver(nobus)), UmipDriver)  # no mn.toml: not an engine node
    conf.write_text(MN_TOML)
    assert isinstance(qloop.run_until_complete(choose_driver(nobus)), EngineDriver)
    assert isinstance(qloop.run_until_complete(choose_driver(nobus, vt_port=None)), EngineDriver)
    (tmp_path / "dir.toml").mkdir()  # not a file: not a configuration
    assert isinstance(qloop.run_until_complete(choose_driver(nobus, mn_config=str(tmp_path / "dir.toml"))),
                      UmipDriver)


def test_the_default_path_is_the_one_the_engine_reads(monkeypatch):
    from mhgui.engine import config, mnd, paths
    monkeypatch.delenv("MHGUI_MN_CONFIG", raising=False)
    assert paths.mn_config_path() == config.DEFAULT_MN_CONFIG == "/etc/mhgui/mn.toml"
    args = mnd.daemon_parser("mhgui-mn", "", config.DEFAULT_MN_CONFIG).parse_args([])
    assert args.config == paths.mn_config_path()


def test_never_reached_is_not_running_gone_is_lost():
    st = mobile(hoas=())  # the engine's home addresses come from it: none while it does not run
    an = analyse(st, 0.0)
    absent = Status("engine", reachable=False, state="absent", error="nobody owns its name")
    h = node_headline(st, an, daemon=absent, daemon_seen=False)
    assert h.level == "error" and h.text.startswith("Mobility daemon not running: the mobility engine")
    assert h.action.id == ACTION_RESTART_DAEMON and h.action.label == "Start the mobility daemon"
    assert "not a Mobile IPv6 node" not in h.text and h.detail == "nobody owns its name"
    # reached before, gone now: the same answer (the window and `mhctl status` agree, n1.8), the tooltip says
    # it was lost; a daemon there but mute is "lost", restarted
    lost = node_headline(st, an, daemon=absent, daemon_seen=True)
    assert lost.text == h.text and lost.action == h.action
    assert lost.detail == "it answered earlier, then stopped: nobody owns its name"
    mute = node_headline(st, an, daemon=Status("engine", reachable=False, state="error"), daemon_seen=True)
    assert mute.text.startswith("Mobility daemon lost") and mute.action.label == "Restart the mobility daemon"
    v = build_tray_view(st, an, answer=h)
    assert v.state == "no-daemon" and v.action == h.action
    # still starting: nothing to say yet; a normal machine with no engine configured stays a normal machine
    assert node_headline(st, an, daemon=Status("engine", False, "starting"), daemon_seen=False).action is None
    n = normal_machine()
    assert node_headline(n, analyse(n, 0.0)).text.startswith("Online via eth0")


def _mhctl_status(tmp_path, conf: str | None) -> str:
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={tmp_path}/no-bus", LANGUAGE="C", LANG="C.UTF-8")
    env.pop("MHGUI_MN_CONFIG", None)
    if conf is not None:
        env["MHGUI_MN_CONFIG"] = conf
    run = subprocess.run([sys.executable, "-m", "mhgui.cli", "status", "--no-networkmanager", "--vt-port", "1"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    return next(line for line in run.stdout.splitlines() if line.startswith("Node: "))


def test_mhctl_status_says_start_it(tmp_path):
    """Both of mhctl's paths (the fast one falls back to the full one when the node is configured for the
    engine): the same answer the window gives."""
    conf = tmp_path / "mn.toml"
    conf.write_text(MN_TOML)
    node = _mhctl_status(tmp_path, str(conf))
    assert node.startswith("Node: Mobility daemon not running: the mobility engine does not run"), node
    assert node.endswith("— to fix: Start the mobility daemon: sudo systemctl restart mhgui-mn"), node
    assert "not a Mobile IPv6 node" not in node
    if not os.path.exists("/etc/mhgui/mn.toml"):  # this machine is not configured for the engine itself
        assert "Mobility daemon" not in _mhctl_status(tmp_path, str(tmp_path / "none.toml"))


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_the_window_says_not_running_and_its_summary_does_not_contradict(qtbot, qloop, tmp_path):
    from mhgui.core.model import Address, Interface, InterfaceKind
    from mhgui.core.state import AddressUpsert, LinkUpsert, StateStore
    from mhgui.daemons.engine import EngineDriver
    from mhgui.ui.window import LiveController, MainWindow

    driver = EngineDriver(bus_address=f"unix:path={tmp_path}/no-bus", backoff_initial=0.05, backoff_max=0.2)
    store = StateStore()
    store.apply(LinkUpsert(Interface(2, "up0", InterfaceKind.ETHERNET, True, True, True, "up")))
    store.apply(AddressUpsert(Address(2, "2001:db8:a1::2", 64)))
    c = LiveController(store, time.monotonic, daemon=driver)
    win = MainWindow(c)
    qtbot.addWidget(win)

    async def scenario():
        await driver.start()
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not win.answer.text().startswith("Mobility daemon not running") and loop.time() < deadline:
                c.refresh()
                await asyncio.sleep(0.05)
            # (asked before the driver stops: a stopped driver is "connecting" again)
            return win.answer.text(), win.answer_button.text(), win.answer_button.isHidden(), win.summary.text()
        finally:
            await driver.stop()

    try:
        answer, button, hidden, summary = qloop.run_until_complete(scenario())
        assert answer.startswith("Mobility daemon not running"), answer
        assert button == "Start the mobility daemon" and not hidden
        assert "Not a Mobile IPv6 node" not in summary and "mobility daemon" in summary, summary
    finally:
        c.close()


# --------------------------------------------------------------------------- the lab, its engine stopped
LAB_PREFIX = "f1b"


@pytest.mark.netns
@pytest.mark.skipif(lab_why_not() is not None, reason=lab_why_not() or "")
def test_in_the_lab_with_the_engine_stopped_mhctl_status_says_start_it():
    from mhgui.lab import Lab
    if Lab.is_up(LAB_PREFIX):
        Lab.down(LAB_PREFIX)
    Lab.up(LAB_PREFIX)
    try:
        Lab.stop_daemons(LAB_PREFIX)  # as if killed: nobody owns the engine's name on the lab's bus
        run = Lab.exec_in_mn(LAB_PREFIX, ["mhctl", "status", "--no-networkmanager"], capture_output=True,
                             text=True, timeout=60, env={"LANGUAGE": "C"})
        assert run.returncode == 0, run.stderr
        node = next(line for line in run.stdout.splitlines() if line.startswith("Node: "))
        assert node.startswith("Node: Mobility daemon not running: the mobility engine"), run.stdout
        assert node.endswith(f"— to fix: Start the mobility daemon: sudo mhctl lab restart --prefix {LAB_PREFIX}"), node
    finally:
        Lab.down(LAB_PREFIX)


def test_the_summary_line_does_not_contradict_a_lost_daemon():
    """After "lost" the engine's home addresses are gone from the model: the taxonomy's own summary says "Not a
    Mobile IPv6 node"; the window's line under the answer must not."""
    from mhgui.core.capabilities import NO_DAEMON
    from mhgui.core.report import taxonomy
    from mhgui.ui.header import summary_of
    st = mobile(hoas=())
    an = analyse(st, 0.0)
    tax = taxonomy(an, NO_DAEMON)
    assert "Not a Mobile IPv6 node" in tax["summary"]  # what the line said
    lost = node_headline(st, an, daemon=Status("engine", reachable=False, state="absent"))
    assert lost.text.startswith("Mobility daemon not running")
    line = summary_of(lost, tax)
    assert "Not a Mobile IPv6 node" not in line and "does not answer" in line
    n = normal_machine()  # a normal machine keeps the draft's words
    ntax = taxonomy(analyse(n, 0.0), NO_DAEMON)
    assert summary_of(node_headline(n, analyse(n, 0.0)), ntax) == ntax["summary"]


def test_a_daemon_that_runs_but_is_mute_is_not_said_not_to_run():
    """mip6d running without its terminal (``no-terminal``) was never reached either, but it runs."""
    st = mobile()
    h = node_headline(st, analyse(st, 0.0), daemon=Status("umip", reachable=False, state="no-terminal"),
                      daemon_configured=True, daemon_seen=False)
    assert "not running" not in h.text and h.action.id == ACTION_RESTART_DAEMON
