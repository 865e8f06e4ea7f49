"""``mhgui``: the desktop app (PySide6 + qasync)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from importlib import resources

from .. import APP_ID, APP_NAME, __version__


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mhgui", description="Connection manager for multihomed Mobile IPv6 nodes.")
    p.add_argument("--mip6d-conf", metavar="PATH", default=None,
                   help="UMIP configuration file (default /etc/mip6d.conf; a path given here must exist)")
    p.add_argument("--settings", metavar="PATH", default=None, help="the app's settings file")
    p.add_argument("--no-networkmanager", action="store_true", help="use netlink only")
    p.add_argument("--system-bus", metavar="ADDRESS", default=None, help="D-Bus address of the system bus")
    p.add_argument("--vt-port", type=int, default=7777, metavar="N",
                   help="port of UMIP mip6d's terminal on localhost (its --vt-service; default 7777)")
    p.add_argument("--no-tray", action="store_true", help="no tray icon: the window is the way in, closing it quits")
    p.add_argument("--screenshot", metavar="PNG", default=None,
                   help="save a picture of the window after start-up and quit (for docs and checks)")
    p.add_argument("--version", action="version", version=f"{APP_NAME} {__version__}")
    return p


def app_icon():
    from PySide6.QtGui import QIcon
    ref = resources.files("mhgui") / "resources" / f"{APP_ID}.svg"
    with resources.as_file(ref) as path:
        return QIcon(str(path))


async def first_frame(widget, timeout: float = 2.0) -> None:
    """Return after ``widget``'s first paint event (or after ``timeout`` s: a platform that paints
    nothing). An event filter on that widget only, removed at once."""
    from PySide6.QtCore import QEvent, QObject

    done = asyncio.get_running_loop().create_future()

    class Painted(QObject):
        def eventFilter(self, obj, ev):  # noqa: N802 - Qt's name
            if ev.type() == QEvent.Type.Paint and not done.done():
                done.set_result(None)
            return False

    watch = Painted()
    widget.installEventFilter(watch)
    try:
        await asyncio.wait_for(asyncio.shield(done), timeout)
    except TimeoutError:
        pass
    finally:
        widget.removeEventFilter(watch)


def _raise(win) -> None:
    win.showNormal()
    win.raise_()
    win.activateWindow()


async def amain(args, app, closed: asyncio.Event, single=None, on_window=None) -> int:
    """The app's life: the window first, then what it shows and what can wait (issue 14).

    Order: the daemon's driver is chosen (it is part of the window's controller), the window is
    built and shown; after its first frame: the icon, the single-instance server, the sources
    (netlink's snapshot is the first frame with the node's addresses), the socket table, then the
    shell (failover, preferences, the tray and notifications).
    """
    from ..runtime import Runtime, choose_driver
    from .window import LiveController, MainWindow

    # mhgui's engine when its name is on the system bus, else UMIP's terminal
    daemon = await choose_driver(args.system_bus, vt_port=args.vt_port)
    rt = Runtime(mip6d_conf=args.mip6d_conf, settings_file=args.settings, system_bus=args.system_bus,
                 use_networkmanager=not args.no_networkmanager, vt_port=args.vt_port, flows=True, daemon=daemon)
    controller = LiveController(rt.store, rt.clock, allow_ula=lambda: rt.allow_ula, daemon=rt.daemon,
                                flow_source=rt.flows)
    win = MainWindow(controller)
    if on_window is not None:
        on_window(win)
    win.closed.connect(closed.set)
    win.helper_factory = lambda: _helper_client(args.system_bus)
    win.access_problems = rt.access_problems  # the banner names what the app cannot see (issue 6)
    win.show()
    await first_frame(win)
    # ---- the window is on screen: what can wait comes now
    app.setWindowIcon(app_icon())
    win.setWindowIcon(app.windowIcon())
    if single is not None:
        single.raiseRequested.connect(lambda: _raise(win))
        if not single.listen():  # another launch became the running instance meanwhile: it was raised
            closed.set()
    shell = None
    try:
        if not closed.is_set():
            await rt.start()  # configuration problems are shown in the window's banner
            controller.refresh()
            from .shell import AppShell
            shell = AppShell(rt, win, closed.set, system_bus=args.system_bus, tray=not args.no_tray,
                             mip6d_conf=args.mip6d_conf)
            shell.message.connect(lambda text, ok: win.statusBar().showMessage(text, 15000))
            await shell.start()
            asyncio.get_running_loop().create_task(win.reload_rules())
            if args.screenshot:
                await asyncio.sleep(0.3)
                win.grab().save(args.screenshot)
                closed.set()
        await closed.wait()
    finally:
        if shell is not None:
            await shell.stop()
        controller.close()
        await rt.stop()
    return 0


def _helper_client(system_bus: str | None):
    from ..helper.client import HelperClient
    return HelperClient(system_bus)


def main(argv: list[str] | None = None, *, on_window=None) -> int:
    """Run the app; ``on_window(win)`` is called with the MainWindow before it is shown (benchmarks, tests)."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    from .single import SingleInstance
    single = SingleInstance()
    # before any window: a running instance raises its own (a plain socket: no QtNetwork yet)
    if not args.screenshot and single.ask_running():
        print(f"{APP_NAME} is already running: its window was raised", file=sys.stderr)
        return 0
    import qasync
    # the coroutine owns the app's lifetime: every way out sets `closed`, and
    # amain returns after cleaning up (Qt's own quit would stop the loop under it)
    app.setQuitOnLastWindowClosed(False)
    closed = asyncio.Event()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    loop.add_signal_handler(signal.SIGINT, closed.set)
    loop.add_signal_handler(signal.SIGTERM, closed.set)
    with loop:
        try:
            return loop.run_until_complete(amain(args, app, closed, None if args.screenshot else single, on_window))
        finally:
            single.close()


if __name__ == "__main__":
    sys.exit(main())
