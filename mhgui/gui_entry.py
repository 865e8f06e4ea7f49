"""The ``mhgui`` command: the window, when the "gui" extra is installed.

``pip install mhgui`` gives the host side (the helper, the engine's daemons, ``mhctl``)
without Qt; the window needs ``pip install 'mhgui[gui]'`` (PySide6, qasync). Without
them, ``mhgui`` says so in one line and exits with status 2 instead of a traceback.
"""

from __future__ import annotations

import importlib.util
import sys

#: what the window imports beyond the base install (pyproject.toml, optional-dependencies "gui")
GUI_MODULES = ("PySide6", "qasync")


def missing_gui_modules() -> list[str]:
    """The modules of :data:`GUI_MODULES` that cannot be imported here (empty: the window can start)."""
    return [name for name in GUI_MODULES if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    """Start the window (:func:`mhgui.ui.app.main`); exit status 2 when the GUI extra is missing."""
    missing = missing_gui_modules()
    if missing:
        print(f"mhgui: the window needs the GUI extra, which is not installed (missing: {', '.join(missing)}).\n"
              "  Install it with: pip install 'mhgui[gui]'   (mhctl, mhgui-mn, mhgui-ha and the helper work "
              "without it)", file=sys.stderr)
        return 2
    from .ui.app import main as app_main
    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main())
