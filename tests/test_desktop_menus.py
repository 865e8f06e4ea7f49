"""The "Move to" menus do not offer where the connection or home address already is (issue 15.8, a new
user's report): the Flows tab's menu, the home addresses' menu and the node picture grey it out, "(in use)"."""

from __future__ import annotations

from PySide6.QtCore import QPoint

from mhgui.core.analysis import analyse

import desktopworld


def test_the_shared_rule_says_in_use_before_anything_else():
    from mhgui.core.moves import interface_problem, target_problem
    from mhgui.core.state import StateStore
    store = StateStore()
    desktopworld.fill(store)
    an = analyse(store.state, desktopworld.clock())
    assert target_problem(store.state, an, "eth0", ("eth0",)) == "in use"
    assert target_problem(store.state, an, "wlan0", ("eth0",)) is None
    assert target_problem(store.state, an, "wwan0", ()) == interface_problem(store.state, an, "wwan0") is not None


def test_the_flows_and_home_address_menus_grey_out_the_interface_in_use(qtbot):
    win, c = desktopworld.window()
    qtbot.addWidget(win)
    shown = []
    win.show_menu = lambda menu, where: shown.append(menu)
    # a connection from eth0's care-of address: "eth0 (in use)", greyed out; wlan0 offered
    fid = next(i for i in c.flows.ids() if c.flows.flow(i).local_address == desktopworld.COAS[2])
    menu = win._flow_menu(c.flows.index(c.flows.row_of(fid), 0), None)
    items = {a.text(): a.isEnabled() for a in menu.actions()[0].menu().actions()}
    assert items.get("eth0 (in use)") is False and items.get("wlan0") is True, items
    # the home address bound through eth0 (its first uplink): "Bind … through" greys eth0 out, "(in use)"
    hoa = desktopworld.HOAS[0]
    where = c.in_use()[hoa]
    win._hoa_at = lambda pos: hoa
    win._homes_menu(QPoint(0, 0))
    items = {a.text(): a.isEnabled() for a in shown[-1].actions()[0].menu().actions()}
    used = f"{where.interface} (in use)"
    assert items.get(used) is False, items
    assert not any(t == where.interface for t in items)
    c.close()
