"""``mhgui``: the desktop app (PySide6 + qasync)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time

from typing import TYPE_CHECKING

from .. import APP_ID, APP_NAME, __version__

if TYPE_CHECKING:  # asyncio and qasync load after the window's first frame (issue 14)
    import asyncio


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
    p.add_argument("--tray", action="store_true",
                   help="start hidden in the tray, as at login (the window shows when there is no tray)")
    p.add_argument("--color-scheme", choices=("system", "light", "dark"), default=None,
                   help="light or dark colours whatever the desktop's (default: $MHGUI_COLOR_SCHEME, else the "
                        "desktop's; a desktop without a theme gets Qt's Fusion style in that scheme)")
    p.add_argument("--screenshot", metavar="PNG", default=None,
                   help="save a picture of the window after start-up and quit (for docs and checks)")
    p.add_argument("--version", action="version", version=f"{APP_NAME} {__version__}")
    return p


def app_icon():
    from importlib import resources  # (2 ms: after the first frame)

    from PySide6.QtGui import QIcon
    ref = resources.files("mhgui") / "resources" / f"{APP_ID}.svg"
    with resources.as_file(ref) as path:
        return QIcon(str(path))


async def first_frame(widget, timeout: float = 2.0) -> None:
    """Return after ``widget``'s first paint event (or after ``timeout`` s: a platform that paints
    nothing). An event filter on that widget only, removed at once."""
    import asyncio

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


def fast_feature_check() -> bool:
    """Make PySide6's check of each newly imported module (``shibokensupport.feature._mod_uses_pyside``:
    does its source mention "PySide6"?) read the file's bytes instead of ``inspect.getsource``, which
    goes through linecache and tokenize: the same answer for a ``.py`` file (any other module is asked
    the original way), about 17 ms less for the window's 250 modules and no source kept in memory
    (issue 14). Returns False (and changes nothing) where that private function is missing."""
    feature = sys.modules.get("shibokensupport.feature")
    original = getattr(feature, "_mod_uses_pyside", None)
    if original is None or getattr(original, "mhgui_fast", False):
        return False

    def _mod_uses_pyside(module) -> bool:
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.endswith(".py"):
            try:
                with open(path, "rb") as f:
                    return b"PySide6" in f.read()
            except OSError:
                pass
        return original(module)

    _mod_uses_pyside.mhgui_fast = True
    feature._mod_uses_pyside = _mod_uses_pyside
    return True


def start_ip_snapshot():
    """Start iproute2's ``ip -j`` reads of the links, addresses and default routes now, before Qt's import,
    so they run meanwhile (issue 14: the window's first frame shows the node's addresses without waiting
    for pyroute2 and netlink). Returns ``(run, clock at the start)`` for :func:`apply_ip_snapshot`, or
    None when ``ip`` cannot be started (netlink alone then)."""
    from ..sources.iproute_run import IpJsonError, IpRun
    try:
        return IpRun(), time.monotonic()
    except IpJsonError as e:
        logging.getLogger(__name__).info("no early snapshot: %s", e)
        return None


def apply_ip_snapshot(store, early, timeout: float = 0.5) -> bool:
    """Give ``store`` the snapshot :func:`start_ip_snapshot` started (a
    :class:`~mhgui.core.state.NetlinkSnapshot`, as netlink's dump is); True when it was applied. The
    netlink source's first dump replaces it later (:meth:`~mhgui.core.state.StateStore.apply`
    reconciles a snapshot: only what differs is announced, no event is lost). ``ip`` has long ended
    when this is called; one that has not within ``timeout`` s is ended and nothing is applied."""
    if early is None:
        return False
    from ..sources.iproute_json import IpJsonError, snapshot_of
    run, started = early
    try:
        snap = snapshot_of(run, started, timeout=timeout)
    except IpJsonError as e:
        logging.getLogger(__name__).info("no early snapshot: %s", e)
        return False
    store.apply(snap)
    return True


def forget_sources() -> None:
    """Drop the module sources linecache holds: PySide6 reads the source of each module imported after it
    (``shibokensupport.feature``, looking for ``__feature__`` use), and linecache keeps every line of
    it, about 9 MiB by the end of the start-up. Done after each wave of imports, the memory is reused
    by the next; a traceback reads its lines again."""
    import linecache
    linecache.clearcache()


def import_asyncio_without_tls():
    """``import asyncio``, without :mod:`ssl` when nothing imported it yet, and return the module.

    asyncio's modules import ssl only for TLS transports (``try: import ssl / except ImportError: ssl =
    None`` in base_events, selector_events and sslproto); mhgui uses none (netlink, D-Bus over Unix sockets,
    mip6d's terminal on localhost), and ssl costs the process about 7 MiB of resident memory (libssl's and
    libcrypto's pages, the module's enums) and 5 ms (issue 14). Cost of the saving: asyncio's ``ssl=``
    arguments raise in this process. A module that imports ssl later still gets it. Does nothing more than
    ``import asyncio`` when asyncio or ssl is already imported (tests, an embedding program)."""
    if "asyncio" in sys.modules or "ssl" in sys.modules:
        import asyncio
        return asyncio
    sys.modules["ssl"] = None  # `import ssl` raises ImportError while asyncio is imported
    try:
        import asyncio
    finally:
        if "ssl" in sys.modules and sys.modules["ssl"] is None:
            del sys.modules["ssl"]
    from .._deferred import defer_module
    defer_module("ssl")  # pyroute2's rtnetlink modules import it for a probe that mhgui never sends
    return asyncio


def _raise(win) -> None:
    win.showNormal()
    win.raise_()
    win.activateWindow()


class Shown:
    """What :func:`show_window` made: ``store`` (StateStore), ``controller`` (LiveController), ``win``
    (MainWindow), ``hidden`` (not shown: started in the tray), ``closed_early`` (the window was closed
    before :func:`amain` ran); ``rt``: the runtime, once :func:`amain` made it (None before)."""

    def __init__(self, hidden: bool) -> None:
        self.hidden = hidden
        self.store = self.controller = self.win = self.rt = None
        self.closed_early = False

    def on_closed(self) -> None:
        self.closed_early = True

    def allow_ula(self) -> bool:
        """The runtime's setting (False until the runtime exists)."""
        return self.rt is not None and self.rt.allow_ula


def show_window(args, early=None, on_window=None, timeout: float = 2.0) -> Shown:
    """The window, built over a store given ``early``'s snapshot (:func:`start_ip_snapshot`: the first frame
    shows the node's addresses), shown and painted once, with Qt alone: before asyncio, qasync and the
    runtime's modules are imported (issue 14). Waits for the first paint in a local Qt event loop (not in a
    coroutine: no asyncio loop exists yet), at most ``timeout`` s (a platform that paints nothing)."""
    from PySide6.QtCore import QEvent, QEventLoop, QObject, QTimer

    from ..core.state import StateStore
    from .window import LiveController, MainWindow
    forget_sources()

    hidden = args.tray and not args.no_tray and not args.screenshot  # started at login: in the tray only
    shown = Shown(hidden)
    shown.store = store = StateStore()
    shown.controller = controller = LiveController(store, time.monotonic, allow_ula=shown.allow_ula)
    shown.win = win = MainWindow(controller)
    win.answer_icons = hidden  # shown: the answer's icon after the first frame (QStyle's enums, 10 ms before it)
    if on_window is not None:
        on_window(win)
    win.helper_factory = lambda: _helper_client(args.system_bus)
    if apply_ip_snapshot(store, early):  # the node's addresses in the first frame; netlink's dump follows
        controller.refresh()  # and the analysis of them (roles, headline): not one frame later
    win.closed.connect(shown.on_closed)  # until amain connects its own
    if not hidden:
        waiting = QEventLoop()

        class Painted(QObject):
            def eventFilter(self, obj, ev):  # noqa: N802 - Qt's name
                if ev.type() == QEvent.Type.Paint:
                    waiting.quit()  # exec() returns once this paint is done
                return False

        watch = Painted()
        win.installEventFilter(watch)
        limit = QTimer()
        limit.setSingleShot(True)
        limit.timeout.connect(waiting.quit)
        limit.start(int(timeout * 1000))
        win.show()
        waiting.exec()  # not a coroutine's: the asyncio loop does not exist yet
        limit.stop()
        win.removeEventFilter(watch)
        win.answer_icons = True
        win.show_answer_icon()
    return shown


async def amain(args, app, closed, single, shown: Shown) -> int:
    """The app's life: the window first, then what it shows and what can wait (issue 14).

    Order: the window (``shown``, from :func:`show_window`, before the event loop) is built over the store,
    given the early snapshot (the first frame shows the node's addresses), and shown; after its first
    frame: netlink starts (its dump replaces that snapshot), the daemon's driver is chosen and
    given to the runtime and the window's controller, the other sources start, then the icon, the
    single-instance server, the socket table, the shell (failover, preferences, the tray and
    notifications). ``closed``: an ``asyncio.Event`` that every way out sets.
    """
    import asyncio

    store, controller, win, hidden = shown.store, shown.controller, shown.win, shown.hidden
    win.closed.disconnect(shown.on_closed)
    win.closed.connect(closed.set)
    if shown.closed_early:
        closed.set()
    from ..runtime import Runtime, choose_driver  # the sources' modules: after the first frame
    rt = shown.rt = Runtime(mip6d_conf=args.mip6d_conf, settings_file=args.settings, system_bus=args.system_bus,
                 use_networkmanager=not args.no_networkmanager, vt_port=None, flows=True, linkstats=True,
                 batch_events=True,  # batch_events: a netlink burst is one change set
                 store=store, clock=time.monotonic)
    await rt.start_netlink()  # its snapshot (the first frame with addresses) while the driver is chosen
    # mhgui's engine when its name is on the system bus, else UMIP's terminal
    daemon = await choose_driver(args.system_bus, vt_port=args.vt_port)
    if daemon is not None:
        rt.attach_daemon(daemon)
    controller.attach(daemon=rt.daemon, flow_source=rt.flows)
    win.access_problems = rt.access_problems  # the banner names what the app cannot see (issue 6)
    win.settings_file = args.settings  # the home-address hint names the file this app reads
    # ---- the window is on screen: the sources (netlink's snapshot is the first frame with the node's
    # addresses; configuration problems are shown in the window's banner), then what can wait
    starting = asyncio.get_running_loop().create_task(rt.start(), name="runtime-start")
    await _addresses_shown(rt, win, starting, painted=not hidden)
    app.setWindowIcon(app_icon())
    win.setWindowIcon(app.windowIcon())
    if single is not None:
        single.raiseRequested.connect(lambda: _raise(win))
        if not single.listen():  # another launch became the running instance meanwhile: it was raised
            closed.set()
    shell = None
    try:
        if closed.is_set():
            starting.cancel()
            await asyncio.wait([starting])
        else:
            await starting
            controller.refresh()
            from .shell import AppShell
            shell = AppShell(rt, win, closed.set, system_bus=args.system_bus, tray=not args.no_tray,
                             mip6d_conf=args.mip6d_conf)
            shell.message.connect(lambda text, ok: win.statusBar().showMessage(text, 15000))
            await shell.start()
            forget_sources()  # what the sources and the shell imported
            if hidden and (shell.tray is None or not shell.tray.keeps_running_on_close()):
                _raise(win)  # no tray to start in: the window is the way in
            from .health_view import health_feed  # the Health tab's readings (polled while the window is shown)
            health_feed(win).attach(rt.linkstats, shell.svc)
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


async def _addresses_shown(rt, win, starting: asyncio.Task, *, painted: bool, timeout: float = 1.0) -> None:
    """Return once netlink's first snapshot is in and (``painted``) the address table's next frame
    shows it; or when ``starting`` (the runtime's start) ended first, or after ``timeout`` s."""
    import asyncio

    snapshot = asyncio.ensure_future(rt.netlink.first_snapshot.wait())
    try:
        done, _ = await asyncio.wait({snapshot, starting}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        snapshot.cancel()
    if painted and snapshot in done:
        await first_frame(win.addresses_view.viewport(), timeout=0.5)


def _helper_client(system_bus: str | None):
    from ..helper.client import HelperClient
    return HelperClient(system_bus)


def main(argv: list[str] | None = None, *, on_window=None) -> int:
    """Run the app; ``on_window(win)`` is called with the MainWindow before it is shown (benchmarks, tests)."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    early = start_ip_snapshot()  # `ip -j` runs while Qt and the window's modules are imported
    from PySide6.QtWidgets import QApplication
    fast_feature_check()  # PySide6's look at each module imported from now on: a plain read of its file

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    from .qt_i18n import install_qt_translations
    install_qt_translations(app)  # Qt's own buttons and dialogs in mhgui's language
    from .theme import apply_color_scheme, requested_scheme
    try:
        apply_color_scheme(app, requested_scheme(args.color_scheme))
    except ValueError as e:  # a bad $MHGUI_COLOR_SCHEME: said, the desktop's colours kept
        logging.getLogger(__name__).warning("%s", e)
    from .single import SingleInstance
    single = SingleInstance()
    # before any window: a running instance raises its own (a plain socket: no QtNetwork yet)
    if not args.screenshot and single.ask_running():
        print(f"{APP_NAME} is already running: its window was raised", file=sys.stderr)
        if early is not None:
            early[0].close()
        return 0
    # the coroutine owns the app's lifetime: every way out sets `closed`, and
    # amain returns after cleaning up (Qt's own quit would stop the loop under it)
    app.setQuitOnLastWindowClosed(False)
    # the window, painted before asyncio and qasync are imported (issue 14); SIGINT or SIGTERM from now
    # until the loop's own handlers are set is noted and closes the app once the loop runs
    quit_asked: list[int] = []
    before = {sig: signal.signal(sig, lambda signum, _frame: quit_asked.append(signum))
              for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        shown = show_window(args, early, on_window)
    except BaseException:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        raise
    asyncio = import_asyncio_without_tls()  # before qasync, which imports asyncio

    import qasync
    closed = asyncio.Event()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    loop.add_signal_handler(signal.SIGINT, closed.set)
    loop.add_signal_handler(signal.SIGTERM, closed.set)
    if quit_asked:
        closed.set()
    with loop:
        try:
            return loop.run_until_complete(amain(args, app, closed, None if args.screenshot else single,
                                                 shown))
        finally:
            single.close()


if __name__ == "__main__":
    sys.exit(main())
