"""The "Add steering rule" form (issue 15.6): validation as you type, Add disabled until valid,
accessible names, the applications offered, and what it sends."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QComboBox, QLineEdit, QPushButton  # noqa: E402

from mhgui.core.cgroups import AppScope  # noqa: E402
from mhgui.ui import colours  # noqa: E402
from mhgui.ui.steering_form import SteeringForm  # noqa: E402

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen, shown


@pytest.fixture
def form(qtbot):
    f = SteeringForm(["a0", "b0"])
    qtbot.addWidget(f)
    f.show()
    return f


def test_add_is_disabled_until_the_form_is_valid(form, qtbot):
    assert not form.add_button.isEnabled()
    assert "give a destination, ports, a protocol or an application" in form.message.text()
    qtbot.keyClicks(form.ports, "44")
    assert form.add_button.isEnabled() and form.message.text() == ""
    qtbot.keyClicks(form.ports, "3-1")  # "443-1": the end before the start
    assert not form.add_button.isEnabled()
    assert "Ports: port range 443-1: the end is before the start" in form.message.text()
    assert colours.tone_of(form.message) == "error"
    form.ports.clear()
    qtbot.keyClicks(form.destination, "not a host!")
    assert not form.add_button.isEnabled() and form.message.text().startswith("Destination: ")
    form.destination.setText("example.org")
    assert form.add_button.isEnabled()
    form.destination.setText("fe80::/64")
    assert "never steered" in form.message.text() and not form.add_button.isEnabled()
    form.destination.setText("2001:db8::1/64")
    assert "host bits set" in form.message.text()
    form.destination.setText("2001:db8::/64")
    form.application.setEditText("fire fox")
    assert "Application: " in form.message.text() and not form.add_button.isEnabled()
    form.application.setEditText("firefox")
    assert form.add_button.isEnabled()


def test_every_field_has_an_accessible_name(form):
    widgets = [w for cls in (QLineEdit, QComboBox, QPushButton) for w in form.findChildren(cls)]
    assert len(widgets) >= 7
    for w in widgets:
        if isinstance(w, QLineEdit) and isinstance(w.parent(), QComboBox):
            continue  # the editable combo box's own line edit
        assert w.accessibleName(), w


def test_running_apps_are_offered_and_sent_as_app_ids(form, qtbot):
    base = "user.slice/user-1000.slice/user@1000.service/app.slice"
    form.set_apps([AppScope("firefox", f"{base}/app-firefox-1.scope", "app-firefox-1.scope"),
                   AppScope("firefox", f"{base}/app-firefox-2.scope", "app-firefox-2.scope"),
                   AppScope("foot", f"{base}/app-foot-3.scope", "app-foot-3.scope")])
    items = [form.application.itemText(i) for i in range(form.application.count())]
    assert items == ["", "firefox (2 running)", "foot (1 running)"]
    form.application.setCurrentIndex(1)
    form.protocol.setCurrentIndex(1)  # TCP
    form.interface.setCurrentIndex(1)
    form.ports.setText("443, 80")
    with qtbot.waitSignal(form.submitted) as got:
        form.add_button.click()
    assert got.args[0] == {"destination": "", "interface": "b0", "protocol": "tcp", "ports": "443, 80",
                           "application": "app:firefox"}
    assert not form.add_button.isEnabled()  # busy until the window answers
    form.finished_adding(False, "Not added: polkit said no")
    assert form.add_button.isEnabled() and form.message.text() == "Not added: polkit said no"
    assert colours.tone_of(form.message) == "error"


def test_the_form_is_not_modal(form):
    assert not form.isModal()


def test_no_interface_means_no_add(qtbot):
    f = SteeringForm([])
    qtbot.addWidget(f)
    f.ports.setText("443")
    assert not f.add_button.isEnabled() and "no interface" in f.message.text()


def test_an_empty_application_list_is_explained(form):
    """No running application found: the form says where it looked instead of an unexplained empty row
    (issue 15 n1.9); typing an id still works."""
    where = "/sys/fs/cgroup/user.slice/user-0.slice/user@0.service/app.slice"
    form.set_apps([], where)
    assert form.apps_note.isVisible()
    assert form.apps_note.text() == (f"No running applications found in your session's cgroups ({where}); an "
                                     "application id can still be typed.")
    assert form.application.toolTip() == form.apps_note.text() and form.apps_note.accessibleName()
    form.application.setEditText("firefox")
    assert form.values()["application"] == "firefox" and form.add_button.isEnabled()
    form.set_apps([AppScope("foot", "user.slice/u/app.slice/app-foot-3.scope", "app-foot-3.scope")], where)
    assert not form.apps_note.isVisible()
