"""The "Draft analysis" tab: the goals the draft (draft-ietf-mif-mpvd / RFC 4980's multihoming analysis,
as :func:`mhgui.core.report.taxonomy` words it) allows for this configuration, and the issues that apply
(its sections 6 and 7). :class:`AnalysisPage` is ``window.analysis_page``; its models and views are the
window's ``goals_model``, ``issues_model``, ``goals_view``, ``issues_view``, ``no_issue``."""

from __future__ import annotations

from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QHeaderView, QLabel, QVBoxLayout, QWidget

from ..i18n import N_, _
from .models import ListTableModel
from .tables import table


class AnalysisPage(QWidget):
    """The goals' and the issues' tables side by side; :meth:`show_taxonomy` fills them."""

    def __init__(self, models_parent=None) -> None:
        super().__init__()  # (no parent: the tab widget takes it)
        self.goals_model = ListTableModel((N_("Goal (draft section 3)"), N_("Reachable now?")), models_parent)
        self.issues_model = ListTableModel((N_("Section"), N_("Issue"), N_("What it means")), models_parent)
        top = QHBoxLayout(self)
        g = QGroupBox(_("Goals the draft allows here"))
        self.goals_view = table(self.goals_model, sortable=False)
        QVBoxLayout(g).addWidget(self.goals_view)
        i = QGroupBox(_("Issues that apply (draft sections 6 and 7)"))
        il = QVBoxLayout(i)
        self.no_issue = QLabel(_("The draft names no open issue for this configuration."))
        self.no_issue.hide()
        il.addWidget(self.no_issue)
        self.issues_view = table(self.issues_model, sortable=False)
        self.issues_view.setWordWrap(True)
        self.issues_view.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.issues_model.modelReset.connect(self.issues_view.resizeRowsToContents)
        il.addWidget(self.issues_view)
        top.addWidget(g, 2)
        top.addWidget(i, 3)

    def show_taxonomy(self, tax: dict) -> None:
        """Fill the tables from ``tax`` (:func:`mhgui.core.report.taxonomy`'s dict: ``goals``,
        ``goals_available``, ``issues``, ``summary``)."""
        avail = {g["goal"]: g for g in tax["goals_available"]}
        rows, tips, ok = [], [], []
        for goal in tax["goals"]:
            a = avail.get(goal, {"available": False, "reason": ""})
            reason = a["reason"]
            word = _("yes") if a["available"] else _("no")
            # the reasons for a "yes" already start with it ("yes: the daemon has ...")
            rows.append((_(goal), reason if reason.startswith(word) else f"{word}: {reason}"))
            tips.append(a["reason"])
            ok.append(a["available"])
        if not rows:
            rows, tips, ok = [("—", _("the draft lists no goal for this configuration"))], [tax["summary"]], [None]
        self.goals_model.set_rows(rows, tips, ok)
        issues = tax["issues"]
        self.issues_model.set_rows(
            [(i["section"], i["title"], i["explanation"] + (f"\n{i['mechanism'][0].upper()}{i['mechanism'][1:]}."
                                                            if i.get("mechanism") else "")) for i in issues],
            [i.get("mechanism") or i["explanation"] for i in issues],
            [True if i.get("mechanism") else None for i in issues])
        self.no_issue.setVisible(not tax["issues"])
