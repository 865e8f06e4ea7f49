"""The main window's header (issue 15.1): the node's answer with its icon and the one action that fixes
it (a button; a command to copy when the privileged helper is not here), what that action did, then,
secondary, the draft's taxonomy (``headline``), the scenario (``summary``) and the ``banner``.

:class:`AnswerBar` is ``window.answer_bar``; its widgets are the window's ``answer``, ``answer_icon``,
``answer_button``, ``answer_note``, ``headline``, ``summary``, ``banner``."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from ..core.analysis import Analysis
from ..i18n import _
from . import colours
from .header import TONE, answer_of, typed_command


class AnswerBar(QObject):
    """The header of ``window`` (a :class:`~mhgui.ui.window.MainWindow`: its ``controller``, ``actions``
    (:class:`~mhgui.ui.header.ActionRunner`), ``answer_icons``, status bar), laid out in ``root``."""

    def __init__(self, window, root: QVBoxLayout) -> None:
        super().__init__(window)
        self.w = window
        self.answer = QLabel()
        self.answer.setObjectName("answer")
        self.answer.setAccessibleName(_("Status of this node"))
        self.answer.setWordWrap(True)
        f = self.answer.font()
        f.setPointSize(f.pointSize() + 4)
        f.setBold(True)
        self.answer.setFont(f)
        self.answer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.answer_icon = QLabel()
        self.answer_icon.setObjectName("answer-icon")
        self.answer_button = QPushButton()
        self.answer_button.setObjectName("answer-action")
        self.answer_button.hide()
        self.answer_button.clicked.connect(self._on_answer_button)
        self.answer_note = QLabel()  # what the action did (a refusal says what to do)
        self.answer_note.setObjectName("answer-note")
        self.answer_note.setWordWrap(True)
        self.answer_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # (commands in it)
        self.answer_note.hide()
        self._answer = None
        self._answer_command: str | None = None  # what to run instead of the button (typed_command)
        answer_row = QHBoxLayout()
        answer_row.addWidget(self.answer_icon)
        answer_row.addWidget(self.answer, 1)
        answer_row.addWidget(self.answer_button)
        root.addLayout(answer_row)
        root.addWidget(self.answer_note)
        self.headline = QLabel()  # the draft's taxonomy: secondary
        self.headline.setObjectName("headline")
        f = self.headline.font()
        f.setPointSize(f.pointSize() + 1)
        self.headline.setFont(f)
        self.headline.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        colours.set_banner(self.banner, "pending")
        self.banner.hide()
        root.addWidget(self.headline)
        root.addWidget(self.summary)
        root.addWidget(self.banner)

    def show_answer_icon(self) -> None:
        """The answer's level as the style's standard icon, one line of text high (when the window's
        ``answer_icons``)."""
        if not self.w.answer_icons or self._answer is None:
            return
        from PySide6.QtWidgets import QStyle
        icon = {"ok": QStyle.StandardPixmap.SP_DialogApplyButton, "info": QStyle.StandardPixmap.SP_MessageBoxInformation,
                "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
                "error": QStyle.StandardPixmap.SP_MessageBoxCritical}[self._answer.level]
        size = self.answer.fontMetrics().height()
        self.answer_icon.setPixmap(self.w.style().standardIcon(icon).pixmap(size, size))

    def _show_answer(self, an: Analysis | None = None) -> None:
        """The node's answer at the top, with its action as a button (issue 15.1)."""
        controller = self.w.controller
        h = answer_of(controller, an)
        cmd = typed_command(controller, h.action)
        if h == self._answer and cmd == self._answer_command:
            return
        if self._answer is not None and h.action != self._answer.action:
            self.answer_note.hide()  # what the last action did is about an answer that changed (e.g. daemon back)
        self._answer, self._answer_command = h, cmd
        self.answer.setText(h.text)
        self.answer.setToolTip(h.detail)
        colours.set_tone(self.answer, TONE.get(h.level))
        self.w.show_answer_icon()
        self.answer_icon.setAccessibleName(h.level)
        self.answer_button.setVisible(h.action is not None)
        if h.action is not None:
            # the app cannot take it here (no privileged helper, e.g. the lab): what works, shown and copyable
            label = _("Copy the command") if cmd else h.action.label
            self.answer_button.setText(label)
            self.answer_button.setAccessibleName(label)
            self.answer_button.setToolTip(cmd or "")
        if cmd:
            self.answer_note.setText(_("{action}: the privileged helper that would do it is not installed here; run "
                                       "this in a terminal: {command}").format(action=h.action.label, command=cmd))
            colours.set_tone(self.answer_note, "info")
            self.answer_note.show()

    def _on_answer_button(self) -> None:
        if self._answer_command:
            from PySide6.QtWidgets import QApplication
            QApplication.clipboard().setText(self._answer_command)
            self.w.statusBar().showMessage(_("Copied: {command}").format(command=self._answer_command), 10000)
            return
        self.w.actions.run(self._answer.action if self._answer else None)

    def _on_action_message(self, text: str, ok) -> None:
        self.answer_note.setText(text)
        colours.set_tone(self.answer_note, {True: "ok", False: "error"}.get(ok, "info"))
        self.answer_note.show()
