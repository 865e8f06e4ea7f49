"""What a new user met in the lab (issue 15 walk-through) and was fixed: each test fails without its fix.

- Help and About showed English headings ("The window", "Keyboard", "Licence:", "Project page:") under
  LANGUAGE=de: their _() calls sat inside f-strings, where xgettext does not look, so they never reached
  the catalogue.
- The Failover tab showed the reason "preferred-back" untranslated (missing from its reason words).
- `mhctl log` cut "probes: home agent unreachable" to "probes: home age".
- The help page described the headline as the taxonomy and left out the Health, Node and Failover tabs.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mhgui import i18n

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for p in (REPO / "mhgui").rglob("*.py") if "__pycache__" not in p.parts)
MARKERS = ("_", "N_", "ngettext")


def _literal_marks_in_fstrings(path: Path) -> list[str]:
    """``_("literal")`` (or N_/ngettext) inside an f-string's replacement field: translated at run time
    but never extracted by xgettext, so never translated at all."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.JoinedStr):
            continue
        for value in node.values:
            if not isinstance(value, ast.FormattedValue):
                continue
            for inner in ast.walk(value.value):
                if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id in MARKERS \
                        and inner.args and isinstance(inner.args[0], ast.Constant) \
                        and isinstance(inner.args[0].value, str):
                    bad.append(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}:{inner.lineno}: "
                               f"{inner.args[0].value!r}")
    return bad


def test_the_fstring_scan_finds_a_hidden_mark(tmp_path):
    f = tmp_path / "x.py"
    f.write_text('from mhgui.i18n import _\na = f"<h3>{_(\'Keyboard\')}</h3>"\nb = f"{_(NAMES[k])}"\n'
                 'c = _("fine") + f"{x}"\n')
    found = _literal_marks_in_fstrings(f)
    assert len(found) == 1 and "'Keyboard'" in found[0]


def test_no_literal_is_marked_inside_an_fstring():
    bad = [b for p in SOURCES for b in _literal_marks_in_fstrings(p)]
    assert not bad, "xgettext cannot see these (move the _() out of the f-string):\n" + "\n".join(bad)


def test_help_and_about_speak_german(monkeypatch):
    from mhgui.ui.about import about_html, help_html
    monkeypatch.setenv("LANGUAGE", "de")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    i18n.reset()
    try:
        text = help_html("/x/README.md") + about_html()
        english = [w for w in ("The window", "Keyboard", "Tables", ">More<", "The README", "The project page",
                               "Licence:", "Project page:", "Report a problem:") if w in text]
        assert not english, english
        assert "Tastatur" in text  # the catalogue was read: the check above means something
    finally:
        i18n.reset()


def test_the_help_names_every_tab_of_the_window():
    """The tabs the window adds (read from its source) each have a line on the help page."""
    from mhgui.ui.about import help_html
    src = "".join((REPO / "mhgui" / "ui" / f).read_text() for f in ("window.py", "shell.py"))  # shell adds Failover
    tabs = re.findall(r'(?:lazy_tabs\.add|addTab)\([^"\n]*_\("([^"]+)"\)', src)
    assert {"Health", "Node", "Failover", "Draft analysis"} <= set(tabs), tabs
    text = help_html(None)
    missing = [t for t in tabs if t not in text]
    assert not missing, missing
    # the headline is the node's one answer, not the taxonomy line under it
    assert "which uplink the node uses" in text


def test_every_failover_reason_has_words():
    from mhgui.core.failover import ENGINE_REASONS, NAME_REASONS, USER_REASONS, SwitchTo
    from mhgui.failover_service import NOT_A_LOSS
    from mhgui.ui.failover_view import REASON_WORDS
    documented = re.search(r"``reason``:(.*?)\.\n", SwitchTo.__doc__ or "", re.S)
    assert documented is not None
    reasons = {r.strip() for r in documented.group(1).replace("\n", " ").split("|")}
    reasons |= set(ENGINE_REASONS.values()) | set(NAME_REASONS) | set(USER_REASONS) | set(NOT_A_LOSS)
    assert "preferred-back" in reasons and "link-down" in reasons
    missing = sorted(reasons - set(REASON_WORDS))
    assert not missing, missing


def test_mhctl_log_prints_the_whole_reason(tmp_path):
    from mhgui.sources.journal import FailoverJournal
    path = tmp_path / "failover.jsonl"
    j = FailoverJournal(str(path))
    entry = {"id": 1, "by": "daemon", "who": "daemon", "from": "up0", "to": "up1",
             "reason": "probes: home agent unreachable", "hoas": ["2001:db8:10::42"], "note": "",
             "trigger_time": 10.0, "decision_time": 10.0, "bu_time": 10.0, "ack_time": 10.002,
             "after_trigger": {"decision": 0.0, "bu": 0.0, "ack": 0.002}}
    j.append(entry).result(timeout=10)
    j.close()
    out = subprocess.run([sys.executable, "-m", "mhgui.cli", "log", "--file", str(path)], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    line = out.stdout.splitlines()[-1]
    assert "probes: home agent unreachable" in line and "ack 2 ms" in line, out.stdout
    got = json.loads(subprocess.run([sys.executable, "-m", "mhgui.cli", "log", "--json", "--file", str(path)],
                                    capture_output=True, text=True, timeout=60, cwd=tmp_path).stdout)
    assert got["failovers"][0]["reason"] == "probes: home agent unreachable"


def test_an_empty_table_shows_its_whole_headers(qtbot):
    """The Steering rules table without rules (the lab has no helper) cut "New connections to" to
    "ew connections": the columns were fitted only once rows arrived."""
    from PySide6.QtWidgets import QTableView

    from mhgui.ui.columns import ColumnSizer
    from mhgui.ui.models import RulesModel
    m = RulesModel()
    v = QTableView()
    v.setModel(m)
    qtbot.addWidget(v)
    v.resize(900, 200)
    v.show()
    sizer = ColumnSizer(v, delay_ms=10)
    h = v.horizontalHeader()
    qtbot.waitUntil(lambda: sizer.fits >= 1, timeout=3000)
    assert m.rowCount() == 0
    short = [(c, h.sectionSize(c), h.sectionSizeHint(c)) for c in range(m.columnCount() - 1)
             if h.sectionSize(c) < h.sectionSizeHint(c)]
    assert not short, short


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen, a shown window
def test_health_does_not_show_old_round_trips_for_an_uplink_that_is_not_probed(qtbot):
    """A cut uplink (no carrier: the engine reports "reachable": null with its last rtt_ms) kept showing
    "0.773 ms (1.61 ms)" on the Health tab, as if measured now."""
    from mhgui.core.health import LinkCounters
    from mhgui.core.model import Interface, InterfaceKind
    from mhgui.core.state import LinkUpsert, StateStore
    from mhgui.sources.linkstats import StatsTick
    from mhgui.ui.health_view import HealthPage, health_feed
    from mhgui.ui.window import LiveController, MainWindow

    now = [1000.0]

    class Source:
        sink, active = None, False

        def set_active(self, on):
            self.active = on

    class Failover:
        log = type("Log", (), {"entries": []})()

        def subscribe(self, cb):
            return lambda: None

    store = StateStore()
    for i, name in ((2, "up0"), (3, "up1")):
        store.apply(LinkUpsert(Interface(i, name, InterfaceKind.ETHERNET, True, True, True, "up")))
    c = LiveController(store, lambda: now[0])
    w = MainWindow(c)
    qtbot.addWidget(w)
    w.resize(1366, 720)
    try:
        page = w.lazy_tabs.ensure("Health")
        assert isinstance(page, HealthPage)
        w.show()
        w.tabs.setCurrentWidget(page)
        qtbot.waitExposed(w)
        src = Source()
        health_feed(w).attach(src, Failover())
        qtbot.waitUntil(lambda: src.active)
        for k in range(5):
            now[0] = 1000.0 + k
            cut = k >= 3  # up0 loses its carrier: not probed any more, its last figures stay in the answer
            ups = ({"name": "up0", "ifindex": 2, "carrier": not cut, "reachable": None if cut else True,
                    "rtt_ms": 0.773, "srtt_ms": 1.61, "loss": 0.0, "probes_sent": 4 * k, "probes_answered": 4 * k},
                   {"name": "up1", "ifindex": 3, "carrier": True, "reachable": True, "rtt_ms": 0.6, "srtt_ms": 0.9,
                    "loss": 0.0, "probes_sent": 4 * k, "probes_answered": 4 * k})
            src.sink(StatsTick(now[0], (LinkCounters(2, "up0", k, k), LinkCounters(3, "up1", k, k)), ups))
        page.refresh()
        texts = {lab.accessibleName(): lab.text() for lab in page.metrics.findChildren(type(page.span_label))
                 if lab.accessibleName()}
        assert texts["up1 round-trip time value"] == "0.6 ms (0.9 ms)"  # a live uplink shows its numbers
        assert "0.773" not in texts["up0 round-trip time value"], texts
        assert texts["up0 round-trip time value"] == "not known now"
    finally:
        c.close()


def test_the_missing_helper_banner_says_how_to_install_it_once():
    """The lab's banner read "...; install it on the host with the mhgui-host Debian package (or sudo
    ./scripts/install-helper from a clone). Fix: install the helper on the host: the mhgui-host Debian
    package (or sudo ./scripts/install-helper from a clone)." (and, without the engine, said twice that
    nobody owns the name)."""
    from mhgui.core.access import HELPER, banner_lines, problems
    from mhgui.core.model import Interface, InterfaceKind, NodeState
    eth = Interface(2, "eth0", InterfaceKind.ETHERNET, True, True, True, "up")
    state = NodeState(interfaces={2: eth})
    detail = "nobody owns io.github.mhgui.MHGui.Helper1 and no service file makes it activatable"
    for engine in (True, False):
        found = problems({"netlink": ("ok", ""), "system-bus": ("ok", ""), HELPER: ("absent", detail)}, state,
                         engine=engine)
        (line,) = banner_lines(found)
        assert line.count("install-helper") == 1 and line.count("nobody owns") == 1, line
        assert "install-helper" in found[0].fix


def test_the_failover_tab_names_each_home_address_once_with_all_its_uplinks():
    """With several care-of addresses it read "2001:db8:10::42 is bound through up0. 2001:db8:10::42 is
    bound through up1." """
    from mhgui.core.bindings import Binding, BindingState
    from mhgui.ui.failover_view import FailoverPage

    hoa = "2001:db8:10::42"
    binds = [Binding(hoa, "2001:db8:a1::2", "2001:db8:10::1", 1, 1, 600, 590, 1, BindingState.REGISTERED,
                     ("A", "H"), "up0"),
             Binding(hoa, "192.0.2.2", "2001:db8:10::1", 2, 2, 600, 590, 1, BindingState.REGISTERED,
                     ("A", "H"), "up1"),
             Binding("2001:db8:10::43", "192.0.2.2", "2001:db8:10::1", 1, 1, 600, 590, 1,
                     BindingState.REGISTERED, ("A", "H"), "up1")]

    class Daemon:
        def bindings(self):
            return binds

        def uplinks(self):
            return [{"name": "up0", "reachable": True, "carrier": True},
                    {"name": "up1", "reachable": True, "carrier": True}]

    class Page:  # what _engine_status reads of the page
        service = type("S", (), {"policy": type("P", (), {"fallback": {}})(), "steering": None})()

        def in_use(self):
            return {}

    text = FailoverPage._engine_status(Page(), Daemon())
    assert text.count(hoa) == 1, text
    assert f"{hoa} is bound through up0, up1." in text and "2001:db8:10::43 is bound through up1." in text
