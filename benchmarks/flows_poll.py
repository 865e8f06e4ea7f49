"""Poll-to-view time of the flows view at 100, 1,000 and 10,000 flows (printed, not asserted).

For each size, a helper process in a private network namespace opens N/2 TCP
connections over loopback (N sockets, plus two listeners). The app's path
runs in one qasync loop: FlowSource.poll (sock_diag dump, decode, owner
look-up, in the source's worker thread) → FlowModel.apply → FlowFilter (sorted)
→ a QTableView painted offscreen. Printed per size:

- cold: the first poll (every owner looked up in /proc, every row inserted);
- steady: a poll with nothing changed (median of 10);
- few changes: 5 connections closed and 3 opened (10 sockets gone, 6 new; median of 5);
- pyroute2: one dump with pyroute2's own DiagSocket decoding, for comparison.

Needs root (network namespaces). Usage: python benchmarks/flows_poll.py [SIZES...]
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from socketopener import OPENER  # noqa: E402


#: namespaces and helper processes to remove, also on SIGTERM
_LIVE_NS: set[str] = set()
_LIVE_PROCS: set[subprocess.Popen] = set()


def _cleanup() -> None:
    for p in list(_LIVE_PROCS):
        if p.poll() is None:
            p.kill()
            p.wait()
        _LIVE_PROCS.discard(p)
    for ns in list(_LIVE_NS):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        _LIVE_NS.discard(ns)


_MAIN_PID = os.getpid()


def _on_sigterm(*_) -> None:
    # pyroute2 forks a child to open a socket in a namespace and ends it with SIGTERM: the child inherits
    # this handler and must not clean up the parent's namespaces
    if os.getpid() != _MAIN_PID:
        os._exit(143)
    # a signal may arrive inside a Qt callback, where an exception would not unwind: clean up here
    _cleanup()
    os._exit(143)


def new_namespace(tag: str) -> str:
    ns = f"mhbench-flows-{os.getpid()}-{tag}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    _LIVE_NS.add(ns)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    return ns


class Opener:
    def __init__(self, ns: str, connections: int) -> None:
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", OPENER, str(connections)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        _LIVE_PROCS.add(self.p)
        self.expect("ready", 300)

    def expect(self, word: str, timeout: float = 30) -> None:
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        line = self.p.stdout.readline().strip() if r else ""
        if line != word:
            raise RuntimeError(f"opener: expected {word!r}, got {line!r}")

    def say(self, cmd: str) -> None:
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        self.expect("ok")

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        _LIVE_PROCS.discard(self.p)
        for s in (self.p.stdin, self.p.stdout):
            s.close()


def main() -> None:
    if os.geteuid() != 0:
        print("flows poll: skipped (needs root for a network namespace)")
        return
    sizes = [int(a) for a in sys.argv[1:]] or [100, 1000, 10000]
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigterm)
    try:
        run(sizes)
    finally:
        _cleanup()


def run(sizes: list[int]) -> None:
    import qasync
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QTableView

    from mhgui.sources.flows import FlowSource, read_flows
    from mhgui.ui.flows_model import FlowFilter, FlowModel

    app = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    async def one_size(n: int) -> None:
        # a fresh namespace per size: the previous size's closed sockets would linger in TIME-WAIT
        ns = new_namespace(str(n))
        opener = Opener(ns, n // 2)
        model, proxy, view = FlowModel(), FlowFilter(), QTableView()
        proxy.setSourceModel(model)
        view.setModel(proxy)
        view.setSortingEnabled(True)
        view.sortByColumn(FlowModel.COL_LOCAL, Qt.SortOrder.AscendingOrder)
        view.resize(1200, 800)
        view.show()
        app.processEvents()
        src = FlowSource(netns=ns)
        resets = []
        model.modelReset.connect(lambda: resets.append(1))

        async def once() -> tuple[float, float, float, int]:
            t0 = time.perf_counter()
            table = await src.poll()
            t1 = time.perf_counter()
            model.apply(table)
            view.viewport().repaint()
            app.processEvents()
            t2 = time.perf_counter()
            return (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t2 - t0) * 1e3, len(table.flows)

        try:
            cold = await once()
            steady = [await once() for _ in range(10)]
            few = []
            for _ in range(5):
                opener.say("close 5")
                opener.say("open 3")
                few.append(await once())
            t = time.perf_counter()
            pr = await asyncio.get_running_loop().run_in_executor(None, lambda: read_flows(ns, decoder="pyroute2"))
            pr_ms = (time.perf_counter() - t) * 1e3
        finally:
            await src.stop()
            opener.stop()
            view.close()
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            _LIVE_NS.discard(ns)

        def med(rows, i):
            return statistics.median(r[i] for r in rows)

        print(f"{cold[3]:>6} flows  cold: poll {cold[0]:7.1f} ms + model/view {cold[1]:7.1f} ms = {cold[2]:7.1f} ms"
              f" | steady: poll {med(steady, 0):6.1f} + view {med(steady, 1):5.1f} = {med(steady, 2):6.1f} ms"
              f" | few changes: poll {med(few, 0):6.1f} + view {med(few, 1):5.1f} = {med(few, 2):6.1f} ms"
              f" | pyroute2 decoding: {pr_ms:7.1f} ms ({len(pr.flows)} flows)"
              f" | resets: {len(resets)}", flush=True)

    async def all_sizes() -> None:
        print("flows poll-to-view (sock_diag → FlowModel → sorted FlowFilter → QTableView), milliseconds")
        for n in sizes:
            await one_size(n)

    try:
        loop.run_until_complete(all_sizes())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


if __name__ == "__main__":
    main()
