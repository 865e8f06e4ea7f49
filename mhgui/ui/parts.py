"""Composing the main window of parts: :class:`Delegate` makes ``window.name`` the part's ``name``."""

from __future__ import annotations


class Delegate:
    """A class attribute: ``window.<name>`` is ``window.<part>.<name>`` (a composed part's method or
    attribute), so callers and tests keep using the window's names. A non-data descriptor: an instance
    attribute of the same name (a test's replacement, e.g. ``win.move_flow = ...``) takes precedence; a
    part built lazily (a tab page) is built when first asked for (``MainWindow.__getattr__``)."""

    def __init__(self, part: str, name: str | None = None) -> None:
        self.part, self.name = part, name

    def __set_name__(self, owner, name: str) -> None:
        self.name = self.name or name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return getattr(getattr(obj, self.part), self.name)
