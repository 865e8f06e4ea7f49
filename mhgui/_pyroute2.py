"""pyroute2 without its package ``__init__`` until a name of it is asked for (start-up cost, issue 14).

``import pyroute2.iproute.linux`` runs ``pyroute2/__init__.py`` first, and that
imports every socket class of the library (NDB, IPDB, conntrack, nftables,
IPVS, nl80211, plan9...): about 160 modules, 80-140 ms and 15 MiB here, where
the rtnetlink source needs a third of them. :func:`defer_package_init` puts
the ``pyroute2`` package module in ``sys.modules`` *without running its
``__init__``*: importing a submodule (``from pyroute2.iproute.linux import
AsyncIPRoute``) then loads only that submodule and what it imports. The first
time a name of the package itself is looked up (``from pyroute2 import
IPRoute``, ``pyroute2.NDB``), a module ``__getattr__`` (PEP 562) runs the real
``__init__`` in that same module object, so such code works unchanged, just
without the saving (a submodule, ``from pyroute2 import config`` or
``pyroute2.netns``, still loads only that submodule).

Nothing happens when pyroute2 is already imported, or is not installed.
"""

from __future__ import annotations

import importlib.util
import sys
import threading

__all__ = ["defer_package_init", "package_init_ran"]

_lock = threading.RLock()


def package_init_ran() -> bool:
    """True when ``pyroute2/__init__.py`` has run in this process (or pyroute2 is not imported)."""
    mod = sys.modules.get("pyroute2")
    return mod is None or "__getattr__" not in vars(mod) or not getattr(mod.__getattr__, "_mhgui_deferred", False)


def defer_package_init() -> bool:
    """Register ``pyroute2`` as a package whose ``__init__`` runs on first attribute access.

    Returns True when it did so now or earlier; False when pyroute2 was already imported (nothing
    to save) or cannot be found.
    """
    with _lock:
        mod = sys.modules.get("pyroute2")
        if mod is not None:
            return not package_init_ran()
        spec = importlib.util.find_spec("pyroute2")
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return False
        mod = importlib.util.module_from_spec(spec)  # __path__, __spec__, __file__: submodules import from it

        def __getattr__(name: str):
            if name.startswith("__") and name not in ("__all__", "__version__"):
                raise AttributeError(f"module 'pyroute2' has no attribute {name!r}")
            # a submodule (`from pyroute2 import config`, `pyroute2.netns.setns`): that module alone
            if importlib.util.find_spec(f"pyroute2.{name}") is not None:
                return importlib.import_module(f"pyroute2.{name}")
            # a name the package's __init__ defines: run it now, once, in this module object
            with _lock:
                if vars(mod).get("__getattr__") is __getattr__:
                    del mod.__getattr__
                    try:
                        spec.loader.exec_module(mod)
                    except BaseException:
                        mod.__getattr__ = __getattr__  # the next look-up tries again and raises again
                        raise
            try:
                return vars(mod)[name]
            except KeyError:
                raise AttributeError(f"module 'pyroute2' has no attribute {name!r}") from None

        __getattr__._mhgui_deferred = True
        mod.__getattr__ = __getattr__
        sys.modules["pyroute2"] = mod
        return True
