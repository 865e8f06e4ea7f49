"""Modules imported by name but loaded at their first use (start-up memory, issue 14).

:func:`defer_module` puts a stand-in for a module in ``sys.modules``: ``import ssl`` then returns at
once, and the real module is imported the first time one of its attributes is looked up (PEP 562's
module ``__getattr__``), from then on through the stand-in as well (it forwards each look-up to the real
module, which ``sys.modules`` then holds). For a module that libraries import at their top but use only
in a function mhgui never calls: pyroute2's rtnetlink modules import :mod:`ssl` for a network probe
(``probe_msg``), which costs about 7 MiB of resident memory.

(:class:`importlib.util.LazyLoader` does not do here: before Python 3.12, an ``import`` of a module
already in ``sys.modules`` reads its ``__spec__``, which loads a lazy module at once.)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

__all__ = ["defer_module"]

_lock = threading.RLock()


class _Deferred(types.ModuleType):
    """Stand-in for a module not loaded yet; the first attribute look-up imports it."""

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):  # e.g. __path__, __file__: no loading for those
            raise AttributeError(attr)
        real = self.__dict__.get("_mhgui_real")
        if real is None:
            with _lock:
                real = self.__dict__.get("_mhgui_real")
                if real is None:
                    name = self.__name__
                    if sys.modules.get(name) is self:
                        del sys.modules[name]
                    try:
                        real = importlib.import_module(name)
                    except BaseException:
                        sys.modules.setdefault(name, self)  # the next look-up tries again (and raises again)
                        raise
                    self.__dict__["_mhgui_real"] = real
        return getattr(real, attr)


def defer_module(name: str) -> bool:
    """Put a stand-in for top-level module ``name`` in ``sys.modules`` (see the module's docstring).

    True when done; False (nothing changed) when ``name`` is already imported, is a package's
    submodule, or cannot be found."""
    with _lock:
        if name in sys.modules or "." in name:
            return False
        spec = importlib.util.find_spec(name)
        if spec is None:
            return False
        stand_in = _Deferred(name)
        stand_in.__spec__ = spec  # not initializing: `import name` takes it as it is
        sys.modules[name] = stand_in
        return True
