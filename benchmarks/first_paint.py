"""Start-up to first painted window: mhgui versus a bare PySide6 window (ratio).

Each variant runs in a fresh process (offscreen Qt); the parent measures from
spawn to the child's "painted" line. Prints medians over N runs.
Usage: python benchmarks/first_paint.py [N]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

CHILD = r'''
import sys
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QMainWindow, QLabel
app = QApplication(sys.argv[:1])
class First(QObject):
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Paint and isinstance(obj, QMainWindow):
            print("painted", flush=True)
            import os; os._exit(0)
        return False
f = First(); app.installEventFilter(f)
if sys.argv[1] == "bare":
    w = QMainWindow(); w.setCentralWidget(QLabel("hello")); w.resize(1100, 780); w.show(); app.exec()
else:
    from mhgui.ui.app import main
    main(["--no-networkmanager"])
'''


def once(kind: str) -> float:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DBUS_SESSION_BUS_ADDRESS="disabled:")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD, kind], capture_output=True, text=True, env=env, timeout=60)
    dt = time.perf_counter() - t0
    if "painted" not in p.stdout:
        raise RuntimeError(f"{kind}: no paint: {p.stderr[-500:]}")
    return dt


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    once("bare"), once("mhgui")  # warm the file cache
    bare = [once("bare") for _ in range(n)]
    app = [once("mhgui") for _ in range(n)]
    b, a = statistics.median(bare), statistics.median(app)
    print(f"first paint, median of {n}: bare PySide6 window {b * 1000:.0f} ms, mhgui {a * 1000:.0f} ms, ratio {a / b:.2f}")


if __name__ == "__main__":
    main()
