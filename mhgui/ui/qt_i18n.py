"""Qt's own texts in the app's language: the standard buttons (OK, Cancel), the file dialogs, the
context menu of a text field. Qt ships them as ``qtbase_<lang>.qm`` (PySide6 has them under
``QLibraryInfo``'s translations path); the language is the one of mhgui's gettext catalogue
(:func:`mhgui.i18n.language`), so both always agree: English when mhgui has no catalogue.
"""

from __future__ import annotations

from ..i18n import language

__all__ = ["install_qt_translations"]


def install_qt_translations(app) -> bool:
    """Load ``qtbase_<lang>`` into ``app`` (a QCoreApplication) when mhgui speaks ``lang``. Returns whether
    a translation was installed (False: English, or Qt has no catalogue for that language)."""
    lang = language()
    if not lang:
        return False
    from PySide6.QtCore import QLibraryInfo, QTranslator
    path = QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)
    tr = QTranslator(app)  # owned by the app: lives as long as it
    if not tr.load(f"qtbase_{lang}", path):
        tr.deleteLater()
        return False
    return app.installTranslator(tr)
