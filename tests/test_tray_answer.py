"""The tray icon follows the node's one answer (review of issue 15.1): it said "ok / all links fine" while the
window's headline said the home agent refused the home address, or answers through no uplink, or that the
node waits for the home agent. Now window, tooltip, icon and ``mhctl status`` (which prints the same
answer) agree. Pure core (mhgui.core.trayview, mhgui.core.headline), and the icon files the tray loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from mhgui.core.analysis import analyse
from mhgui.core.bindings import BindingState
from mhgui.core.headline import node_headline
from mhgui.core.trayview import STATE_TEXT, STATES, build_tray_view
from test_headline import ENGINE, HOA, HOA2, UMIP, Status, mobile, normal_machine, probe, reg

#: the icon's severity for each headline level: an answer is never drawn milder than it is
SEVERE = {"ok": {"ok", "backup"}, "info": {"ok", "backup"}, "warning": {"warning"},
          "error": {"error", "no-coa", "no-daemon"}}

SITUATIONS = {
    # the review's three: the icon said "ok"
    "refused": (mobile(), dict(bindings=[reg(HOA, "2001:db8:a1::2", BindingState.ERROR)], uplinks=[probe("eth0", 2)],
                               daemon=ENGINE, engine_available=True), "error", "error"),
    "home agent answers through no uplink": (
        mobile(), dict(bindings=[reg(HOA, "2001:db8:a1::2")], daemon=ENGINE, engine_available=True,
                       uplinks=[probe("eth0", 2, reachable=False), probe("wlan0", 3, reachable=False)]),
        "error", "error"),
    "waiting": (mobile(), dict(bindings=[reg(HOA, "2001:db8:a1::2", BindingState.WAITING_ACK)],
                               uplinks=[probe("eth0", 2)], daemon=ENGINE, engine_available=True), "warning", "warning"),
    # and the rest of the answers
    "connected": (mobile(), dict(bindings=[reg(HOA, "2001:db8:a1::2")], uplinks=[probe("eth0", 2)], daemon=ENGINE),
                  "ok", "ok"),
    "lossy": (mobile(), dict(bindings=[reg(HOA, "2001:db8:a1::2")], uplinks=[probe("eth0", 2, loss=0.2)],
                             daemon=ENGINE), "warning", "warning"),
    "one of two home addresses not bound": (
        mobile(hoas=(HOA, HOA2)), dict(bindings=[reg(HOA, "2001:db8:a1::2")], uplinks=[probe("eth0", 2)],
                                       daemon=ENGINE), "warning", "warning"),
    "engine runs without a home address": (mobile(hoas=()), dict(daemon=ENGINE, engine_available=True),
                                           "warning", "warning"),
    "engine lost": (mobile(hoas=()), dict(daemon=Status("engine", reachable=False, state="absent")),
                    "error", "no-daemon"),
    "no care-of address": (mobile(up=()), dict(daemon=ENGINE, uplinks=[]), "error", "no-coa"),
    "umip registered": (mobile(), dict(bindings=[reg(HOA, "2001:db8:a1::2")], daemon=UMIP), "ok", "ok"),
    "normal machine": (normal_machine(), dict(engine_available=True), "info", "ok"),
}


@pytest.mark.parametrize("name", sorted(SITUATIONS))
def test_the_icon_follows_the_answer(name):
    st, kw, level, want = SITUATIONS[name]
    an = analyse(st, 0.0)
    h = node_headline(st, an, **kw)
    v = build_tray_view(st, an, bindings=kw.get("bindings", ()), daemon_name=None,
                        daemon_configured=kw.get("daemon") is not None and bool(st.home_addresses),
                        daemon_reachable=bool(kw.get("daemon") and kw["daemon"].reachable), answer=h)
    assert h.level == level, h
    assert v.state == want and v.state in SEVERE[h.level], (h.text, v.state)
    assert v.state_text == STATE_TEXT[v.state]
    assert v.tooltip.splitlines()[0] == f"mhgui — {h.text}"  # the tooltip's first line is the answer


def test_the_answer_decides_whatever_the_links_say():
    """overall_state's finding only refines the answer (which error; ok or backup), never overrides it."""
    from mhgui.core.headline import ACTION_RESTART_DAEMON, Action, Headline
    from mhgui.core.trayview import following_answer
    for found in STATES:
        for level in ("ok", "info", "warning", "error"):
            got = following_answer(Headline(level, "x"), found)
            assert got in SEVERE[level], (level, found, got)
        assert following_answer(Headline("error", "x", Action(ACTION_RESTART_DAEMON, "R")), found) == "no-daemon"
    assert following_answer(Headline("ok", "x"), "backup") == "backup"
    assert following_answer(Headline("error", "x"), "no-coa") == "no-coa"


@pytest.mark.parametrize("state", STATES)
def test_every_state_has_its_icons(state):
    from mhgui.ui.tray import tray_icon_path
    for scheme in ("light", "dark"):
        svg = Path(tray_icon_path(state, scheme))
        assert svg.is_file() and f"<title>mhgui: {state}</title>" in svg.read_text()
