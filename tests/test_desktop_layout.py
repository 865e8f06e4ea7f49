"""The window fits a 1366x768 screen less a panel (1366x720 free) at its default size, nothing cut (issue 15.5).

The real check runs the window in a child process on Qt's offscreen platform given a 1366x720 screen
(``offscreen:configfile=``, a JSON list of screens): the default size is computed from that screen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QRect, QSize

from mhgui.ui.window import default_size

TESTS = Path(__file__).resolve().parent
SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from PySide6.QtWidgets import QApplication
app = QApplication([])
import desktopworld
win, c = desktopworld.window()
if {lo!r}:  # the loopback is listed too: 3 interfaces and lo
    from mhgui.core.model import Interface, InterfaceKind
    from mhgui.core.state import LinkUpsert
    c.store.apply(LinkUpsert(Interface(1, "lo", InterfaceKind.LOOPBACK, True, True, True, "unknown")))
    c.refresh()
if {few!r}:  # two bindings (one home address, two care-of addresses)
    c.bindings.set_bindings(c._resolved(desktopworld.bindings()[:2]))
if {worst!r}:  # a problem in the banner and a rebind message under the binding table take room too
    win.set_error("mip6d.conf line 12: an interface name that no longer exists (a malformed configuration)")
    win._on_rebind_progress("Rebind failed after 120 ms: the home agent refused the binding update", False)
win.show()
for _ in range(5):
    app.processEvents()
report = desktopworld.layout_report(win)
if {shot!r}:
    win.tabs.setCurrentIndex(0)
    app.processEvents()
    win.grab().save({shot!r})
print("REPORT" + json.dumps(report))
c.close()
"""


def run_on_screen(tmp_path, width: int, height: int, shot: str = "", worst: bool = False, lo: bool = False,
                  few: bool = False) -> dict:
    conf = tmp_path / "screens.json"
    conf.write_text(json.dumps({"synchronousWindowSystemEvents": True, "windowFrameMargins": True,
                                "screens": [{"name": "test", "x": 0, "y": 0, "width": width, "height": height,
                                             "logicalDpi": 96, "logicalBase": 96, "dpr": 1}]}))
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={conf}", DBUS_SESSION_BUS_ADDRESS="disabled:",
               XDG_CONFIG_HOME=str(tmp_path / "xdg"), LANGUAGE="en", LC_ALL="C.UTF-8")
    p = subprocess.run([sys.executable, "-c", SCRIPT.format(tests=str(TESTS), shot=shot, worst=worst, lo=lo, few=few)], env=env,
                       capture_output=True, text=True, timeout=120)
    out = [line for line in p.stdout.splitlines() if line.startswith("REPORT")]
    assert p.returncode == 0 and out, f"the window did not start:\n{p.stdout}\n{p.stderr}"
    return json.loads(out[-1][len("REPORT"):])


def test_default_size_follows_the_free_screen_area():
    assert default_size(QRect(0, 0, 1366, 720)) == QSize(1350, 680)  # room for the title bar and borders
    assert default_size(QRect(0, 0, 2560, 1400)) == QSize(1400, 900)  # capped on a big screen
    assert default_size(QRect(0, 0, 1024, 552)) == QSize(1008, 512)


@pytest.mark.parametrize("worst", [False, True])
def test_nothing_is_cut_on_a_1366x720_screen(tmp_path, worst):
    shot = str(tmp_path / "window.png")
    r = run_on_screen(tmp_path, 1366, 720, shot, worst)
    assert r["screen"] == [1366, 720] and r["size"] == [1350, 680]
    assert not r["problems"], "\n".join(r["problems"])
    assert r["binding_rows"] >= 4
    # every group and table was looked at: the header's, the tabs', each tab's tables
    assert {"group 'Binding table'", "group 'Home addresses'", "the tabs"} <= set(r["checked"])
    assert sum(c.startswith("table ") for c in r["checked"]) >= 7
    assert Path(shot).stat().st_size > 10000


@pytest.mark.parametrize("worst", [False, True])
@pytest.mark.parametrize("few", [False, True])
def test_every_interface_and_binding_row_shows_at_1366x720(tmp_path, worst, few):
    """Three interfaces and lo all show in the interfaces table (no scrollbar to find eth0), and the binding
    table shows its rows (four at least): the tabs get the rest, with room for rows of their own."""
    r = run_on_screen(tmp_path, 1366, 720, worst=worst, lo=True, few=few)
    shown, total = r["interface_rows"]
    assert total == 4 and shown >= total, r
    assert r["binding_rows"] >= 4, r
    if few:  # sized to its rows: no big empty table under two bindings
        assert r["binding_rows"] <= 5, r
    assert not r["problems"], "\n".join(r["problems"])


def test_the_window_can_shrink_below_the_default(tmp_path):
    """Room to spare at 1366x720: the layout's own minimum is well below the default size."""
    r = run_on_screen(tmp_path, 1366, 720)
    assert r["minimum"][0] <= 1350 and r["minimum"][1] <= 680 - 40, r["minimum"]
