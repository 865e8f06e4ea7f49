"""Start-up (issue 14): the window is shown before what can wait; pyroute2 without its package-wide import.

Structural checks in fresh processes (which modules are loaded when), not timings: the
times are in benchmarks/first_paint.py and benchmarks/mhctl_status.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_py(script: str, *args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    p = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout,
                       env=e, cwd=str(ROOT))
    assert p.returncode == 0, p.stderr[-3000:]
    return p


DEFERRED = r"""
import json, sys
from mhgui._pyroute2 import defer_package_init, package_init_ran
out = {"deferred": defer_package_init()}
from pyroute2.iproute.linux import AsyncIPRoute
from pyroute2 import config, netns              # submodules: still no package __init__
from pyroute2.netlink.rtnl import ifaddrmsg
import pyroute2
out["arp"] = pyroute2.arp.__name__                # a submodule by attribute: that module alone
out["after_submodules"] = package_init_ran()
out["ndb_loaded"] = "pyroute2.ndb" in sys.modules
names = sys.argv[1:]
got = {n: getattr(pyroute2, n) for n in names}    # the first one runs the package's __init__
out["after_names"] = package_init_ran()
out["same_class"] = pyroute2.AsyncIPRoute is AsyncIPRoute
out["names_ok"] = all(got[n] is getattr(pyroute2, n) for n in names)
try:
    from pyroute2 import no_such_name_here
    out["missing"] = "imported"
except ImportError:
    out["missing"] = "ImportError"
out["again"] = defer_package_init()
print(json.dumps(out))
"""

EAGER = r"""
import json, pyroute2
print(json.dumps(sorted(getattr(m, "__name__", "?") for m in pyroute2.modules)))
"""


def test_pyroute2_names_load_on_first_use_and_submodules_alone():
    eager = json.loads(run_py(EAGER).stdout)
    # every public name of the package's __init__ (asked for by name, in a sample across the list)
    sample = [n for n in ("IPRoute", "AsyncIPRoute", "NDB", "NetlinkError", "IPSet", "DiagSocket") if n in eager]
    assert len(sample) >= 4
    out = json.loads(run_py(DEFERRED, *sample).stdout)
    assert out["deferred"] is True
    assert out["after_submodules"] is False and out["ndb_loaded"] is False and out["arp"] == "pyroute2.arp"
    assert out["after_names"] is True and out["same_class"] is True and out["names_ok"] is True
    assert out["missing"] == "ImportError"
    assert out["again"] is False  # the package is complete now: nothing left to defer


APP = r"""
import json, os, signal, sys
from PySide6.QtCore import QEvent, QObject
from mhgui.ui.app import main

seen = {}

class Watch(QObject):
    def __init__(self, what, ready=lambda: True):
        super().__init__()
        self.what, self.ready = what, ready
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Paint and self.what not in seen and self.ready():
            seen[self.what] = sorted(sys.modules)
            if self.what == "addresses":
                os.kill(os.getpid(), signal.SIGTERM)  # the app's own way out: it cleans up and returns
        return False

keep = []
def on_window(win):
    view = win.addresses_view
    keep.extend((Watch("visible"), Watch("addresses", lambda: view.model().rowCount() > 0)))
    win.installEventFilter(keep[0])
    view.viewport().installEventFilter(keep[1])

rc = main(sys.argv[1:], on_window=on_window)
with open(os.environ["OUT"], "w") as f:
    json.dump({"rc": rc, **seen}, f)
"""

#: what the window does not need to be shown (issue 14): the shell (failover, tray, notifications), pyroute2's
#: modules (netlink and the socket table start after the first frame; "pyroute2" alone is the package whose
#: __init__ is deferred, see mhgui._pyroute2), the single-instance server (QtNetwork)
NOT_BEFORE_THE_WINDOW = ("mhgui.ui.shell", "mhgui.ui.tray", "mhgui.ui.notify", "mhgui.ui.failover_view",
                         "mhgui.failover_service", "pyroute2.", "PySide6.QtNetwork")


@pytest.mark.parametrize("args", [(), ("--no-tray",), ("--no-networkmanager",)])
def test_the_window_is_painted_before_what_can_wait(tmp_path, args):
    out = tmp_path / "seen.json"
    run_py(APP, *args, "--mip6d-conf", "/dev/null", timeout=90,
           env={"OUT": str(out), "QT_QPA_PLATFORM": "offscreen", "DBUS_SESSION_BUS_ADDRESS": "disabled:",
                "MHGUI_INSTANCE": f"t{os.getpid()}", "XDG_RUNTIME_DIR": str(tmp_path),
                "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "config")})
    seen = json.loads(out.read_text())
    assert seen["rc"] == 0
    early = [m for m in seen["visible"] if m.startswith(NOT_BEFORE_THE_WINDOW)]
    assert early == []
    # the first frame with addresses is `ip -j`'s snapshot (mhgui.ui.app.start_ip_snapshot): pyroute2 comes after
    assert "mhgui.sources.iproute_json" in seen["addresses"]
    assert [m for m in seen["addresses"] if m.startswith("pyroute2.")] == []
