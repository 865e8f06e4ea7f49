"""Translations (issue 15.5): every string translatable, one catalogue (German) shipped complete.

GNU gettext's own tools judge the catalogue: xgettext extracts the strings again (the committed
po/mhgui.pot must hold every one of them), ``msgfmt --check --statistics`` counts untranslated and fuzzy
entries of po/de.po and checks its format strings, and the shipped .mo must be what msgfmt makes of
po/de.po now. The window is then built under LANGUAGE=de and must speak German. An AST scan of the UI
finds string literals handed to Qt's text setters without ``_()``.
"""

from __future__ import annotations

import ast
import contextlib
import gettext
import locale
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mhgui import i18n

REPO = Path(__file__).resolve().parent.parent
PO = REPO / "po"
MO = REPO / "mhgui" / "locale" / "de" / "LC_MESSAGES" / "mhgui.mo"

needs_gettext = pytest.mark.skipif(not shutil.which("xgettext") or not shutil.which("msgfmt"),
                                   reason="needs GNU gettext (apt-get install gettext)")


def _entries(pot: str) -> set[tuple[str, ...]]:
    """(msgctxt, msgid, msgid_plural) of every entry of a .po/.pot text (the header left out)."""
    out: set[tuple[str, ...]] = set()
    cur: dict[str, str] = {}
    key = None

    def flush():
        if cur.get("msgid"):
            out.add((cur.get("msgctxt", ""), cur["msgid"], cur.get("msgid_plural", "")))
        cur.clear()

    for line in pot.splitlines():
        m = re.match(r'^(msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?) "(.*)"$', line)
        if m:
            if m.group(1) in ("msgctxt", "msgid") and (m.group(1) == "msgctxt" or "msgctxt" not in cur
                                                       or "msgid" in cur):
                flush()
            key = m.group(1)
            cur[key] = ast.literal_eval('"' + m.group(2) + '"')
        elif line.startswith('"') and key:
            cur[key] += ast.literal_eval(line)
        elif not line.strip():
            key = None
    flush()
    return out


@needs_gettext
def test_the_committed_template_holds_every_marked_string(tmp_path):
    run = subprocess.run([str(REPO / "scripts" / "update-po"), "--check"], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    if run.returncode != 0:
        # say which strings are missing or gone, not only that the file differs
        fresh = tmp_path / "now.pot"
        subprocess.run(["bash", "-c", "find mhgui -name '*.py' -not -path '*/__pycache__/*' | LC_ALL=C sort | "
                        f"xgettext --files-from=- -o {fresh} -L Python --from-code=UTF-8 --keyword= --keyword=_ "
                        "--keyword=N_ --keyword=ngettext:1,2"], capture_output=True, cwd=REPO, timeout=120)
        now, committed = _entries(fresh.read_text()), _entries((PO / "mhgui.pot").read_text())
        missing, gone = sorted(now - committed), sorted(committed - now)
        pytest.fail(f"po/mhgui.pot is out of date (scripts/update-po): missing {missing[:10]}, gone {gone[:10]}"
                    f"\n{run.stderr}")


@needs_gettext
def test_german_is_complete_and_its_formats_check():
    run = subprocess.run(["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(PO / "de.po")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    stats = run.stderr.strip()
    assert re.fullmatch(r"\d+ translated messages?\.", stats), f"de.po is not complete: {stats}"
    n = int(stats.split()[0])
    assert n == len(_entries((PO / "mhgui.pot").read_text())) and n > 300
    # every entry of the template is in de.po (msgfmt counts only what de.po has)
    assert _entries((PO / "mhgui.pot").read_text()) <= _entries((PO / "de.po").read_text())


@needs_gettext
def test_the_shipped_catalogue_is_de_po_compiled(tmp_path):
    fresh = tmp_path / "mhgui.mo"
    run = subprocess.run(["msgfmt", "--check", "-o", str(fresh), str(PO / "de.po")], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert MO.read_bytes() == fresh.read_bytes(), "mhgui/locale/de/LC_MESSAGES/mhgui.mo is stale: scripts/update-po"


def _catalog() -> dict:
    with MO.open("rb") as f:
        return gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]


def test_placeholders_and_edges_are_kept_in_every_translation():
    """{name} placeholders identical (same set) in msgid and msgstr; leading/trailing spaces and
    newlines kept (the pieces are joined); no translation is empty."""
    def fields(text: str) -> set[str]:
        return set(re.findall(r"\{(\w*)[^{}]*\}", text.replace("{{", "").replace("}}", "")))

    cat = _catalog()
    assert len(cat) > 300
    bad = []
    for key, msgstr in cat.items():
        if key == "":  # the header
            continue
        msgid = key if isinstance(key, str) else key[0]  # plural forms: (singular, n)
        if not msgstr.strip():
            bad.append((msgid, "empty"))
        elif fields(msgid) != fields(msgstr):
            bad.append((msgid, f"placeholders {sorted(fields(msgid))} != {sorted(fields(msgstr))}"))
        for edge in (" ", "\n"):
            if msgid.startswith(edge) != msgstr.startswith(edge) or msgid.endswith(edge) != msgstr.endswith(edge):
                bad.append((msgid, f"a {edge!r} at an end"))
    assert not bad, bad[:20]


# ---------------------------------------------------------------------------------------- the code
UI = sorted((REPO / "mhgui" / "ui").glob("*.py"))
SOURCES = sorted((REPO / "mhgui").rglob("*.py"))
#: Qt calls whose string arguments a user reads
TEXT_CALLS = {"setText", "setToolTip", "setWindowTitle", "setPlaceholderText", "setStatusTip", "setWhatsThis",
              "addTab", "addAction", "addMenu", "setTabText", "setTitle", "showMessage", "setLabelText",
              "setInformativeText", "setDetailedText", "setAccessibleDescription", "setHeaderLabels",
              "setHorizontalHeaderLabels", "setItemText", "addItem", "addItems", "insertItem", "setSuffix",
              "setPrefix", "setSpecialValueText", "setButtonText", "QLabel", "QPushButton", "QCheckBox",
              "QRadioButton", "QGroupBox", "QAction", "QMenu", "QToolButton", "information", "warning",
              "critical", "question", "setAccessibleName", "addRow", "setPlainText", "setHtml", "setMarkdown",
              "addButton"}
#: QMessageBox's static methods share their names with logging's: only QMessageBox.warning(...) is a text
DIALOG_STATICS = {"information", "warning", "critical", "question"}
#: literals that are no text: object names, icons, style, formats, separators, markup alone, example
#: addresses (placeholders showing a format)
NOT_TEXT = re.compile(r"^([\W\d_]*|[a-z0-9_.:&-]+|#[0-9a-fA-F]{3,8}|[A-Za-z]+\.(svg|png)|%[a-zA-Z]+|\{\}"
                      r"|\w+-\w+(-\w+)*|(</?\w+[^>]*>\s*)+|[\w.+-]+@[\w.-]+|[0-9a-fA-F:./]+(, *[0-9a-fA-F:./]+)*)$")


def _where(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _texts_not_translated(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    bad = []

    def literal_texts(node) -> list[ast.Constant]:
        """String constants that reach the call as they are (not inside _(), N_(), ngettext())."""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_", "N_", "ngettext"):
            return []
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node]
        if isinstance(node, ast.JoinedStr):
            return [v for v in node.values if isinstance(v, ast.Constant)] + [
                c for v in node.values if isinstance(v, ast.FormattedValue) for c in literal_texts(v.value)]
        if isinstance(node, ast.BinOp):
            return literal_texts(node.left) + literal_texts(node.right)
        if isinstance(node, ast.IfExp):
            return literal_texts(node.body) + literal_texts(node.orelse)
        if isinstance(node, (ast.Tuple, ast.List)):
            return [c for e in node.elts for c in literal_texts(e)]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("format", "join"):
            return literal_texts(node.func.value)
        return []

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name not in TEXT_CALLS:
            continue
        if name in DIALOG_STATICS and not (isinstance(node.func, ast.Attribute)
                                           and getattr(node.func.value, "id", "") == "QMessageBox"):
            continue
        for arg in list(node.args) + [k.value for k in node.keywords if k.arg in (None, "text", "title")]:
            for c in literal_texts(arg):
                if c.value.strip() and not NOT_TEXT.match(c.value.strip()):
                    bad.append(f"{_where(path)}:{c.lineno}: {name}({c.value!r})")
    # HEADERS of the models: marked with N_
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("HEADERS")
                                                for t in node.targets):
            for c in (e for e in getattr(node.value, "elts", []) if isinstance(e, ast.Constant)):
                if isinstance(c.value, str) and c.value.strip():
                    bad.append(f"{_where(path)}:{c.lineno}: header {c.value!r} not marked with N_()")
    return bad


def test_user_visible_literals_in_the_ui_are_translated():
    bad = [b for p in UI for b in _texts_not_translated(p)]
    assert not bad, "strings shown without _():\n" + "\n".join(bad)


def test_the_scan_finds_an_untranslated_label(tmp_path):
    """The scan above can fail: a bare literal in setText, an f-string in QLabel, a header tuple."""
    f = tmp_path / "x.py"
    f.write_text('from mhgui.i18n import _\nHEADERS = ("Name", "Role")\nw.setText("Hello world")\n'
                 'QLabel(f"Connected via {x}")\nw.setToolTip(_("fine"))\nw.setObjectName("flows-view")\n')
    found = _texts_not_translated(f)
    assert len(found) == 4 and any("Hello world" in b for b in found) and any("Connected via" in b for b in found)


def _shadows(path: Path) -> list[str]:
    """Functions that both call _() and bind the name _ (``for _ in``, ``_, x = ...``): the call then fails
    with UnboundLocalError."""
    tree = ast.parse(path.read_text(), str(path))
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
              ast.GeneratorExp, ast.ClassDef)

    def own(node):
        """The nodes of ``node``'s own scope (not those of nested functions or comprehensions)."""
        for child in ast.iter_child_nodes(node):
            yield child
            if not isinstance(child, scopes):
                yield from own(child)

    bad = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        mine = list(own(fn))
        binds = any(isinstance(n, ast.Name) and n.id == "_" and isinstance(n.ctx, ast.Store) for n in mine)
        # a call anywhere inside (nested scopes see the function's local _ too)
        calls = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "_"
                    for n in ast.walk(fn))
        if binds and calls:
            bad.append(f"{_where(path)}:{fn.lineno}: {fn.name}")
    return bad


def test_the_shadow_check_finds_a_hidden_translation_function(tmp_path):
    f = tmp_path / "x.py"
    f.write_text('from mhgui.i18n import _\ndef f(d):\n    for _, v in d:\n        pass\n    return _("x")\n'
                 'def g(d):\n    return [k for _, k in d] + [_("y")]\n')
    assert [b.rsplit(": ", 1)[1] for b in _shadows(f)] == ["f"]


def test_no_function_hides_the_translation_function():
    bad = []
    for p in SOURCES:
        text = p.read_text()
        if "import _" in text or "N_, _" in text or " _," in text:
            bad += _shadows(p)
    assert not bad, bad


def test_no_string_is_translated_at_import_time():
    """_() at module or class level runs once, at import, in whatever language the process had then (a
    test, a language change): such constants are marked with N_() and translated where shown."""
    bad = []

    def visit(node, path, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if not inside and isinstance(child, ast.Call) and isinstance(child.func, ast.Name) \
                    and child.func.id in ("_", "ngettext"):
                bad.append(f"{path.relative_to(REPO)}:{child.lineno}")
            visit(child, path, inside)

    for p in SOURCES:
        visit(ast.parse(p.read_text(), str(p)), p, False)
    assert not bad, bad


def test_no_f_string_or_variable_is_marked():
    """xgettext sees only literals: _(f"...") or _(variable) at a definition would never be translated. (A
    variable holding an N_() constant is fine where it is shown.)"""
    bad = []
    for p in SOURCES:
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_", "N_") \
                    and node.args and isinstance(node.args[0], ast.JoinedStr):
                bad.append(f"{p.relative_to(REPO)}:{node.lineno}")
    assert not bad, bad


# ---------------------------------------------------------------------------------------- the window
@contextlib.contextmanager
def language(value: str):
    """LANGUAGE=value for mhgui's catalogue, then back. glibc reads LANGUAGE too (strerror), once the
    QApplication has set the locale, and keeps its choice until the locale is set again: that is
    done after, or every later test of the run would read German error messages."""
    old = os.environ.get("LANGUAGE")
    os.environ["LANGUAGE"] = value
    i18n.reset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["LANGUAGE"]
        else:
            os.environ["LANGUAGE"] = old
        current = locale.setlocale(locale.LC_MESSAGES)
        locale.setlocale(locale.LC_MESSAGES, "C")
        locale.setlocale(locale.LC_MESSAGES, current)
        i18n.reset()


@pytest.fixture
def german():
    with language("de"):
        yield


def test_i18n_falls_back_to_english():
    with language("xx"):
        assert i18n._("Failover") == "Failover" and i18n.ngettext("{n} interface", "{n} interfaces", 2) == "{n} interfaces"
        assert i18n.language() is None


def test_the_catalogue_is_found_under_language_de(german):
    assert i18n._("When") == "Wann"
    assert i18n.ngettext("{n} interface", "{n} interfaces", 1) == "{n} Schnittstelle"
    assert i18n.ngettext("{n} interface", "{n} interfaces", 2) == "{n} Schnittstellen"


def test_the_window_speaks_german(qtbot, german):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QTabWidget

    from mhgui.core.model import Address, HomeAddress, Interface, InterfaceKind
    from mhgui.core.state import AddressUpsert, HomeAddressesSet, LinkUpsert, StateStore
    from mhgui.ui.window import LiveController, MainWindow

    store = StateStore()
    store.apply(LinkUpsert(Interface(2, "eth0", InterfaceKind.ETHERNET, True, True, True, "up")))
    store.apply(LinkUpsert(Interface(3, "wlan0", InterfaceKind.WIFI, True, True, True, "up")))
    store.apply(HomeAddressesSet((HomeAddress("2001:db8:100::10", 64, "2001:db8:100::1"),)))
    store.apply(AddressUpsert(Address(2, "2001:db8:a::5", 64)))
    store.apply(AddressUpsert(Address(3, "2001:db8:b::5", 64)))
    c = LiveController(store, lambda: 100.0)
    win = MainWindow(c)
    qtbot.addWidget(win)
    c.refresh()
    qtbot.waitUntil(lambda: win.headline.text().startswith("(n,1,n)"))
    text = win.headline.text()
    assert "2 Schnittstellen" in text and "1 Home-Adresse" in text and "Szenario 5.6" in text, text
    tabs = win.findChild(QTabWidget)
    titles = [tabs.tabText(i) for i in range(tabs.count())]
    assert {"Adressen", "Verbindungen", "Steuerungsregeln"} <= set(titles), titles
    assert not {"Addresses", "Flows", "Steering rules", "Health", "Draft analysis"} & set(titles), titles
    model = c.interfaces
    headers = [model.headerData(i, Qt.Orientation.Horizontal) for i in range(model.columnCount())]
    english = {"Interface", "Name", "Kind", "State", "Addresses", "Role"}
    assert not english & set(headers), headers
    assert headers[0] == "Schnittstelle", headers
    # the draft's text, its goals and what stops them: German too
    assert win.summary.text().startswith("Der MN ist multihomed"), win.summary.text()
    goals = [win.goals_model.index(r, 0).data() for r in range(win.goals_model.rowCount())]
    assert "Fehlerbehebung" in goals and "fault recovery" not in goals, goals
    why = win.goals_model.index(0, 1).data()
    assert why.startswith("nein, kein Mobilitätsdienst verbunden"), why
    c.close()


def test_qt_speaks_the_same_language(qapp, german):
    """Qt's standard buttons follow mhgui's catalogue: German under LANGUAGE=de, English otherwise."""
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QDialogButtonBox

    from mhgui.ui.qt_i18n import install_qt_translations
    assert i18n.language() == "de"
    assert QCoreApplication.translate("QPlatformTheme", "Cancel") == "Cancel"  # no Qt catalogue yet
    assert install_qt_translations(qapp)
    try:
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        assert box.button(QDialogButtonBox.StandardButton.Cancel).text().replace("&", "") == "Abbrechen"
    finally:
        from PySide6.QtCore import QTranslator
        for t in qapp.findChildren(QTranslator):
            qapp.removeTranslator(t)
            t.deleteLater()


def test_no_qt_translation_in_english(qapp):
    from mhgui.ui.qt_i18n import install_qt_translations
    with language("en"):
        assert i18n.language() is None and not install_qt_translations(qapp)


def test_the_c_library_speaks_english_again_after_german(qapp):
    """The language() helper leaves no German behind in the C library's messages (see its docstring)."""
    with language("de"):
        assert i18n._("When") == "Wann"
        os.strerror(2)
    assert os.strerror(2) == "No such file or directory"
