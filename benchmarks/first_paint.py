"""Start-up: mhgui versus a bare PySide6 window, under Xvfb (ratios in one run).

Each start is a fresh process on an Xvfb display (``-noreset``, so the server
is not reset between clients) that this benchmark starts and ends. The parent
takes the time from spawning the child to each line the child writes:

``visible``    the first paint event of the main window (bare: a QMainWindow with a
               label; mhgui: its MainWindow). Caught by an event filter on that
               window only: no application-wide filter, which would see every
               event of every widget and slow mhgui down more than the bare window;
``addresses``  mhgui only: the first paint of the address table's viewport while
               its model has rows (the first frame that shows the node's addresses;
               a filter on that viewport only).

Bare and mhgui runs alternate (one warm-up pair first, not counted); min and
median are printed, and the ratios to the bare window's visible time (goals:
visible ≤ 1.5×, addresses ≤ 2×); also the CPU time each child had used at
those frames (median and ratio), which a busy machine disturbs less. Resident memory (VmRSS) is read ``IDLE``
seconds after the last line, while the process idles: its ratio to the bare
window's.

Memory with 10,000 flows (the issue's goal: RSS ≤ 1.6× bare PySide6 *with 10,000 flows*): a helper
process of this benchmark holds ``FLOWS`` loopback TCP sockets open (``FLOWS / 2`` connections, both
ends: each socket is one row of the flows table) in this network namespace, then

``bare-flows``   the floor: a bare PySide6 window holding an equivalent table, a QTableView (sorted
                 through a QSortFilterProxyModel, as mhgui's) over a plain QAbstractTableModel of the
                 same sockets, read from /proc/net/tcp and tcp6, eight text columns as mhgui's; it says
                 ``flows`` at the table's first paint with ``FLOWS`` rows;
``mhgui-flows``  mhgui, whose Flows tab is made current after the first frame with addresses; it says
                 ``flows`` at the first paint of the flows table's viewport with ``FLOWS`` rows shown,

alternated; VmRSS ``IDLE`` s after that line, median, and the ratio (goal ≤ 1.6×).

The mhgui child runs with ``--no-networkmanager``, no session bus (the tray
finds none), a private single-instance name and empty XDG directories.
Usage: python benchmarks/first_paint.py [PAIRS] (default 5; flows: 3 pairs)
``MHGUI_BENCH_SHORT=1`` (CI): 3 pairs, and 2 pairs with flows.
"""

from __future__ import annotations

import os
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time

IDLE = 2.0  # seconds after the last line before VmRSS is read
FLOWS = 10_000  # sockets held open for the runs with flows (the "10,000 flows")
TIMEOUT = 60.0

CHILD = r'''
import os, sys, time
from PySide6.QtCore import QEvent, QObject

def say(what):
    os.write(1, f"{what} {time.process_time():.6f}\n".encode())  # and the CPU time this process used so far

class FirstPaint(QObject):
    """Says ``what`` at the first paint of the one object it is installed on (when ``ready()``)."""
    def __init__(self, what, ready=lambda: True):
        super().__init__()
        self.what, self.ready, self.done = what, ready, False
    def eventFilter(self, obj, ev):
        if not self.done and ev.type() == QEvent.Type.Paint and self.ready():
            self.done = True
            say(self.what)
        return False

if sys.argv[1] == "bare-flows":  # the floor with flows: the same sockets in a plain sorted QTableView
    from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
    from PySide6.QtWidgets import QApplication, QMainWindow, QTableView
    want = int(sys.argv[2])
    STATES = {"01": "ESTABLISHED", "0A": "LISTEN", "06": "TIME_WAIT", "08": "CLOSE_WAIT"}
    def sockets():
        for name, proto in (("tcp", "TCP"), ("tcp6", "TCP")):
            with open(f"/proc/net/{name}") as f:
                next(f)
                for line in f:
                    x = line.split()
                    yield ("", x[7], proto, x[1], x[2], STATES.get(x[3], x[3]), "", x[9])
    class Table(QAbstractTableModel):
        def __init__(self, rows):
            super().__init__()
            self.rows = rows
        def rowCount(self, parent=QModelIndex()):
            return 0 if parent.isValid() else len(self.rows)
        def columnCount(self, parent=QModelIndex()):
            return 0 if parent.isValid() else 8
        def data(self, index, role=Qt.ItemDataRole.DisplayRole):
            return self.rows[index.row()][index.column()] if role == Qt.ItemDataRole.DisplayRole else None
    app = QApplication(sys.argv[:1])
    w = QMainWindow()
    view = QTableView()
    table = Table(list(sockets()))
    proxy = QSortFilterProxyModel()
    proxy.setSourceModel(table)
    view.setModel(proxy)
    view.setSortingEnabled(True)
    w.setCentralWidget(view)
    w.resize(1100, 780)
    f = FirstPaint("visible")
    w.installEventFilter(f)
    g = FirstPaint("flows", lambda: proxy.rowCount() >= want)
    view.viewport().installEventFilter(g)
    w.show()
    app.exec()
elif sys.argv[1] == "bare":
    from PySide6.QtWidgets import QApplication, QLabel, QMainWindow
    app = QApplication(sys.argv[:1])
    w = QMainWindow()
    w.setCentralWidget(QLabel("hello"))
    w.resize(1100, 780)
    f = FirstPaint("visible")
    w.installEventFilter(f)
    w.show()
    app.exec()
else:
    from mhgui.ui.app import main
    keep = []
    flows = int(sys.argv[2]) if sys.argv[1] == "mhgui-flows" else 0
    def on_window(win):
        f = FirstPaint("visible")
        win.installEventFilter(f)
        view = win.addresses_view
        g = FirstPaint("addresses", lambda: view.model().rowCount() > 0)
        view.viewport().installEventFilter(g)
        keep.extend((f, g))
        if flows:
            from PySide6.QtCore import QTimer
            def show_flows():  # after the first frame with addresses: the Flows tab, as a user would
                if not g.done:
                    QTimer.singleShot(20, show_flows)
                    return
                win.tabs.setCurrentIndex(win.tabs.indexOf(win.flows_page))  # built when first asked for
                fv = win.flows_view
                h = FirstPaint("flows", lambda: fv.model().rowCount() >= flows)
                fv.viewport().installEventFilter(h)
                keep.append(h)
            QTimer.singleShot(0, show_flows)
    main(["--no-networkmanager"], on_window=on_window)
'''


def start_xvfb(log) -> tuple[subprocess.Popen, str]:
    r, w = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x800x24", "-nolisten", "tcp",
                             "-noreset"], pass_fds=(w,), stdout=log, stderr=log)
    os.close(w)
    buf = b""
    deadline = time.monotonic() + 10
    while not buf.endswith(b"\n"):
        sel = selectors.DefaultSelector()
        sel.register(r, selectors.EVENT_READ)
        if not sel.select(max(0.0, deadline - time.monotonic())):
            xvfb.kill()
            raise RuntimeError("Xvfb did not start")
        chunk = os.read(r, 64)
        if not chunk:
            raise RuntimeError(f"Xvfb ended (exit {xvfb.wait()})")
        buf += chunk
    os.close(r)
    return xvfb, ":" + buf.decode().strip()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def once(kind: str, env: dict) -> dict:
    """Times (s) from spawn to each line of the child, and its VmRSS (KiB) when idle."""
    want = {"bare": ("visible",), "mhgui": ("visible", "addresses"), "bare-flows": ("visible", "flows"),
            "mhgui-flows": ("visible", "addresses", "flows")}[kind]
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", CHILD, kind, str(FLOWS)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    got: dict = {}
    err = b""
    try:
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        sel.register(p.stderr, selectors.EVENT_READ)
        buf = b""
        deadline = t0 + TIMEOUT
        while not all(w in got for w in want):
            left = deadline - time.perf_counter()
            if left <= 0:
                raise RuntimeError(f"{kind}: only {sorted(got)} within {TIMEOUT:.0f} s: {err[-800:].decode()}")
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 4096)
                now = time.perf_counter()
                if not chunk:
                    sel.unregister(key.fileobj)
                    if key.fileobj is p.stdout:
                        raise RuntimeError(f"{kind}: ended (exit {p.wait()}): {err[-800:].decode()}")
                    continue
                if key.fileobj is p.stderr:
                    err += chunk
                    continue
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    what, cpu = line.decode().split()
                    got.setdefault(what, now - t0)
                    got.setdefault(what + "_cpu", float(cpu))
        time.sleep(IDLE)
        got["rss"] = rss_kib(p.pid)
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()
    return got


HOLDER = r'''
import resource, socket, sys
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < n + 64:
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 64, max(hard, n + 64)))
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(4096)
keep = []
for _ in range(n // 2):
    c = socket.create_connection(listener.getsockname())
    s, _ = listener.accept()
    keep += (c, s)
print("ready", flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
'''


def hold_sockets(n: int) -> subprocess.Popen:
    """A process holding ``n`` loopback TCP sockets open (n/2 connections, both ends) until its stdin closes."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    if p.stdout.readline().strip() != b"ready":
        p.kill()
        raise RuntimeError(f"the socket holder ended (exit {p.wait()})")
    return p


def _ms(xs: list[float]) -> str:
    return f"min {min(xs) * 1000:6.0f} ms  median {statistics.median(xs) * 1000:6.0f} ms"


def main() -> None:
    short = os.environ.get("MHGUI_BENCH_SHORT") == "1"
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 3 if short else 5
    flow_pairs = 2 if short else 3
    tmp = tempfile.TemporaryDirectory(prefix="mhgui-first-paint-")
    log = open(os.path.join(tmp.name, "xvfb.log"), "w")
    xvfb, display = start_xvfb(log)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # `timeout`: end Xvfb in `finally`
    try:
        for d in ("config", "state", "data", "cache", "runtime"):
            os.makedirs(os.path.join(tmp.name, d), mode=0o700)
        # compiled bytecode as an installed app has it (pip and the .deb write it): a private pycache
        # that the warm-up pair fills, for the bare window and mhgui alike. Without it (a checkout run
        # with PYTHONDONTWRITEBYTECODE set, as in this sandbox), every start compiles mhgui's
        # modules from source (about 60 ms here) and the bare window pays nothing of the kind.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("QT_", "WAYLAND")) and k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp.name, "pycache")
        env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", DBUS_SESSION_BUS_ADDRESS="disabled:",
                   MHGUI_INSTANCE=f"bench{os.getpid()}",
                   XDG_CONFIG_HOME=os.path.join(tmp.name, "config"), XDG_STATE_HOME=os.path.join(tmp.name, "state"),
                   XDG_DATA_HOME=os.path.join(tmp.name, "data"), XDG_CACHE_HOME=os.path.join(tmp.name, "cache"),
                   XDG_RUNTIME_DIR=os.path.join(tmp.name, "runtime"))
        once("bare", env), once("mhgui", env)  # warm the file cache
        bare, app = [], []
        for _ in range(pairs):  # alternated: a slow phase of the machine hits both
            bare.append(once("bare", env))
            app.append(once("mhgui", env))
        holder = hold_sockets(FLOWS)
        try:
            once("bare-flows", env), once("mhgui-flows", env)  # warm-up
            bare_f, app_f = [], []
            for _ in range(flow_pairs):
                bare_f.append(once("bare-flows", env))
                app_f.append(once("mhgui-flows", env))
        finally:
            holder.stdin.close()
            holder.wait()
            holder.stdout.close()
    finally:
        xvfb.kill()
        xvfb.wait()
        log.close()
        tmp.cleanup()
    bv = [r["visible"] for r in bare]
    av = [r["visible"] for r in app]
    aa = [r["addresses"] for r in app]
    print(f"first paint under Xvfb (-noreset), {pairs} alternated pairs, bytecode cached (PYTHONPYCACHEPREFIX):")
    print(f"  bare PySide6 window, visible:    {_ms(bv)}")
    print(f"  mhgui window, visible:           {_ms(av)}")
    print(f"  mhgui, first frame with addresses: {_ms(aa)}")
    print(f"  ratio visible:   min {min(av) / min(bv):.2f}  median {statistics.median(av) / statistics.median(bv):.2f}"
          "  (goal <= 1.5)")
    print(f"  ratio addresses: min {min(aa) / min(bv):.2f}  median {statistics.median(aa) / statistics.median(bv):.2f}"
          "  (goal <= 2, to the bare window's visible time)")
    # CPU time of the process until each frame: less sensitive to a busy machine than the wall clock
    med = statistics.median
    bc = med(r["visible_cpu"] for r in bare)
    print(f"  CPU time until the frame, median: bare {bc * 1000:.0f} ms, mhgui visible "
          f"{med(r['visible_cpu'] for r in app) * 1000:.0f} ms (ratio {med(r['visible_cpu'] for r in app) / bc:.2f}), "
          f"addresses {med(r['addresses_cpu'] for r in app) * 1000:.0f} ms "
          f"(ratio {med(r['addresses_cpu'] for r in app) / bc:.2f})")
    br = statistics.median(r["rss"] for r in bare)
    ar = statistics.median(r["rss"] for r in app)
    print(f"  RSS idle ({IDLE:g} s after the last line), median: bare {br / 1024:.1f} MiB, mhgui {ar / 1024:.1f} MiB, "
          f"ratio {ar / br:.2f}")
    bf = statistics.median(r["rss"] for r in bare_f)
    af = statistics.median(r["rss"] for r in app_f)
    print(f"  with {FLOWS} flows ({flow_pairs} pairs), shown in a table: bare QTableView {_ms([r['flows'] for r in bare_f])}, "
          f"mhgui's Flows tab {_ms([r['flows'] for r in app_f])}")
    print(f"  RSS with {FLOWS} flows ({IDLE:g} s after the table showed them), median: bare {bf / 1024:.1f} MiB, "
          f"mhgui {af / 1024:.1f} MiB, ratio {af / bf:.2f}  (goal <= 1.6)")


if __name__ == "__main__":
    main()
