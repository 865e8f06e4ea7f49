"""The preferences dialog (mhgui.ui.preferences) with pytest-qt: model, keyboard and drag reordering, marks,
inline validation, the restart notice, the applied signal and the file it writes."""

from __future__ import annotations

import asyncio

import pytest
from PySide6.QtCore import QMimeData, QModelIndex, Qt
from PySide6.QtTest import QTest

from mhgui.core.capabilities import DaemonCapabilities
from mhgui.core.failover import Preferences
from mhgui.core.prefsfile import FailoverSettings, OrderEntry, entries_to_prefs, parse_prefs
from mhgui.sources.prefs_store import load_prefs, prefs_path, save_prefs
from mhgui.ui.preferences import (InterfaceOrderModel, MarkDelegate, MarkRole, PreferencesDialog, mnif_changes,
                                  open_preferences)

LIVE = [("eth0", "ethernet", True, ""), ("wlan0", "wifi", False, "no carrier"), ("wwan0", "wwan", True, "")]
SAVED = FailoverSettings(entries_to_prefs([("eth0", "primary"), ("usb0", "backup"), ("wlan0", "primary")],
                                          holdup=8), notifications=False, extra={"future": 1})
NOTICE = ("Applying writes MnIfPreference to /etc/mip6d.conf through the helper and restarts mip6d: "
          "bindings re-register.")
UMIP = DaemonCapabilities(name="umip", connected=True)


def names(dlg: PreferencesDialog) -> list[str]:
    return dlg.model.names()


def cell(model, row: int, col: int, role=Qt.ItemDataRole.DisplayRole):
    return model.index(row, col).data(role)


@pytest.fixture
def dlg(qtbot):
    d = PreferencesDialog(LIVE, SAVED, capabilities=UMIP)
    qtbot.addWidget(d)
    return d


def run(loop, coro, timeout: float = 10.0):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


async def until(cond, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- the model
def test_model_passes_qtmodeltester_and_stays_consistent_through_moves_marks_and_removal(qtmodeltester):
    rows = [OrderEntry("eth0", "ethernet", True, ""), OrderEntry("usb0", "", False, "not present", False, "backup"),
            OrderEntry("wlan0", "wifi", False, "no carrier"), OrderEntry("wwan0", "wwan", True, "", True, "never")]
    m = InterfaceOrderModel(rows)
    qtmodeltester.check(m)
    assert m.move(0, 1) == 1 and m.names() == ["usb0", "eth0", "wlan0", "wwan0"]
    assert m.move(3, -2) == 1 and m.names() == ["usb0", "wwan0", "eth0", "wlan0"]
    assert m.move(0, -1) is None and m.move(3, 1) is None
    assert m.moveRows(QModelIndex(), 0, 2, QModelIndex(), 4)
    assert m.names() == ["eth0", "wlan0", "usb0", "wwan0"]
    assert not m.moveRows(QModelIndex(), 0, 2, QModelIndex(), 1)  # into itself
    assert m.set_mark(1, "backup") and m.setData(m.index(3, m.COL_MARK), "backup only")
    assert not m.setData(m.index(3, m.COL_MARK), "sometimes") and not m.setData(m.index(3, m.COL_NAME), "never")
    assert not m.forget(0)  # present: cannot be forgotten
    assert m.forget(2) and m.names() == ["eth0", "wlan0", "wwan0"]
    assert not m.removeRows(0, 1)  # a view's drag never removes rows
    qtmodeltester.check(m)


def test_model_cells_roles_and_mnifpreference_column():
    m = InterfaceOrderModel([OrderEntry("eth0", "ethernet", True, ""),
                             OrderEntry("usb0", "", False, "not present", False, "backup"),
                             OrderEntry("wlan0", "wifi", False, "no carrier"),
                             OrderEntry("wwan0", "wwan", True, "", True, "never")])
    assert [m.headerData(c, Qt.Orientation.Horizontal) for c in range(5)] == \
        ["Interface", "Kind", "Use", "MnIfPreference", "Status"]
    assert [cell(m, r, m.COL_MARK) for r in range(4)] == ["primary", "backup only", "primary", "never"]
    assert [cell(m, r, m.COL_PREF) for r in range(4)] == ["1", "3", "2", "0 (never)"]
    assert [cell(m, r, m.COL_STATUS) for r in range(4)] == ["usable now", "not present", "no carrier", "usable now"]
    assert cell(m, 1, m.COL_KIND) == "—" and cell(m, 1, 0, Qt.ItemDataRole.FontRole).italic()
    assert cell(m, 1, 0, MarkRole) == "backup" and cell(m, 1, m.COL_MARK, Qt.ItemDataRole.EditRole) == "backup"
    assert m.flags(m.index(0, m.COL_MARK)) & Qt.ItemFlag.ItemIsEditable
    assert not m.flags(m.index(0, m.COL_NAME)) & Qt.ItemFlag.ItemIsEditable
    assert not m.flags(m.index(0, 0)) & Qt.ItemFlag.ItemIsDropEnabled  # drops go between rows
    changed = []
    m.dataChanged.connect(lambda a, b, roles: changed.append((a.row(), b.row(), a.column(), b.column())))
    m.move(2, -2)  # wlan0 first: every preference value shifts
    assert [cell(m, r, m.COL_PREF) for r in range(4)] == ["1", "2", "3", "0 (never)"]
    assert (0, 3, m.COL_PREF, m.COL_PREF) in changed


# --------------------------------------------------------------------------- the list and the merge
def test_saved_order_merged_with_live_interfaces(dlg):
    assert names(dlg) == ["eth0", "usb0", "wlan0", "wwan0"]
    m = dlg.model
    assert cell(m, 1, m.COL_STATUS) == "not present"
    assert cell(m, 3, m.COL_STATUS) == "new (not in the saved list)" and cell(m, 3, 0, MarkRole) == "never"
    assert dlg.holdup.value() == 8 and not dlg.notifications.isChecked()
    assert dlg.problems_label.isHidden()
    assert dlg.ok_button.text() == "OK" and dlg.ok_button.isEnabled()  # nothing changes for mip6d yet
    assert dlg.restart_label.isHidden()


# --------------------------------------------------------------------------- reordering
@pytest.mark.parametrize("mod", [Qt.KeyboardModifier.AltModifier, Qt.KeyboardModifier.ControlModifier])
def test_reorder_by_keyboard_shortcut(dlg, mod):
    dlg.view.setCurrentIndex(dlg.model.index(0, 0))
    QTest.keyClick(dlg.view, Qt.Key.Key_Down, mod)
    assert names(dlg) == ["usb0", "eth0", "wlan0", "wwan0"]
    assert dlg.view.currentIndex().row() == 1  # the moved row stays the current one
    QTest.keyClick(dlg.view, Qt.Key.Key_Down, mod)
    assert names(dlg) == ["usb0", "wlan0", "eth0", "wwan0"]
    QTest.keyClick(dlg.view, Qt.Key.Key_Up, mod)
    QTest.keyClick(dlg.view, Qt.Key.Key_Up, mod)
    QTest.keyClick(dlg.view, Qt.Key.Key_Up, mod)  # at the top: nothing
    assert names(dlg) == ["eth0", "usb0", "wlan0", "wwan0"]
    assert not dlg.up_button.isEnabled() and dlg.down_button.isEnabled()
    # without the modifier, Down only moves the cursor
    QTest.keyClick(dlg.view, Qt.Key.Key_Down)
    assert names(dlg) == ["eth0", "usb0", "wlan0", "wwan0"] and dlg.view.currentIndex().row() == 1


def test_reorder_with_the_buttons(dlg):
    dlg.view.setCurrentIndex(dlg.model.index(2, 0))
    QTest.mouseClick(dlg.up_button, Qt.MouseButton.LeftButton)
    assert names(dlg) == ["eth0", "wlan0", "usb0", "wwan0"]
    QTest.mouseClick(dlg.up_button, Qt.MouseButton.LeftButton)
    assert names(dlg)[0] == "wlan0" and not dlg.up_button.isEnabled()
    QTest.mouseClick(dlg.down_button, Qt.MouseButton.LeftButton)
    assert names(dlg) == ["eth0", "wlan0", "usb0", "wwan0"]


def test_reorder_by_drag_and_drop_through_the_models_mime_data(dlg):
    m = dlg.model
    data = m.mimeData([m.index(3, c) for c in range(m.columnCount())])  # the whole wwan0 row
    assert data.hasFormat(m.MIME_TYPE)
    assert m.canDropMimeData(data, Qt.DropAction.MoveAction, 0, 0, QModelIndex())
    assert not m.canDropMimeData(data, Qt.DropAction.CopyAction, 0, 0, QModelIndex())
    assert m.dropMimeData(data, Qt.DropAction.MoveAction, 0, 0, QModelIndex())
    assert names(dlg) == ["wwan0", "eth0", "usb0", "wlan0"]
    assert dlg.view.currentIndex().row() == 0  # the dropped row is selected
    # dropped onto a row: it goes before that row
    data = m.mimeData([m.index(0, 0)])
    assert m.dropMimeData(data, Qt.DropAction.MoveAction, -1, -1, m.index(3, 0))
    assert names(dlg) == ["eth0", "usb0", "wwan0", "wlan0"]
    # dropped below the last row: to the end
    assert m.dropMimeData(m.mimeData([m.index(0, 0)]), Qt.DropAction.MoveAction, -1, -1, QModelIndex())
    assert names(dlg) == ["usb0", "wwan0", "wlan0", "eth0"]
    # dropped where it is: nothing moves
    assert m.dropMimeData(m.mimeData([m.index(1, 0)]), Qt.DropAction.MoveAction, 2, 0, QModelIndex())
    assert names(dlg) == ["usb0", "wwan0", "wlan0", "eth0"]


def test_drops_from_elsewhere_are_refused(dlg):
    m = dlg.model
    other = InterfaceOrderModel([OrderEntry("eth0"), OrderEntry("wlan0")])
    foreign = other.mimeData([other.index(1, 0)])
    assert not m.canDropMimeData(foreign, Qt.DropAction.MoveAction, 0, 0, QModelIndex())
    assert not m.dropMimeData(foreign, Qt.DropAction.MoveAction, 0, 0, QModelIndex())
    junk = QMimeData()
    junk.setData(m.MIME_TYPE, b"{not json")
    assert not m.dropMimeData(junk, Qt.DropAction.MoveAction, 0, 0, QModelIndex())
    text = QMimeData()
    text.setText("eth0")
    assert not m.canDropMimeData(text, Qt.DropAction.MoveAction, 0, 0, QModelIndex())
    assert names(dlg) == ["eth0", "usb0", "wlan0", "wwan0"]


# --------------------------------------------------------------------------- marks
def test_mark_with_the_use_combo_by_keyboard(dlg):
    m = dlg.model
    dlg.view.setCurrentIndex(m.index(2, 0))  # wlan0, primary
    assert dlg.mark_combo.currentData() == "primary"
    QTest.keyClick(dlg.mark_combo, Qt.Key.Key_Down)
    assert cell(m, 2, 0, MarkRole) == "backup" and cell(m, 2, m.COL_MARK) == "backup only"
    QTest.keyClick(dlg.mark_combo, Qt.Key.Key_Down)
    assert cell(m, 2, 0, MarkRole) == "never"
    dlg.view.setCurrentIndex(m.index(3, 0))  # wwan0, never: the combo follows the current row
    assert dlg.mark_combo.currentData() == "never"


def test_mark_with_the_delegates_combo(dlg, qtbot):
    m = dlg.model
    index = m.index(0, m.COL_MARK)
    delegate = dlg.view.itemDelegateForColumn(m.COL_MARK)
    assert isinstance(delegate, MarkDelegate)
    editor = delegate.createEditor(dlg.view.viewport(), None, index)
    delegate.setEditorData(editor, index)
    assert editor.currentData() == "primary" and editor.count() == 3
    editor.setCurrentIndex(editor.findData("backup"))
    delegate.setModelData(editor, m, index)
    assert cell(m, 0, 0, MarkRole) == "backup"
    editor.deleteLater()


# --------------------------------------------------------------------------- validation
def test_every_interface_never_is_refused_inline(dlg):
    m = dlg.model
    for r in range(m.rowCount()):
        m.set_mark(r, "never")
    assert not dlg.ok_button.isEnabled()
    assert not dlg.validation_label.isHidden()
    assert "no interface may be used" in dlg.validation_label.text()
    assert dlg.restart_label.isHidden()  # nothing would be applied
    m.set_mark(1, "backup")  # a backup alone may be used
    assert dlg.ok_button.isEnabled() and dlg.validation_label.isHidden()


def test_holdup_out_of_range_or_empty_is_refused_inline(dlg):
    edit = dlg.holdup.lineEdit()
    edit.selectAll()
    QTest.keyClick(edit, Qt.Key.Key_Delete)
    assert not dlg.holdup_valid()
    assert "Hold-up must be a whole number of seconds from 0 to 600" in dlg.validation_label.text()
    assert not dlg.ok_button.isEnabled()
    QTest.keyClicks(edit, "700")  # the spin box does not take a value over 600
    assert dlg.holdup.value() <= 600
    edit.selectAll()
    QTest.keyClicks(edit, "42")
    assert dlg.holdup.value() == 42 and dlg.ok_button.isEnabled() and dlg.validation_label.isHidden()
    assert dlg.holdup.maximum() == 600 and dlg.holdup.minimum() == 0


def test_no_interfaces_at_all(qtbot):
    d = PreferencesDialog([], None)
    qtbot.addWidget(d)
    assert d.model.rowCount() == 0
    assert not d.ok_button.isEnabled() and "no interface may be used" in d.validation_label.text()
    assert not d.up_button.isEnabled() and not d.mark_combo.isEnabled()


# --------------------------------------------------------------------------- restart notice
def test_a_change_of_mnifpreference_says_it_restarts_mip6d_before_applying(dlg):
    dlg.holdup.setValue(30)
    assert dlg.ok_button.text() == "OK" and dlg.restart_label.isHidden()  # app-side only
    dlg.view.setCurrentIndex(dlg.model.index(2, 0))
    QTest.keyClick(dlg.view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    QTest.keyClick(dlg.view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)  # wlan0 first
    assert dlg.restart_needed()
    assert dlg.ok_button.text() == "Apply and restart mip6d"
    assert not dlg.restart_label.isHidden()
    assert dlg.restart_label.text().startswith(NOTICE)
    assert "wlan0 2 → 1" in dlg.restart_label.text() and "eth0 1 → 2" in dlg.restart_label.text()
    assert dlg.mnif_changes() == {"wlan0": 1, "eth0": 2}
    QTest.keyClick(dlg.view, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)  # back as it was
    assert dlg.ok_button.text() == "OK" and dlg.restart_label.isHidden()


def test_the_notice_names_the_configured_file_and_the_daemons_current_values(qtbot):
    d = PreferencesDialog(LIVE, None, current_mnif={"wwan0": 1, "eth0": 2}, mip6d_conf="/srv/mip6d.conf")
    qtbot.addWidget(d)
    assert d.model.names() == ["wwan0", "eth0", "wlan0"]  # no saved file: the daemon's order
    assert d.ok_button.text() == "OK"
    d.model.set_mark(2, "primary")
    assert d.restart_label.text().startswith("Applying writes MnIfPreference to /srv/mip6d.conf through the helper")
    assert "wlan0 not listed → 3" in d.restart_label.text()


def test_a_daemon_that_rebinds_at_run_time_needs_no_restart(qtbot):
    caps = DaemonCapabilities(name="x", connected=True, runtime_rebind=True)
    d = PreferencesDialog(LIVE, SAVED, capabilities=caps)
    qtbot.addWidget(d)
    d.model.move(2, -2)
    assert not d.restart_needed() and d.ok_button.text() == "OK"
    assert d.restart_label.text() == "The daemon takes the new order at run time: no restart."
    assert d.holdup_note.text() == ""


def test_mnif_changes_for_the_wiring():
    old = Preferences(("eth0", "wlan0"))
    assert mnif_changes(old, Preferences(("wlan0", "eth0"))) == {"wlan0": 1, "eth0": 2}
    assert mnif_changes(old, Preferences(("eth0", "wlan0"), holdup=1)) == {}


# --------------------------------------------------------------------------- applying
def test_ok_saves_the_file_and_emits_applied(dlg, qloop):
    save_prefs(SAVED)
    got = []
    dlg.applied.connect(lambda *a: got.append(a))
    finished = []
    dlg.finished.connect(finished.append)
    dlg.view.setCurrentIndex(dlg.model.index(2, 0))
    QTest.keyClick(dlg.view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)  # wlan0 above usb0
    QTest.keyClick(dlg.view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)  # and above eth0
    dlg.model.set_mark(3, "backup")  # wwan0: backup only
    dlg.holdup.setValue(12)
    dlg.notifications.setChecked(True)

    async def scenario():
        QTest.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
        await until(lambda: got)

    run(qloop, scenario())
    prefs, notifications, restart = got[0]
    assert isinstance(prefs, Preferences)
    assert prefs.order == ("wlan0", "eth0", "usb0", "wwan0")
    assert prefs.backup == {"usb0", "wwan0"} and prefs.never == frozenset()
    assert prefs.holdup == 12 and notifications is True and restart is True
    assert finished == [1]  # accepted
    loaded = load_prefs()
    assert not loaded.lossy and len(loaded.problems) == 1 and "unknown key 'future'" in loaded.problems[0]
    assert loaded.settings.prefs == prefs and loaded.settings.notifications is True
    assert loaded.settings.extra == {"future": 1}  # unknown keys survive the dialog
    with open(str(prefs_path()) + ".bak") as f:
        assert parse_prefs(f.read()).settings == SAVED
    assert dlg.saved_result.backup == str(prefs_path()) + ".bak"
    assert dlg.applied_mnif == {"wlan0": 1, "eth0": 2, "wwan0": 4}  # what the helper gets (usb0 stays 3)


def test_applied_says_no_restart_for_app_side_changes(dlg, qloop):
    got = []
    dlg.applied.connect(lambda *a: got.append(a))
    dlg.notifications.setChecked(True)
    assert run(qloop, dlg.apply()) is True
    new_never = entries_to_prefs([("eth0", "primary"), ("usb0", "backup"), ("wlan0", "primary"), ("wwan0", "never")],
                                 holdup=8)
    assert got == [(new_never, True, False)]  # wwan0, new, is listed as never: as before for the daemon
    assert dlg.applied_mnif == {}
    assert load_prefs().settings.notifications is True


def test_a_file_that_cannot_be_saved_keeps_the_dialog_open(dlg, qloop):
    prefs_path().mkdir(parents=True)  # a directory where the file goes
    got = []
    dlg.applied.connect(lambda *a: got.append(a))
    assert run(qloop, dlg.apply()) is False
    assert got == [] and dlg.result() == 0
    assert dlg.validation_label.text().startswith("Not applied: ")
    assert "is a directory; not replaced" in dlg.validation_label.text()
    assert dlg.ok_button.isEnabled()


# showing a window on the offscreen platform warns about this, whatever the window
@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_open_preferences_loads_the_file_and_shows_its_problems(qtbot, qloop):
    p = prefs_path()
    p.parent.mkdir(parents=True)
    p.write_text('holdup = 9000\n[[interface]]\nname = "wlan0"\nmark = "backup"\n')

    async def scenario():
        return await open_preferences(LIVE, capabilities=UMIP)

    d = run(qloop, scenario())
    qtbot.addWidget(d)
    try:
        assert d.isVisible() and d.isModal()
        assert not d.problems_label.isHidden()
        assert f"{p}:1: holdup must be from 0 to 600 seconds" in d.problems_label.text()
        assert d.model.names() == ["wlan0", "eth0", "wwan0"]
        assert d.holdup.value() == 5
    finally:
        d.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        d.reject()


# --------------------------------------------------------------------------- issue 13.8: the order in use, validated
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from mhgui.core.failover import mnifpreference_values  # noqa: E402
from mhgui.core.mip6conf import preference_order_problem  # noqa: E402
from mhgui.core.orderinuse import mnif_after, order_in_use, same_order  # noqa: E402

IFNAMES = [f"if{i}" for i in range(14)]


@st.composite
def saved_and_current(draw):
    """A saved order (with marks) and mip6d.conf's values for the same interfaces: a clean order (1..k, 0 for
    the unused), which a rebind or mhctl may have changed since the order was saved."""
    names = draw(st.lists(st.sampled_from(IFNAMES[:8]), min_size=1, max_size=8, unique=True))
    marks = draw(st.lists(st.sampled_from(["primary", "primary", "backup", "never"]), min_size=len(names),
                          max_size=len(names)))
    saved = entries_to_prefs(list(zip(names, marks)))
    used = draw(st.permutations(names))
    k = draw(st.integers(1, len(names)))
    current = {n: (i + 1 if i < k else 0) for i, n in enumerate(used)}
    return saved, current


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(saved_and_current())
def test_the_dialog_shows_the_order_mip6d_uses(qtbot, sc):
    """After a rebind (or an edit) mip6d.conf ranks the interfaces its own way: the dialog shows that order, says
    so, and an untouched dialog writes nothing (applying it would otherwise undo the rebind silently)."""
    saved, current = sc
    live = [(n, "ethernet", True, "") for n in current]
    d = PreferencesDialog(live, FailoverSettings(saved), capabilities=UMIP, current_mnif=current)
    try:
        shown = d.model.preferences()
        names_used = set(current)
        assert same_order(shown, current)
        assert {n: v for n, v in mnifpreference_values(shown).items() if n in names_used} == current
        assert not d.restart_needed() and d.ok_button.text() == "OK" and d.restart_label.isHidden()
        assert d.order_label.isHidden() == same_order(saved, current)
        if same_order(saved, current):
            assert names(d)[:len(saved.order)] == list(saved.order)  # the saved order as it was
    finally:
        d.deleteLater()


def test_order_in_use_keeps_backups_where_they_still_hold():
    saved = entries_to_prefs([("eth0", "primary"), ("wlan0", "primary"), ("wwan0", "backup")])
    # a rebind put wlan0 first: the backup stays a backup, last
    shown, note = order_in_use(saved, {"wlan0": 1, "eth0": 2, "wwan0": 3})
    assert shown.order == ("wlan0", "eth0", "wwan0") and shown.backup == {"wwan0"} and note
    # a rebind onto the backup: it is a primary now (UMIP has no "backup only")
    shown, _ = order_in_use(saved, {"wwan0": 1, "eth0": 2, "wlan0": 3})
    assert shown.order == ("wwan0", "eth0", "wlan0") and not shown.backup
    assert order_in_use(saved, {"eth0": 1, "wlan0": 2, "wwan0": 3}) == (saved, "")
    assert order_in_use(None, {"eth0": 1}) == (None, "")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 14), data=st.data())
def test_ok_only_for_values_mip6d_conf_can_take(qtbot, n, data):
    """Whatever order and marks the user sets, OK is enabled only when the MnIfPreference values the file would
    then hold are a clean order (no tie, no gap: more than ten interfaces in use cannot be), and the refusal
    is said inline."""
    names_ = IFNAMES[:n]
    current = {nm: i + 1 for i, nm in enumerate(names_[:min(n, 10)])}  # what mip6d.conf has now
    d = PreferencesDialog([(nm, "ethernet", True, "") for nm in names_], None, capabilities=UMIP,
                          current_mnif=current)
    try:
        for row in range(d.model.rowCount()):
            d.model.set_mark(row, data.draw(st.sampled_from(["primary", "primary", "backup", "never"])))
        prefs = d.model.preferences()
        merged = mnif_after(prefs, current)
        problem = preference_order_problem(merged)
        writes = bool(d.mnif_changes())
        if all(m == "never" for _, m in d.model.marked()):
            assert not d.ok_button.isEnabled()
        elif writes and problem is not None:
            assert not d.ok_button.isEnabled(), (d.model.marked(), merged)
            assert "mip6d.conf cannot take this order" in d.validation_label.text()
        else:
            assert d.ok_button.isEnabled(), d.validation_label.text()
            if writes:
                assert preference_order_problem(merged) is None
    finally:
        d.deleteLater()
