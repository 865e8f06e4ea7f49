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


async def amain(args, app, closed: asyncio.Event, single=None) -> int:
    from ..runtime import Runtime, choose_driver
    from .shell import AppShell
    from .window import LiveController, MainWindow

    # mhgui's engine when its name is on the system bus, else UMIP's terminal
    daemon = await choose_driver(args.system_bus, vt_port=args.vt_port)
    rt = Runtime(mip6d_conf=args.mip6d_conf, settings_file=args.settings, system_bus=args.system_bus,
                 use_networkmanager=not args.no_networkmanager, vt_port=args.vt_port, flows=True, daemon=daemon)
    controller = LiveController(rt.store, rt.clock, allow_ula=lambda: rt.allow_ula, daemon=rt.daemon,
                                flow_source=rt.flows)
    win = MainWindow(controller, app.windowIcon())
    win.closed.connect(closed.set)
    from ..helper.client import HelperClient
    win.helper_factory = lambda: HelperClient(args.system_bus)
    win.access_problems = rt.access_problems  # the banner names what the app cannot see (issue 6)
    shell = AppShell(rt, win, closed.set, system_bus=args.system_bus, tray=not args.no_tray,
                     mip6d_conf=args.mip6d_conf)
    shell.message.connect(lambda text, ok: win.statusBar().showMessage(text, 15000))
    if single is not None:
        single.raiseRequested.connect(shell.show_window)
    win.show()
    await rt.start()  # configuration problems are shown in the window's banner
    controller.refresh()
    await shell.start()
    asyncio.get_running_loop().create_task(win.reload_rules())
    if args.screenshot:
        await asyncio.sleep(0.3)
        win.grab().save(args.screenshot)
        closed.set()
    await closed.wait()
    await shell.stop()
    controller.close()
    await rt.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(app_icon())
    from .single import SingleInstance
    single = SingleInstance()
    if not args.screenshot and not single.acquire():
        print(f"{APP_NAME} is already running: its window was raised", file=sys.stderr)
        return 0
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
            return loop.run_until_complete(amain(args, app, closed, single))
        finally:
            single.close()


if __name__ == "__main__":
    sys.exit(main())
