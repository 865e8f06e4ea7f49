"""The Failover tab as a new user meets it (issue 15): it agrees with the headline on a normal machine, logs
no move of steering rules when nothing moved, and shows its newest entry."""

from __future__ import annotations

import time

import pytest

from mhgui.core.analysis import analyse
from mhgui.core.failover import FailoverEntry, Preferences
from mhgui.core.headline import node_headline
from mhgui.core.model import Address, Interface, InterfaceKind
from mhgui.core.state import AddressUpsert, LinkUpsert, RoutersSnapshot, StateStore
from mhgui.daemons.base import DaemonStatus
from mhgui.failover_service import EntryChanged, FailoverService
from test_failover import link
from test_failover_service import PREFS, Driver, World, until


def normal_machine() -> StateStore:
    """Ethernet up with IPv4 (private) and IPv6 ULA, a router, no home address: not a Mobile IPv6 node."""
    store = StateStore()
    store.apply(LinkUpsert(Interface(1, "lo", InterfaceKind.LOOPBACK, True, True, True, "unknown")))
    store.apply(LinkUpsert(Interface(2, "eth0", InterfaceKind.ETHERNET, True, True, True, "up")))
    store.apply(AddressUpsert(Address(1, "127.0.0.1", 8)))
    store.apply(AddressUpsert(Address(2, "192.0.2.2", 24)))
    store.apply(AddressUpsert(Address(2, "fd00::2", 64)))
    store.apply(AddressUpsert(Address(2, "fe80::2", 64)))
    store.apply(RoutersSnapshot(((2, "fe80::1"),)))
    return store


def test_the_tab_agrees_with_the_headline_on_a_normal_machine(qtbot):
    from mhgui.ui.failover_view import FailoverPage
    store = normal_machine()
    svc = FailoverService(store, time.monotonic, lambda: analyse(store.state, time.monotonic()),
                          Preferences(["eth0"]))
    svc.start()
    page = FailoverPage(svc)
    qtbot.addWidget(page)
    said = page.status.text()
    head = node_headline(store.state, analyse(store.state, time.monotonic())).text
    assert head.startswith("Online via eth0")
    assert "No usable interface" not in said and "link is down" not in said, said
    assert said.startswith(head.split(" — ")[0]), (said, head)  # the same words: "Online via eth0 (…)"
    assert "Not a Mobile IPv6 node yet" in said


class EngineLike(Driver):
    """A connected daemon that reports its own moves (as mhgui's engine does): mhgui does not log them."""

    name = "engine"
    reports_moves = True

    def uplinks(self) -> list:
        return []


async def _no_rules(fallback) -> bool:  # the helper answers, with no steering rule to move
    return False


@pytest.mark.parametrize("steering", ["absent", "no rules"])
def test_no_move_of_steering_rules_is_logged_when_nothing_moved(qtbot, qloop, steering):
    from mhgui.ui.failover_view import FailoverPage

    async def scenario():
        d = EngineLike()
        d._set_status(DaemonStatus("engine", "mn", True, "connected"))
        w = World(PREFS, daemon=d, steering=steering != "absent")
        if steering == "no rules":
            w.svc.steering = _no_rules
        w.svc.start()
        page = FailoverPage(w.svc)
        qtbot.addWidget(page)
        w.store.apply(link("eth0", up=False))
        await until(lambda: w.svc.policy.current == "wlan0", "mhgui's own choice to follow")
        await until(lambda: w.svc._steer_task is None or w.svc._steer_task.done(), "the helper's answer")
        page.refresh_status()
        assert w.svc.log.entries and w.svc.log.entries[-1].who == "app"  # decided, but nothing moved:
        assert "Steering rules failed over" not in page.status.text(), page.status.text()
        assert page.model.rowCount() == 0, page.model.entry(0)  # not in the tab
        assert not w.of(EntryChanged)  # nor in the journal (EntryChanged is what it writes)
        assert w.svc.entries() == []  # nor in a tab opened later
        w.store.apply(link("eth0"))
        await until(lambda: w.svc.policy.current == "eth0", "the way back")
        assert page.model.rowCount() == 0 and not w.of(EntryChanged)
        page.close_page()
        await w.svc.stop()

    qloop.run_until_complete(scenario())


def test_rules_the_helper_moved_are_logged_and_said(qtbot, qloop):
    from mhgui.ui.failover_view import FailoverPage

    async def scenario():
        w = World(PREFS)  # its helper stand-in moves a rule
        w.svc.start()
        page = FailoverPage(w.svc)
        qtbot.addWidget(page)
        w.store.apply(link("eth0", up=False))
        await until(lambda: page.model.rowCount() == 1, "the entry of the rules moved")
        page.refresh_status()
        assert "Steering rules failed over: eth0 → wlan0" in page.status.text()
        page.close_page()
        await w.svc.stop()

    qloop.run_until_complete(scenario())


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen, a shown page
def test_the_log_shows_its_newest_entry_and_follows_only_from_the_end(qtbot):
    from mhgui.ui.failover_view import FailoverPage

    w = World(PREFS, steering=False)
    page = FailoverPage(w.svc)
    qtbot.addWidget(page)
    past = [FailoverEntry(-n, "daemon", "eth0", "wlan0", "link-down", 1.0 * n, 1.0 * n) for n in range(40, 0, -1)]
    page.model.add_past(past)  # earlier runs' entries, from the journal (as the shell adds them)
    page.resize(700, 300)
    page.show()
    qtbot.waitExposed(page)
    qtbot.waitUntil(lambda: page.view.verticalScrollBar().maximum() > 0)
    bar, view = page.view.verticalScrollBar(), page.view
    last = page.model.rowCount() - 1

    def newest_shown() -> bool:
        r = view.visualRect(page.model.index(page.model.rowCount() - 1, 0))
        return r.isValid() and view.viewport().rect().contains(r)

    qtbot.waitUntil(newest_shown)
    assert bar.value() == bar.maximum() and page.at_end()
    page._on_event(EntryChanged(FailoverEntry(1, "daemon", "wlan0", "eth0", "recovered", 50.0, 50.0)))
    qtbot.waitUntil(lambda: newest_shown() and page.model.rowCount() == last + 2)
    bar.setValue(0)  # the user reads older entries: a new one does not take the view away
    page._on_event(EntryChanged(FailoverEntry(2, "daemon", "eth0", "wlan0", "link-down", 51.0, 51.0)))
    qtbot.wait(50)
    assert bar.value() == 0 and not page.at_end()
    bar.setValue(bar.maximum())  # back at the end: it follows again
    page._on_event(EntryChanged(FailoverEntry(3, "daemon", "wlan0", "eth0", "recovered", 52.0, 52.0)))
    qtbot.waitUntil(newest_shown)
    page.close_page()
