"""Translations (GNU gettext, domain ``mhgui``).

Every string a user reads goes through :func:`_` (or :func:`ngettext`). A string
that must be a constant at import time is marked with :func:`N_` and passed through
:func:`_` where it is shown.

Catalogues are compiled ``.mo`` files under ``mhgui/locale/<lang>/LC_MESSAGES/mhgui.mo``
(sources: ``po/<lang>.po``). The language comes from the usual environment
(``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``); a missing or unreadable
catalogue means English, never an error. The catalogue is read once, at the first
translated string (no I/O at import); when the environment asks for no language mhgui ships
(English, ``C``), gettext is not even imported. ``scripts/update-po`` extracts, merges and
compiles; ``tests/test_i18n.py`` checks the result.
"""
from __future__ import annotations

import os

DOMAIN = "mhgui"
LOCALEDIR = os.path.join(os.path.dirname(__file__), "locale")


class _English:
    """The messages as they are (what gettext's NullTranslations does), without importing gettext."""

    @staticmethod
    def gettext(message: str) -> str:
        return message

    @staticmethod
    def ngettext(singular: str, plural: str, n: int) -> str:
        return singular if n == 1 else plural

    @staticmethod
    def info() -> dict:
        return {}


_ENGLISH = _English()
_translation = None  # gettext.GNUTranslations, or _ENGLISH; None: not looked up yet


def _wanted() -> set[str]:
    """The languages the environment asks for, as gettext reads it (the first of LANGUAGE, LC_ALL,
    LC_MESSAGES, LANG that is set), without territory, codeset or modifier: ``de_AT.UTF-8`` -> ``de``."""
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return {v.split("@")[0].split(".")[0].split("_")[0] for v in value.split(":") if v}
    return set()


def _tr():
    global _translation
    if _translation is None:
        try:
            shipped = set(os.listdir(LOCALEDIR))
        except OSError:
            shipped = set()
        if not _wanted() & shipped:
            # most runs: no catalogue for the asked language (English, C): no gettext, no file looked up
            _translation = _ENGLISH
        else:
            import gettext
            try:
                _translation = gettext.translation(DOMAIN, LOCALEDIR, fallback=True)
            except (OSError, ValueError):  # a damaged .mo: English rather than no app
                _translation = _ENGLISH
            if type(_translation) is gettext.NullTranslations:
                _translation = _ENGLISH
    return _translation


def language() -> str | None:
    """The language of the catalogue in use (its ``Language`` header, e.g. ``"de"``), or None for English
    (no catalogue for the user's language). Qt's own texts (standard buttons, file dialogs) follow it
    (:func:`mhgui.ui.qt_i18n.install_qt_translations`)."""
    t = _tr()
    if t is _ENGLISH:
        return None
    return t.info().get("language") or None


def reset() -> None:
    """Read the catalogue again at the next string (after the language changed, e.g. in tests)."""
    global _translation
    _translation = None


def _(message: str) -> str:
    """``message`` in the user's language (itself when there is no translation)."""
    return _tr().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n``, in the user's language."""
    return _tr().ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it now (translate where shown)."""
    return message
