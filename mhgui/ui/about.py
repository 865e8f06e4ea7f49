"""Help and About (issue 15.5): a short help page inside the app (no network needed) and the About box.

:func:`help_html` and :func:`about_html` build the texts (pure, translated); :class:`HelpDialog`
shows the help page in a :class:`QTextBrowser` (links to sections of itself; web links open in
the desktop's browser only when clicked); :func:`about_box` makes a non-modal message box (shown
with ``open()``, never ``exec()``). The README, when installed with the docs or found beside a
source checkout, is offered as a link.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMessageBox, QTextBrowser, QVBoxLayout, QWidget

from .. import APP_NAME, __version__
from ..i18n import _

__all__ = ["DRAFT", "HOMEPAGE", "LICENCE", "HelpDialog", "about_box", "about_html", "help_html", "readme_path"]

HOMEPAGE = "https://github.com/mhgui/mhgui"
ISSUES = HOMEPAGE + "/issues"
LICENCE = "GPL-3.0-or-later"
LICENCE_URL = "https://www.gnu.org/licenses/gpl-3.0.html"
#: the Internet-Draft whose taxonomy, goals and issues the window follows
DRAFT = "draft-montavont-mobileip-multihoming-pb-statement-04"
DRAFT_TITLE = "Analysis of Multihoming in Mobile IPv6"
DRAFT_URL = "https://datatracker.ietf.org/doc/html/" + DRAFT

#: where the README may be: the Debian package's docs, a source checkout (the package's parent directory)
README_PLACES = ("/usr/share/doc/mhgui/README.md", "/app/share/doc/mhgui/README.md",
                 str(Path(__file__).resolve().parents[2] / "README.md"))


def readme_path(places=README_PLACES) -> str | None:
    """The first README of ``places`` that is a readable file, or None."""
    for p in places:
        if os.path.isfile(p) and os.access(p, os.R_OK):
            return p
    return None


def help_html(readme: str | None = None) -> str:
    """The in-app help page (HTML), translated; ``readme``: a local README to link to."""
    e = html.escape
    items = [
        (_("Headline"), _("the one answer: which uplink the node uses and whether the home agent answers, or what "
                          "is wrong and the button that fixes it; under it the taxonomy of the node (number of "
                          "interfaces, home addresses and care-of addresses, draft section 4) and its scenario.")),
        (_("Interfaces"), _("select one to filter the addresses and connections. Drop a home address or a "
                            "connection onto an interface to move it.")),
        (_("Addresses, Flows, Steering rules"), _("every address and its role, every connection and where it "
                                                  "goes out, the rules for new connections.")),
        (_("Health"), _("throughput of each interface, round-trip time and loss to the home agent through each "
                        "uplink, and a timeline of link, address, binding and failover events (export as PNG or CSV).")),
        (_("Node"), _("the node as a picture: home addresses, bindings, care-of addresses, interfaces, routers and "
                      "the home agent; drag a home address or a connection onto an interface to move it.")),
        (_("Draft analysis"), _("the goals the draft allows for this configuration and the issues that apply "
                                "(draft sections 3, 6 and 7).")),
        (_("Failover"), _("what carries each home address now, and every move with its timings.")),
        (_("Home addresses and binding table"), _("where the mobility daemon has registered each home address "
                                                  "(care-of address, BID, lifetime, state).")),
    ]
    keys = [
        ("F1", _("this help")),
        ("Ctrl+,", _("preferences (interface order, hold-up, notifications, start at login)")),
        ("Ctrl+C", _("copy the selected rows of a table (tab-separated)")),
        ("Ctrl+M", _("move the selected connection to another interface")),
        ("Ctrl+Q", _("quit (closing the window keeps the tray icon running)")),
    ]
    # (each _() outside the f-strings: xgettext does not look inside them, so those were never translated)
    title, window, keyboard, tables, more = (_("{app} help").format(app=APP_NAME), _("The window"), _("Keyboard"),
                                             _("Tables"), _("More"))
    readme_link, project_link = _("The README"), _("The project page")
    parts = [f"<h2>{e(title)}</h2>",
             "<p>" + e(_("mhgui shows how a multihomed Mobile IPv6 node is connected and lets you choose which "
                         "uplink carries each home address and each connection.")) + "</p>",
             f"<h3>{e(window)}</h3><ul>"]
    parts += [f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in items]
    parts.append(f"</ul><h3>{e(keyboard)}</h3><ul>")
    # the keys as Qt names them in menus, in the app's language (qtbase's catalogue: "Strg+M" in German)
    native = QKeySequence.SequenceFormat.NativeText
    parts += [f"<li><b>{e(QKeySequence(k).toString(native))}</b>: {e(v)}</li>" for k, v in keys]
    parts.append(f"</ul><h3>{e(tables)}</h3>")
    parts.append("<p>" + e(_("Right-click any table to copy its rows or export it as CSV or JSON: the columns and "
                             "rows as shown, in the order shown.")) + "</p>")
    parts.append(f"<h3>{e(more)}</h3><ul>")
    if readme:
        parts.append(f'<li><a href="{e(QUrl.fromLocalFile(readme).toString())}">{e(readme_link)}</a> '
                     f"({e(readme)})</li>")
    parts.append(f'<li><a href="{e(HOMEPAGE)}">{e(project_link)}</a>: {e(HOMEPAGE)}</li>')
    parts.append(f'<li><a href="{e(DRAFT_URL)}">{e(DRAFT)}</a>: {e(DRAFT_TITLE)}</li></ul>')
    return "\n".join(parts)


def about_html() -> str:
    """The About box's text (HTML): version, licence, links, the draft it follows."""
    e = html.escape
    follows = _("It follows the taxonomy, goals and issues of {draft} ({title}).").format(draft=DRAFT,
                                                                                       title=DRAFT_TITLE)
    licence, project, report = (_("Licence: {licence}").format(licence=LICENCE), _("Project page:"),
                                _("Report a problem:"))  # outside the f-strings, where xgettext finds them
    return "\n".join([
        f"<h3>{e(APP_NAME)} {e(__version__)}</h3>",
        "<p>" + e(_("Connection manager for multihomed Mobile IPv6 nodes.")) + "</p>",
        f'<p>{e(follows)} <a href="{e(DRAFT_URL)}">{e(DRAFT_URL)}</a></p>',
        f'<p>{e(licence)} (<a href="{e(LICENCE_URL)}">{e(LICENCE_URL)}</a>)</p>',
        f'<p>{e(project)} <a href="{e(HOMEPAGE)}">{e(HOMEPAGE)}</a><br>'
        f'{e(report)} <a href="{e(ISSUES)}">{e(ISSUES)}</a></p>',
    ])


class HelpDialog(QDialog):
    """The help page, not modal (``show()``); links open in the desktop's browser or file viewer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(_("{app} help").format(app=APP_NAME))
        lay = QVBoxLayout(self)
        self.browser = QTextBrowser(self)
        self.browser.setAccessibleName(_("Help text"))
        self.browser.setOpenLinks(False)  # nothing is fetched: a click hands the link to the desktop
        self.browser.anchorClicked.connect(QDesktopServices.openUrl)
        self.browser.setHtml(help_html(readme_path()))
        lay.addWidget(self.browser)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        lay.addWidget(buttons)
        self.resize(620, 520)


def about_box(parent: QWidget | None = None) -> QMessageBox:
    """The About box (not shown: call ``open()``)."""
    box = QMessageBox(parent)
    box.setWindowTitle(_("About {app}").format(app=APP_NAME))
    icon = parent.windowIcon() if parent is not None else None
    if icon is not None and not icon.isNull():
        box.setIconPixmap(icon.pixmap(64, 64))
    else:
        box.setIcon(QMessageBox.Icon.Information)
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)  # the links can be clicked
    box.setText(about_html())
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    return box
