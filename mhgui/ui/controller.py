"""The window's controller (:class:`LiveController`: store -> models -> analysis) and the address filter.

Re-exported by :mod:`mhgui.ui.window` (``from mhgui.ui.window import LiveController``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .flows_model import FlowModel

from PySide6.QtCore import QObject, QTimer, Signal

from ..core.analysis import Analyser, Analysis
from ..core.bindings import resolve_interfaces, uplinks_in_use
from ..core.capabilities import NO_DAEMON, DaemonCapabilities
from ..core.renames import NameTracker
from ..core.report import interface_notes, taxonomy
from ..core.state import Change, StateStore
from ..i18n import _
from .models import AddressModel, BindingModel, HomeAddressModel, InterfaceModel
from .sortfilter import KeyedSortFilter


class LiveController(QObject):
    """Feeds store changes to the models at once and refreshes the analysis once per event-loop turn.

    ``refreshed`` is emitted with (analysis, taxonomy dict) after each refresh. :meth:`in_use` is the
    one answer to "which uplink carries each home address" (:func:`~mhgui.core.bindings.uplinks_in_use`):
    the binding table shows the same (its interface column is resolved the same way, by ifindex).
    ``names`` follows renames (:class:`~mhgui.core.renames.NameTracker`); :meth:`name_problems` says
    which configured names now designate another NIC (``config_names``: more ``{name: where}``, e.g.
    mip6d.conf's interfaces, given by the app shell).
    """

    refreshed = Signal(object, object)

    daemon_changed = Signal(object)  # DaemonStatus
    bindings_changed = Signal()  # the daemon's bindings changed (not for the lifetime countdown)

    def __init__(self, store: StateStore, clock: Callable[[], float], *, allow_ula: Callable[[], bool] = lambda: False,
                 daemon=None, flow_source=None, parent=None) -> None:
        super().__init__(parent)
        self.store = store
        self.clock = clock
        self._allow_ula = allow_ula
        self.daemon = daemon  # a DaemonDriver, or None
        self.interfaces = InterfaceModel(store, self)
        self.addresses = AddressModel(store, clock, self)
        self.homes = HomeAddressModel(store, self)
        self.bindings = BindingModel(clock, self._interface_of_coa, self)
        self.analysis: Analysis | None = None
        self._flows: FlowModel | None = None  # made on first use (the flows property)
        self.flow_source = flow_source
        if flow_source is not None:
            flow_source.callback = self.flows.apply
        self._unsubscribe_daemon = daemon.subscribe(self._on_daemon) if daemon is not None else (lambda: None)
        self._analyser = Analyser()  # incremental: a refresh redoes only what changed (issue 14)
        self._notes_for: tuple = (None, None)  # (analysis, capabilities) the interface notes were made for
        self.tax: dict | None = None
        self.names = NameTracker(store.state.interfaces)
        #: names a daemon's configuration uses beyond what the controller knows itself: ``{name: where}``
        self.config_names: Callable[[], dict] = dict
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._cost = 0.0  # seconds the last refresh took
        self._timer.timeout.connect(self.refresh)
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._on_tick)
        self._tick.start()
        self._unsubscribe = store.subscribe(self._on_changes)
        self.refresh()

    def _caps(self) -> DaemonCapabilities:
        return self.daemon.capabilities if self.daemon is not None else NO_DAEMON

    def in_use(self) -> dict:
        """``{hoa: UplinkInUse}``: where the daemon has each home address now (none without a daemon)."""
        if self.daemon is None:
            return {}
        return uplinks_in_use(self.daemon.bindings(), self.store.state)

    def all_config_names(self) -> dict[str, str]:
        """``{interface name: where it is named}``: the HoAs' home links, the engine's per-HoA lists, and
        :attr:`config_names` (mip6d.conf's interfaces, from the shell)."""
        out: dict[str, str] = {}
        for h in self.store.state.home_addresses:
            if h.home_link:
                where = "mip6d.conf" if h.origin.startswith("mip6d.conf") else _("the settings")
                out[h.home_link] = _("{where} (home link of {hoa})").format(where=where, hoa=h.address)
        d = self.daemon
        if d is not None and getattr(d, "name", None) == "engine":
            from ..core.engineprefs import hoa_uplinks  # tomllib and the failover's modules: not before the first frame
            for u in hoa_uplinks(d.raw_bindings()):
                for n in sorted(u.listed):
                    out.setdefault(n, _("the engine's mn.toml (uplinks of {hoa})").format(hoa=u.hoa))
        try:
            extra = dict(self.config_names())
        except Exception:  # a broken provider must not take the window down
            extra = {}
        for n, where in extra.items():
            out.setdefault(n, where)
        return out

    def name_problems(self) -> list[str]:
        """Configured interface names that no longer designate the NIC they did (renamed, or taken)."""
        return self.names.config_problems(self.all_config_names())

    def _resolved(self, bindings) -> list:
        return resolve_interfaces(bindings, self.store.state)

    def _interface_of_coa(self, coa: str) -> str | None:
        for a in self.store.state.addresses.values():
            if a.address == coa:
                i = self.store.state.interfaces.get(a.ifindex)
                return i.name if i else None
        return None

    def attach(self, *, daemon=None, flow_source=None) -> None:
        """Give the controller the daemon's driver and the socket table's source once they exist (the app
        makes them after the window's first frame, issue 14): as if they had been given to ``__init__``.
        ``daemon_changed`` tells the window the daemon's status; raises ``RuntimeError`` when the
        controller has one already."""
        if daemon is not None:
            if self.daemon is not None:
                raise RuntimeError("the controller has a daemon already")
            self.daemon = daemon
            self._unsubscribe_daemon = daemon.subscribe(self._on_daemon)
            self.daemon_changed.emit(daemon.status)
        if flow_source is not None:
            if self.flow_source is not None:
                self.flow_source.callback = None
            self.flow_source = flow_source
            flow_source.callback = self.flows.apply
        self.refresh()

    def _on_daemon(self, ev) -> None:
        from ..daemons.base import BindingsChanged, StatusChanged  # loaded with the daemon's driver
        if isinstance(ev, BindingsChanged):
            self.bindings.set_bindings(self._resolved(ev.bindings))
            self.bindings_changed.emit()
        elif isinstance(ev, StatusChanged):
            self.daemon_changed.emit(ev.status)
        if not self._timer.isActive():
            self._timer.start()

    def close(self) -> None:
        if self.flow_source is not None:
            self.flow_source.callback = None
        self._unsubscribe_daemon()
        self._unsubscribe()
        self._tick.stop()
        self._timer.stop()

    def _on_changes(self, changes: list[Change]) -> None:
        self.names.observe(changes)
        self.interfaces.apply(changes)
        self.addresses.apply(changes)
        if any(c.key is not None or c.kind.startswith("link-") for c in changes):
            # a bound CoA came or went, or an interface was renamed: the interface column is resolved again
            # (by ifindex); other address changes (a burst of them) cost nothing here
            bound = self.daemon.bindings() if self.daemon is not None else ()
            coas = {b.coa for b in bound}
            if bound and any(c.kind.startswith("link-") or (c.key is not None and c.key.address in coas)
                             for c in changes):
                self.bindings.set_bindings(self._resolved(bound))
            self.bindings.refresh_interfaces()
        if not self._timer.isActive():
            # the analysis runs over every address: during a burst, wait a few times
            # its own cost so that most time goes to applying events (at most 100 ms)
            self._timer.start(min(100, int(self._cost * 4000)))

    def _on_tick(self) -> None:
        self.addresses.tick()
        self.bindings.tick()
        # lifetimes may have run out: roles can change without an event
        self.refresh()

    @property
    def flows(self) -> FlowModel:
        """The flows model (:class:`~mhgui.ui.flows_model.FlowModel`), made on first use (the flow source's
        attach, the Flows tab): its modules load after the window's first frame (issue 14)."""
        if self._flows is None:
            from .flows_model import FlowModel
            self._flows = FlowModel(self)
            if self.analysis is not None:
                self._flow_context(self.analysis)
        return self._flows

    def _flow_context(self, an: Analysis) -> None:
        self._flows.set_context(self.store.state, an, self.daemon.bindings() if self.daemon is not None else ())
        self._flows.set_flow_bindings(self.daemon.flow_bindings() if self.daemon is not None else ())

    def refresh(self) -> None:
        t0 = time.perf_counter()
        caps = self._caps()  # an engine that takes IPv4 CoAs (RFC 5555) makes IPv4 addresses count
        an = self._analyser.analyse(self.store.state, self.clock(), allow_ula=self._allow_ula(),
                                    ipv4_coas=caps.connected and caps.ipv4_coas)
        self.analysis = an
        self.interfaces.set_analysis(an)
        # the same analysis object (the incremental one: nothing changed) leaves the notes as they are
        if an is not self._notes_for[0] or caps != self._notes_for[1]:
            self._notes_for = (an, caps)
            self.interfaces.set_notes(interface_notes(self.store.state, an, caps))
        self.addresses.set_analysis(an)
        self.homes.set_analysis(an)
        if self._flows is not None:
            self._flow_context(an)
        tax = taxonomy(an, self._caps())
        self.tax = tax
        self.refreshed.emit(an, tax)
        self._cost = time.perf_counter() - t0



class AddressFilter(KeyedSortFilter):
    """Shows the addresses of the selected interface (all when none is selected), sorted in Python
    (:class:`~mhgui.ui.sortfilter.KeyedSortFilter`: a burst of new rows costs no Python call per comparison)."""

    def __init__(self, parent=None) -> None:
        self.ifindex: int | None = None
        super().__init__(parent)

    def set_ifindex(self, ifindex: int | None) -> None:
        if ifindex != self.ifindex:
            self.ifindex = ifindex
            self.refilter()

    def accepts(self, key) -> bool:
        return self.ifindex is None or key.ifindex == self.ifindex
