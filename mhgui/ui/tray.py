"""The tray icon: state at a glance, quick switching, the way back into the window.

:class:`TrayController` owns a :class:`QSystemTrayIcon` (StatusNotifierItem over
D-Bus on Linux desktops, XEmbed elsewhere) and draws a
:class:`~mhgui.core.trayview.TrayView` that it asks for with ``snapshot()``:

- icon per state (``resources/tray/{state}-{light,dark}.svg``; dark when the
  desktop's colour scheme, or else the palette, is dark), tooltip with the
  node's answer and the taxonomy headline (:meth:`TrayController.refresh`);
- the answer's action first in the menu (``on_action(action)``: restart the mobility daemon, connect
  to a home agent…, issue 15.1 and 15.7), when there is one;
- context menu rebuilt when it is about to show (``aboutToShow``; a host calls
  dbusmenu ``AboutToShow``), and when :meth:`refresh` sees that its content
  changed: each HoA (disabled "HoA → interface"), a "Prefer" submenu
  (``on_prefer(ifname)``; with the engine, items per home address that call
  ``on_rebind(hoa, ifname)``, in a submenu per HoA when there are several),
  "Open window", "Quit"; never ``exec()``;
- left click (``Trigger``) calls ``on_toggle()`` (show/raise or hide the window);
- a tray host that appears later: Qt (6.7 and later) decides per icon, when it
  is built, whether a StatusNotifierWatcher exists, so the controller watches
  ``NameOwnerChanged`` of ``org.kde.StatusNotifierWatcher`` on the session bus
  (dbus-fast, asynchronous) and builds a new icon when the name gets an owner;
- :attr:`TrayController.available` (signal ``availableChanged``): whether the
  tray is a way into the app; :meth:`TrayController.keeps_running_on_close`
  is the window-close policy (:func:`close_keeps_running`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from importlib import resources
from typing import Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from .. import APP_ID

from ..core.trayview import STATES, TrayView
from ..i18n import _

log = logging.getLogger(__name__)

__all__ = ["SNI_WATCHER", "TrayController", "close_keeps_running", "tray_icon_path"]

SNI_WATCHER = "org.kde.StatusNotifierWatcher"
_MATCH = (f"type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
          f"member='NameOwnerChanged',arg0='{SNI_WATCHER}'")


def close_keeps_running(tray_available: bool) -> bool:
    """Closing the window keeps the app running (in the tray) only when a tray is there to come back through."""
    return bool(tray_available)


def tray_icon_path(state: str, scheme: str) -> str:
    """File of the tray icon for ``state`` (one of STATES) on a ``scheme`` ("light" or "dark") panel."""
    if state not in STATES:
        raise ValueError(f"unknown tray state {state!r}")
    if scheme not in ("light", "dark"):
        raise ValueError(f"unknown colour scheme {scheme!r}")
    return str(resources.files("mhgui") / "resources" / "tray" / f"{state}-{scheme}.svg")


def tray_icon_name(state: str, scheme: str) -> str:
    """Icon-theme name of the tray icon (``io.github.mhgui.MHGui-STATE-SCHEME``, hicolor/scalable/status)."""
    tray_icon_path(state, scheme)  # validates
    return f"{APP_ID}-{state}-{scheme}"


def color_scheme() -> str:
    """"dark" or "light": the desktop's colour scheme, else the palette's window colour."""
    app = QGuiApplication.instance()
    if app is None:
        return "light"
    scheme = QGuiApplication.styleHints().colorScheme()
    if scheme == Qt.ColorScheme.Dark:
        return "dark"
    if scheme == Qt.ColorScheme.Light:
        return "light"
    return "dark" if QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128 else "light"


def _safe(what: str, fn: Callable, *args) -> None:
    try:
        fn(*args)
    except Exception:  # a callback's bug must not reach Qt's event dispatch
        log.exception("tray: %s failed", what)


class TrayController(QObject):
    """The tray icon and its menu (module docstring).

    ``snapshot()``: the current :class:`TrayView`; ``on_prefer(ifname)``: the
    user chose "Prefer ifname"; ``on_rebind(hoa, ifname)``: the user chose an
    item that moves one home address (the engine's; none: such items call
    ``on_prefer``); ``on_open()``: "Open window"; ``on_quit()``:
    "Quit"; ``on_toggle()``: left click (default: ``on_open``);
    ``bus_address``: the session bus to watch for a tray host (None: the
    environment's session bus); ``watch``: follow a host that appears later.
    Call :meth:`start` once the event loop runs, :meth:`stop` before quitting.
    """

    availableChanged = Signal(bool)
    #: a new QSystemTrayIcon was built (at start, or for a host that appeared)
    iconCreated = Signal()

    def __init__(self, snapshot: Callable[[], TrayView], *, on_prefer: Callable[[str], None],
                 on_open: Callable[[], None], on_quit: Callable[[], None],
                 on_toggle: Callable[[], None] | None = None, bus_address: str | None = None,
                 watch: bool = True, on_rebind: Callable[[str, str], None] | None = None,
                 on_action: Callable[[object], None] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._snapshot = snapshot
        self._on_action = on_action
        self._on_prefer = on_prefer
        self._on_rebind = on_rebind
        self._hoa_menus: list[QMenu] = []  # the Prefer submenus per home address, rebuilt with the menu
        self._on_open = on_open
        self._on_quit = on_quit
        self._on_toggle = on_toggle or on_open
        self._bus_address = bus_address
        self._watch = watch
        self._icon: QSystemTrayIcon | None = None
        self._menu: QMenu | None = None
        self._prefer_menu: QMenu | None = None
        self._available = False
        self._view: TrayView | None = None
        self._built: tuple | None = None  # the menu content last built
        self._icons: dict[tuple[str, str], QIcon] = {}
        self._bus = None
        self._pending_rebuild = False
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._scheme_changed)

    # ---- public
    @property
    def available(self) -> bool:
        """A tray icon is shown by a tray host: the tray is a way into the app."""
        return self._available

    @property
    def icon(self) -> QSystemTrayIcon | None:
        return self._icon

    @property
    def menu(self) -> QMenu | None:
        return self._menu

    def keeps_running_on_close(self) -> bool:
        """What the window's close event asks: True = hide the window and stay in the tray; False = quit."""
        return close_keeps_running(self._available)

    async def start(self) -> None:
        """Build the icon; then follow the tray host's name on the session bus (when ``watch``)."""
        self._create_icon()
        if self._watch:
            await self._start_watch()

    async def stop(self) -> None:
        """Remove the icon and stop watching."""
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.disconnect()
        self._drop_icon()
        self._set_available(False)
        try:
            QGuiApplication.styleHints().colorSchemeChanged.disconnect(self._scheme_changed)
        except (RuntimeError, TypeError):
            pass

    def refresh(self) -> None:
        """Take a new snapshot: icon, tooltip, and the menu when its content changed."""
        view = self._take_snapshot()
        if view is None or self._icon is None:
            return
        self._apply(view)
        if self._menu_content(view) != self._built and not (self._menu and self._menu.isVisible()):
            self._rebuild_menu(view)

    # ---- icon
    def _icon_for(self, state: str) -> QIcon:
        key = (state, color_scheme())
        if key not in self._icons:
            # the installed theme icon when there is one (a Flatpak exports them in the hicolor layout:
            # the tray host then gets an icon name and draws it at its own size), else the package's file
            self._icons[key] = QIcon.fromTheme(tray_icon_name(*key), QIcon(tray_icon_path(*key)))
        return self._icons[key]

    def _scheme_changed(self, *_args) -> None:
        if self._view is not None and self._icon is not None:
            self._icon.setIcon(self._icon_for(self._view.state))

    def _take_snapshot(self) -> TrayView | None:
        try:
            return self._snapshot()
        except Exception:
            log.exception("tray: snapshot failed")
            return None

    def _apply(self, view: TrayView) -> None:
        self._view = view
        self._icon.setIcon(self._icon_for(view.state))
        self._icon.setToolTip(view.tooltip)

    def _drop_icon(self) -> None:
        icon, menu = self._icon, self._menu
        self._icon = self._menu = self._prefer_menu = None
        self._hoa_menus = []  # (children of the menu: they go with it)
        self._built = None
        if icon is not None:
            icon.hide()
            icon.setContextMenu(None)
            icon.deleteLater()
        if menu is not None:
            menu.deleteLater()

    def _create_icon(self) -> None:
        """A new QSystemTrayIcon: Qt decides over which protocol (SNI or XEmbed) when it is built."""
        self._drop_icon()
        icon = QSystemTrayIcon(self)
        menu = QMenu()
        menu.setObjectName("trayMenu")
        menu.aboutToShow.connect(self._about_to_show)
        self._prefer_menu = QMenu(_("&Prefer"), menu)
        self._prefer_menu.setObjectName("trayPreferMenu")
        self._icon, self._menu = icon, menu
        view = self._take_snapshot()
        if view is not None:
            self._apply(view)
            self._rebuild_menu(view)
        else:
            icon.setIcon(self._icon_for("no-daemon"))
        icon.setContextMenu(menu)
        icon.activated.connect(self._activated)
        available = QSystemTrayIcon.isSystemTrayAvailable()
        if available:
            icon.show()
        self._set_available(available)
        self.iconCreated.emit()

    def _set_available(self, value: bool) -> None:
        if value != self._available:
            self._available = value
            self.availableChanged.emit(value)

    def _activated(self, reason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            _safe("toggling the window", self._on_toggle)

    # ---- menu
    @staticmethod
    def _menu_content(view: TrayView) -> tuple:
        return (tuple((h.text,) for h in view.hoas),
                tuple((p.interface, p.text, p.enabled, p.current, p.hoa) for p in view.prefer), view.prefer_note,
                view.action)

    def _about_to_show(self) -> None:
        view = self._take_snapshot()
        if view is None or self._icon is None:
            return
        self._apply(view)
        self._rebuild_menu(view)

    def _rebuild_menu(self, view: TrayView) -> None:
        menu, prefer = self._menu, self._prefer_menu
        menu.clear()
        prefer.clear()
        for sub in self._hoa_menus:
            sub.deleteLater()
        self._hoa_menus = []
        by_hoa = list(dict.fromkeys(p.hoa for p in view.prefer if p.hoa is not None))
        if len(by_hoa) > 1:  # the engine with several home addresses: one submenu each
            for hoa in by_hoa:
                sub = QMenu(hoa, prefer)
                sub.setObjectName("trayPreferHoaMenu")
                self._hoa_menus.append(sub)
                prefer.addMenu(sub)
        if view.action is not None and self._on_action is not None:
            a = menu.addAction(view.action.label.replace("&", "&&"))
            a.setObjectName("trayAnswerAction")
            a.triggered.connect(lambda _checked=False, act=view.action: _safe(act.label, self._on_action, act))
            menu.addSeparator()
        if view.hoas:
            for h in view.hoas:
                a = menu.addAction(h.text.replace("&", "&&"))
                a.setEnabled(False)
        else:
            a = menu.addAction(_("No home address configured"))
            a.setEnabled(False)
        menu.addSeparator()
        for p in view.prefer:
            where = self._hoa_menus[by_hoa.index(p.hoa)] if len(by_hoa) > 1 and p.hoa is not None else prefer
            a = QAction(p.text.replace("&", "&&"), where)
            a.setCheckable(True)
            a.setChecked(p.current)
            a.setEnabled(p.enabled)
            a.setData(p.interface)
            if p.hoa is not None and self._on_rebind is not None:
                a.triggered.connect(functools.partial(self._rebind, p.hoa, p.interface))
            else:
                a.triggered.connect(functools.partial(self._prefer, p.interface))
            where.addAction(a)
        if view.prefer_note:
            a = prefer.addAction(view.prefer_note)
            a.setEnabled(False)
        prefer.setEnabled(bool(view.prefer))
        menu.addMenu(prefer)
        menu.addSeparator()
        menu.addAction(_("&Open window")).triggered.connect(self._open)
        menu.addAction(_("&Quit")).triggered.connect(self._quit)
        self._built = self._menu_content(view)

    def _prefer(self, ifname: str, *_checked) -> None:
        _safe(f"preferring {ifname}", self._on_prefer, ifname)

    def _rebind(self, hoa: str, ifname: str, *_checked) -> None:
        _safe(f"binding {hoa} through {ifname}", self._on_rebind, hoa, ifname)

    def _open(self, *_checked) -> None:
        _safe("opening the window", self._on_open)

    def _quit(self, *_checked) -> None:
        _safe("quitting", self._on_quit)

    # ---- tray host appearing later
    async def _start_watch(self) -> None:
        from dbus_fast import Message, MessageType
        from dbus_fast.aio import MessageBus

        try:
            bus = await MessageBus(bus_address=self._bus_address).connect()
        except Exception as e:  # no session bus (sandbox without one, tests): the icon is all we have
            log.info("tray: no session bus (%s); a tray host that appears later is not followed", e)
            return
        self._bus = bus
        bus.add_message_handler(self._on_message)
        try:
            reply = await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                           interface="org.freedesktop.DBus", member="AddMatch",
                                           signature="s", body=[_MATCH]))
            if reply.message_type is MessageType.ERROR:
                raise RuntimeError(reply.body[0] if reply.body else reply.error_name)
            reply = await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                           interface="org.freedesktop.DBus", member="NameHasOwner",
                                           signature="s", body=[SNI_WATCHER]))
        except Exception as e:
            log.info("tray: cannot watch %s (%s)", SNI_WATCHER, e)
            return
        if reply.message_type is MessageType.METHOD_RETURN and reply.body[0] and not self._available:
            # the host came between our icon and the watch
            self._schedule_new_icon()

    def _on_message(self, msg):
        if msg.member == "NameOwnerChanged" and msg.interface == "org.freedesktop.DBus" \
                and msg.body and msg.body[0] == SNI_WATCHER:
            if msg.body[2]:
                log.info("tray: a tray host appeared (%s); building a new tray icon", msg.body[2])
                self._schedule_new_icon()
            else:
                log.info("tray: the tray host went away")
                self._set_available(False)
        return None

    def _schedule_new_icon(self) -> None:
        if self._pending_rebuild:
            return
        self._pending_rebuild = True

        def later() -> None:
            self._pending_rebuild = False
            if self._bus is not None:
                self._create_icon()

        asyncio.get_running_loop().call_soon(later)
