"""Flows view at scale: cold load (poll → model → sorted view painted, count shown) against a bare Qt floor.

Issue 14's goal: 50,000 sockets in the flows model, sorted, count shown, within 1 s. For each size N, a
private network namespace holds N sockets (N/2 loopback TCP connections, held by socket-opener processes,
tests/socketopener.py, each under the per-process descriptor limit). The measured part runs inside that
namespace, as the app polls its own namespace (no pyroute2 namespace hop), on one qasync loop:

- cold: a fresh FlowSource.poll (sock_diag dump and decoding, every owner looked up in /proc, in the
  source's worker thread) → FlowModel.apply → FlowFilter (sorted by Application, the window's default) →
  the Flows tab's widgets (mhgui.ui.flows_page.FlowsPage: table and count label) painted. Timed to the
  paint event of the table's viewport (a filter on that viewport only), after checking that the count label
  says N. Min and median of several runs, each with fresh objects (no owner cache), and the process's CPU
  time over the run (all threads: on a busy machine the wall time also holds the wait for a CPU);
- floor, alternated with the cold runs: a bare QAbstractTableModel (a list of 9-string tuples, DisplayRole
  only) and a QTableView, filled with the same rows (texts made beforehand), sorted with list.sort, painted.
  Printed: mhgui / floor;
- steady: a poll with nothing changed (median); few changes: 5 connections closed and 3 opened (median);
- pyroute2: one dump with pyroute2's own DiagSocket decoding, for comparison (sizes up to 10,000).

Needs root (network namespaces). Usage: python benchmarks/flows_poll.py [--short] [SIZES...]
(default 1000 10000 50000; --short: 10000 50000, fewer repetitions).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1] / "tests"))
sys.path.insert(0, str(HERE.parents[1]))
from socketopener import OPENER, per_process  # noqa: E402

GOAL_N, GOAL_S = 50_000, 1.0

_LIVE_NS: set[str] = set()
_CHILDREN: set[subprocess.Popen] = set()
_MAIN_PID = os.getpid()


def _cleanup() -> None:
    for p in list(_CHILDREN):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # the measuring child and the socket openers it started
            except ProcessLookupError:
                pass
            p.wait()
        _CHILDREN.discard(p)
    for ns in list(_LIVE_NS):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        _LIVE_NS.discard(ns)


def _on_sigterm(*_) -> None:
    if os.getpid() != _MAIN_PID:
        os._exit(143)
    _cleanup()
    os._exit(143)


# --------------------------------------------------------------------------- parent: namespaces
def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--child"]:
        child(int(args[1]), short=args[2] == "short")
        return
    if os.geteuid() != 0:
        print("flows poll: skipped (needs root for a network namespace)")
        return
    short = "--short" in args or os.environ.get("MHGUI_BENCH_SHORT") == "1"
    sizes = [int(a) for a in args if a != "--short"] or ([10_000, 50_000] if short else [1_000, 10_000, 50_000])
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigterm)
    print("flows view cold load (sock_diag → FlowModel → sorted FlowFilter → FlowsPage painted, count shown)",
          flush=True)
    try:
        for n in sizes:
            ns = f"mhbench-flows-{os.getpid()}-{n}"  # a fresh namespace: no TIME-WAIT from the last size
            subprocess.run(["ip", "netns", "add", ns], check=True)
            _LIVE_NS.add(ns)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
            p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(HERE), "--child", str(n),
                                  "short" if short else "full"], start_new_session=True)
            _CHILDREN.add(p)
            try:
                if p.wait(timeout=420):
                    print(f"{n}: the measuring process failed (exit status {p.returncode})", flush=True)
            except subprocess.TimeoutExpired:
                print(f"{n}: timed out", flush=True)
            _cleanup()
    finally:
        _cleanup()


# --------------------------------------------------------------------------- child: in the namespace
class Openers:
    """Socket openers holding ``connections`` loopback connections between them (tests/socketopener.py)."""

    def __init__(self, connections: int) -> None:
        self.procs = [subprocess.Popen([sys.executable, "-c", OPENER, str(k)], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True) for k in per_process(connections)]
        for p in self.procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a socket opener did not start")

    def say(self, cmd: str) -> None:
        p = self.procs[0]
        p.stdin.write(cmd + "\n")
        p.stdin.flush()
        if p.stdout.readline().strip() != "ok":
            raise RuntimeError(f"socket opener: {cmd} failed")

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
            p.stdin.close()
            p.stdout.close()


def child(n: int, short: bool) -> None:
    import asyncio

    import qasync
    from PySide6.QtCore import QAbstractTableModel, QEvent, QModelIndex, QObject, Qt
    from PySide6.QtWidgets import QApplication, QTableView

    from mhgui.sources.flows import FlowSource, read_flows
    from mhgui.core.flows import format_endpoint
    from mhgui.ui.flows_model import FlowModel
    from mhgui.ui.flows_page import FlowsPage

    from PySide6.QtCore import qInstallMessageHandler

    def quiet(kind, context, message):  # offscreen: "This plugin does not support propagateSizeHints()"
        if "propagateSizeHints" not in message:
            print(message, file=sys.stderr)
    qInstallMessageHandler(quiet)
    app = QApplication.instance() or QApplication([])
    app.setQuitOnLastWindowClosed(False)  # the pages come and go; the loop runs to the end
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    class Painted(QObject):
        """Catches the paint event of one viewport."""

        def __init__(self, viewport) -> None:
            super().__init__()
            self.hit = False
            viewport.installEventFilter(self)

        def eventFilter(self, obj, ev) -> bool:
            if ev.type() == QEvent.Type.Paint:
                self.hit = True
            return False

        def wait(self, timeout: float = 30.0) -> None:
            deadline = time.perf_counter() + timeout
            while not self.hit and time.perf_counter() < deadline:
                app.processEvents()
            if not self.hit:
                raise RuntimeError("the view was never painted")

    class Bare(QAbstractTableModel):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[tuple] = []

        def rowCount(self, parent=QModelIndex()) -> int:
            return 0 if parent.isValid() else len(self.rows)

        def columnCount(self, parent=QModelIndex()) -> int:
            return 0 if parent.isValid() else 9

        def data(self, index, role=Qt.ItemDataRole.DisplayRole):
            if role == Qt.ItemDataRole.DisplayRole and index.isValid():
                return self.rows[index.row()][index.column()]
            return None

    def floor_once(texts: list[tuple]) -> float:
        model, view = Bare(), QTableView()
        view.setModel(model)
        view.verticalHeader().hide()
        view.resize(1200, 800)
        view.show()
        app.processEvents()
        painted = Painted(view.viewport())
        t0 = time.perf_counter()
        rows = sorted(texts, key=lambda t: t[0])
        model.beginResetModel()
        model.rows = rows
        model.endResetModel()
        painted.wait()
        dt = time.perf_counter() - t0
        view.close()
        view.deleteLater()
        return dt

    async def cold_once() -> tuple[float, float, float, float, int, float]:
        flows = FlowModel()
        page = FlowsPage(flows)
        page.resize(1200, 800)
        page.show()
        app.processEvents()
        painted = Painted(page.flows_view.viewport())
        src = FlowSource()
        try:
            c0 = time.process_time()
            t0 = time.perf_counter()
            table = await src.poll()
            t1 = time.perf_counter()
            flows.apply(table)
            t2 = time.perf_counter()
            painted.hit = False
            painted.wait()
            t3 = time.perf_counter()
            cpu = time.process_time() - c0
        finally:
            await src.stop()
        shown = page.flow_filter.rowCount()
        count = page.flow_count.text()
        if f"{shown:,} connection" not in count or shown < n:
            raise RuntimeError(f"count label {count!r} for {shown} rows")
        page.close()
        page.deleteLater()
        return t3 - t0, t1 - t0, t2 - t1, t3 - t2, shown, cpu

    async def run() -> None:
        openers = Openers(n // 2)
        try:
            table = read_flows()
            texts = [(f.process or "—", str(f.pid) if f.pid is not None else "—", f.protocol.upper(),
                      format_endpoint(f.local_address, f.local_port), format_endpoint(f.remote_address, f.remote_port),
                      f.state, "—", "other", "no") for f in table.flows.values()]
            colds, floors = [], []
            for _ in range(2 if short else 3):
                floors.append(floor_once(texts))
                colds.append(await cold_once())
            med_cold = statistics.median(c[0] for c in colds)
            med_floor = statistics.median(floors)
            best = min(colds)
            print(f"{best[4]:>6} flows  cold: min {best[0] * 1e3:7.1f} ms, median {med_cold * 1e3:7.1f} ms "
                  f"(poll {best[1] * 1e3:.0f} + model {best[2] * 1e3:.0f} + view {best[3] * 1e3:.0f}; "
                  f"CPU {min(c[5] for c in colds) * 1e3:.0f} ms, all threads) | "
                  f"floor (bare QAbstractTableModel/QTableView, same rows): min {min(floors) * 1e3:.1f} ms, "
                  f"median {med_floor * 1e3:.1f} ms | ratio {med_cold / med_floor:.1f}×", flush=True)
            if n == GOAL_N:
                print(f"        goal: {GOAL_N:,} sockets within {GOAL_S:.0f} s: median {med_cold:.2f} s, "
                      f"{'met' if med_cold <= GOAL_S else 'NOT met'}", flush=True)
            await steady_and_changes(openers)
            if not short and n <= 10_000:
                t = time.perf_counter()
                pr = await asyncio.get_running_loop().run_in_executor(None, lambda: read_flows(decoder="pyroute2"))
                print(f"        pyroute2's own decoding: {(time.perf_counter() - t) * 1e3:7.1f} ms "
                      f"({len(pr.flows)} flows)", flush=True)
        finally:
            openers.stop()

    async def steady_and_changes(openers: Openers) -> None:
        flows = FlowModel()
        page = FlowsPage(flows)
        page.resize(1200, 800)
        page.show()
        painted = Painted(page.flows_view.viewport())
        src = FlowSource()
        resets = []
        page.flow_filter.modelReset.connect(lambda: resets.append(1))
        flows.modelReset.connect(lambda: resets.append(1))

        async def once() -> float:
            t0 = time.perf_counter()
            flows.apply(await src.poll())
            page.flows_view.viewport().update()
            painted.hit = False
            painted.wait()
            return (time.perf_counter() - t0) * 1e3

        try:
            await once()
            steady = [await once() for _ in range(3 if short else 5)]
            few = []
            for _ in range(2 if short else 3):
                openers.say("close 5")
                openers.say("open 3")
                few.append(await once())
        finally:
            await src.stop()
            page.close()
        print(f"        steady poll-to-view {statistics.median(steady):7.1f} ms | few changes "
              f"{statistics.median(few):7.1f} ms | resets: {len(resets)}", flush=True)

    try:
        loop.run_until_complete(run())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


if __name__ == "__main__":
    main()
