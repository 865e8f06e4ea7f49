"""``mhctl status`` without asyncio, D-Bus or pyroute2 when nothing on the node needs them (issue 14).

The full path (:func:`mhgui.cli._status`) starts the runtime: an asyncio loop, the rtnetlink
source (pyroute2), the access probe, NetworkManager's source and the daemon's driver (D-Bus,
the UMIP terminal). Importing those alone costs several times a bare interpreter's start, and
pyroute2 decodes thousands of addresses slowly. Here the same facts are gathered synchronously
and fed to the same core (:class:`~mhgui.core.state.StateStore`, the incremental analysis,
:func:`mhgui.core.report.status`), so both give the same answer for the same machine:

- links, addresses and IPv6 default routers: iproute2's JSON (:mod:`mhgui.sources.iproute_json`);
- the configuration files: :func:`mhgui.sources.config.load_config`, as the runtime reads them;
- the system bus: with no socket at its address, the sentences the access probe and NetworkManager's
  source give then; else one blocking connection (:mod:`mhgui.status_bus`, jeepney) asks what the access
  probe, NetworkManager's source and the engine's driver ask, three round trips in all, the first one sent
  before the core is imported;
- the daemon: mhgui's engine when its name is owned (:mod:`mhgui.status_engine`: its status, bindings,
  uplinks and home addresses as the driver and the runtime make them); else UMIP's, and this path answers
  only when nothing accepts a connection on mip6d's terminal (``::1``, then ``127.0.0.1``, as the driver
  tries them), and says "absent" or "no-terminal" as the driver does.

Anything else (a bus that cannot be connected to or that answers what this path does not reproduce,
mip6d's terminal answering, a Flatpak sandbox whose daemon configuration comes through the helper, ``ip``
missing or failing) raises :class:`Fallback` with the reason, and the
caller runs the full path, so the answer is never a guess.
"""

from __future__ import annotations

import _socket  # the C module: the `socket` wrapper's enums cost start-up time (issue 14)
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

# light: `prepare` runs (and starts `ip`) before the core is loaded; the rest is imported in `collect`
from .daemons.umip_facts import DEFAULT_HOSTS
from .sources.iproute_run import IpJsonError, IpRun
from .sources.sandbox import flatpak_info_path, system_bus_address

if TYPE_CHECKING:
    from .core.analysis import Analysis
    from .status_bus import BusRead
    from .core.model import NodeState

__all__ = ["Fallback", "Prepared", "StatusPicture", "DaemonState", "prepare", "collect", "missing_bus_socket",
           "vt_answers"]

#: seconds to wait for mip6d's terminal to accept a connection (the driver's ``connect_timeout``)
VT_CONNECT_TIMEOUT = 2.0


class Fallback(Exception):
    """This path cannot give the whole answer; ``str()`` says why (the full path can)."""


class DaemonState:
    """The daemon's status as :class:`~mhgui.daemons.base.DaemonStatus` has it (``name``, ``node``,
    ``reachable``, ``state``, ``error``), without importing the asyncio drivers."""

    __slots__ = ("name", "node", "reachable", "state", "error")

    def __init__(self, name: str, node: str | None = None, reachable: bool = False, state: str = "stopped",
                 error: str | None = None) -> None:
        self.name, self.node, self.reachable, self.state, self.error = name, node, reachable, state, error

    def __repr__(self) -> str:
        return f"DaemonState({self.name!r}, {self.node!r}, {self.reachable!r}, {self.state!r}, {self.error!r})"


class StatusPicture:
    """Everything ``mhctl status`` prints, from either path.

    ``report``: :func:`mhgui.core.report.status`'s dict plus ``daemon.state``/``daemon.error`` and
    ``bindings`` (``Binding.to_json``, [] when no daemon answers): what ``--json`` prints;
    ``state``/``sources``/``analysis``: the store's node state, its ``{source: (status, detail)}``
    and the analysis the report was made from; ``bindings``: the daemon's
    :class:`~mhgui.core.bindings.Binding` objects; ``uplinks``: mhgui's engine's ``GetUplinks`` list
    (None: another daemon, or none); ``daemon``: its status (None: no driver).
    """

    __slots__ = ("report", "state", "sources", "analysis", "bindings", "uplinks", "daemon")

    def __init__(self, report: dict[str, Any], state: NodeState, sources: Mapping[str, tuple[str, str]],
                 analysis: Analysis, bindings: tuple = (), uplinks: Sequence[Mapping[str, Any]] | None = None,
                 daemon: Any = None) -> None:
        self.report, self.state, self.sources, self.analysis = report, state, sources, analysis
        self.bindings, self.uplinks, self.daemon = bindings, uplinks, daemon


class Prepared:
    """What :func:`prepare` found and started: the bus address (``where``), the ``ip`` processes (``run``,
    None when ``ip`` could not be started: ``ip_error`` says why), the clock when they started and the
    system bus's first questions, sent (``bus``; None: no bus here)."""

    __slots__ = ("where", "run", "ip_error", "started", "bus")

    def __init__(self, where: str, run: IpRun | None, ip_error: str | None, started: float,
                 bus: BusRead | None = None) -> None:
        self.where, self.run, self.ip_error, self.started, self.bus = where, run, ip_error, started, bus


def missing_bus_socket(address: str) -> bool:
    """True when ``address`` is one ``unix:path=PATH`` (nothing else in it) and nothing exists at PATH: a
    connection would fail with FileNotFoundError, which the access probe reports as "missing"."""
    if not address.startswith("unix:path=") or any(c in address for c in ";,%"):
        return False
    path = address[len("unix:path="):]
    if not path:
        return False
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def vt_answers(port: int, hosts: Sequence[str] = DEFAULT_HOSTS, timeout: float = VT_CONNECT_TIMEOUT) -> bool:
    """Whether anything accepts a TCP connection on ``port`` at one of ``hosts`` (closed again at once)."""
    for host in hosts:
        try:
            s = _socket.socket(_socket.AF_INET6 if ":" in host else _socket.AF_INET, _socket.SOCK_STREAM)
        except OSError:  # no IPv6 here
            continue
        try:
            s.settimeout(timeout)
            s.connect((host, port))
            return True
        except OSError:  # refused, unreachable, timed out: the driver's VtRefused
            continue
        finally:
            s.close()
    return False


def prepare(*, mip6d_conf: str | None = None, system_bus: str | None = None, vt_port: int | None = 7777,
            use_networkmanager: bool = True, clock: Callable[[], float] = time.monotonic) -> Prepared:
    """The cheap half of :func:`collect`, before the core is even imported: :class:`Fallback` when a Flatpak
    sandbox hides the daemon's file, or (no bus here) mip6d's terminal answers; else ``ip`` is started and
    the system bus's first questions are sent (both answer while Python loads the rest)."""
    where = system_bus_address(system_bus)
    no_bus = missing_bus_socket(where)
    if mip6d_conf is None and os.path.exists(flatpak_info_path()):
        raise Fallback("inside a Flatpak sandbox the daemon's configuration comes through the helper")
    if no_bus and vt_port is not None and vt_answers(vt_port):
        raise Fallback(f"something answers on localhost port {vt_port}: mip6d's terminal is read on the full path")
    started = clock()
    try:
        run, ip_error = IpRun(), None
    except IpJsonError as e:
        run, ip_error = None, str(e)
    bus = None
    if not no_bus:
        try:
            from .status_bus import BusRead
            bus = BusRead(where, networkmanager=use_networkmanager)
        except ImportError as e:  # jeepney not installed (an older package): the full path reads the bus
            if run is not None:
                run.close()
            raise Fallback(f"cannot read the system bus without asyncio: {e}") from None
        except BaseException:
            if run is not None:
                run.close()
            raise
    return Prepared(where, run, ip_error, started, bus)


def collect(*, mip6d_conf: str | None = None, settings_file: str | None = None, system_bus: str | None = None,
            use_networkmanager: bool = True, vt_port: int | None = 7777,
            clock: Callable[[], float] = time.monotonic, prepared: Prepared | None = None) -> StatusPicture:
    """The status picture of this node, as :func:`mhgui.cli._status` makes it with the runtime.

    ``prepared``: :func:`prepare`'s result for the same options (None: done here). Raises
    :class:`~mhgui.sources.config.ConfigError` for the first configuration problem (as ``mhctl status``
    does), :class:`Fallback` when this path cannot answer (module docstring).
    """
    p = prepared or prepare(mip6d_conf=mip6d_conf, system_bus=system_bus, vt_port=vt_port,
                            use_networkmanager=use_networkmanager, clock=clock)
    try:
        return _collect(p, mip6d_conf=mip6d_conf, settings_file=settings_file, use_networkmanager=use_networkmanager,
                        vt_port=vt_port, clock=clock)
    finally:
        if p.run is not None:
            p.run.close()
        if p.bus is not None:
            p.bus.close()


def _collect(p: Prepared, *, mip6d_conf: str | None, settings_file: str | None, use_networkmanager: bool,
             vt_port: int | None, clock: Callable[[], float]) -> StatusPicture:
    from .core.access import HELPER, SYSTEM_BUS, problems as access_problems
    from .core.analysis import Analyser
    from .core.capabilities import NO_DAEMON
    from .core.report import status as report_status
    from .core.state import SourceStatus, StateStore
    from .daemons.umip_facts import _ABSENT_TEXT, _NO_TERMINAL_TEXT, mip6d_running, umip_capabilities
    from .sources.config import ConfigError, load_config
    from .sources.iproute_json import snapshot_of
    from .sources.sandbox import read_sandbox

    where, bus = p.where, p.bus
    config = load_config(mip6d_conf, settings_file, strict=False)
    if config.errors:
        raise ConfigError(config.errors[0])
    if p.run is None:
        raise Fallback(p.ip_error)
    engine = None
    if bus is not None:
        bus.first()
        if bus.engine_present():  # the full path's choose_driver: the engine's driver, not UMIP's
            engine = bus.engine_read(clock)
        elif vt_port is not None and vt_answers(vt_port):
            raise Fallback(f"something answers on localhost port {vt_port}: mip6d's terminal is read on the full path")
    if engine is None:
        from .engine.paths import engine_configured
        if engine_configured():  # the full path's choose_driver drives the engine then, running or not
            raise Fallback("this node is configured for mhgui's engine (its mn.toml), which does not answer: "
                           "the full path says so")
    try:
        snap = snapshot_of(p.run, p.started)
    except IpJsonError as e:
        raise Fallback(str(e)) from None

    store = StateStore()
    home = config.event()
    if engine is not None:
        from .status_engine import engine_state
        daemon, caps, mine = engine_state(engine)
        if mine:  # the runtime's _apply_home_addresses: the engine's entry wins for an address both name
            from .core.state import HomeAddressesSet
            names = {h.address for h in mine}
            home = HomeAddressesSet(mine + tuple(h for h in home.home_addresses if h.address not in names), home.notes)
        store.apply(SourceStatus("engine", daemon.state, daemon.error or ""))
    elif vt_port is not None:
        # what the UMIP driver says when nothing accepts its connection (mhgui.daemons.umip, VtRefused)
        running = mip6d_running()
        text = (_NO_TERMINAL_TEXT if running else _ABSENT_TEXT).format(port=vt_port)
        daemon = DaemonState("umip", None, False, "no-terminal" if running else "absent", text)
        store.apply(SourceStatus("umip", daemon.state, text))
        caps = umip_capabilities(False)
    else:
        daemon, caps = None, NO_DAEMON
    store.apply(home)
    from .i18n import _
    if not use_networkmanager:
        store.apply(SourceStatus("networkmanager", "absent", _("not used (--no-networkmanager)")))
    elif bus is None:
        store.apply(SourceStatus("networkmanager", "absent", _(
            "No D-Bus system bus here ({where} does not exist), so no NetworkManager: using netlink alone.").format(
                where=where)))
    if bus is None:
        store.apply(SourceStatus(SYSTEM_BUS, "missing", _("{where} does not exist").format(where=where)))
        store.apply(SourceStatus(HELPER, "unknown", _("the system bus is not reachable")))
    else:
        (bs, bd), (hs, hd) = bus.probe()
        store.apply(SourceStatus(SYSTEM_BUS, bs, bd))
        store.apply(SourceStatus(HELPER, hs, hd))
    store.apply(snap)
    store.apply(SourceStatus("netlink", "ok"))
    if bus is not None and use_networkmanager:
        for ev in bus.networkmanager_events(_socket.if_nametoindex):
            store.apply(ev)

    bindings: tuple = ()
    if engine is not None and daemon.reachable:
        from .status_engine import engine_bindings
        bindings = engine_bindings(engine, store, clock)
    now = clock()
    allow_ula = bool(config.settings and config.settings.allow_ula)
    an = Analyser().analyse(store.state, now, allow_ula=allow_ula, ipv4_coas=caps.connected and caps.ipv4_coas)
    if bindings:
        from .status_engine import named_bindings
        bindings = named_bindings(bindings, store.state, an)
    access = access_problems(store.sources, store.state, read_sandbox(), networkmanager_wanted=use_networkmanager,
                             engine=caps.connected and caps.name == "engine")
    s = report_status(store, now, allow_ula=allow_ula, caps=caps, access=access, analysis=an)
    s["daemon"] = {**s["daemon"], "state": daemon.state if daemon else None, "error": daemon.error if daemon else None}
    s["bindings"] = [b.to_json(now) for b in bindings]
    return StatusPicture(report=s, state=store.state, sources=dict(store.sources), analysis=an, bindings=bindings,
                         uplinks=engine.uplinks if engine is not None and daemon.reachable else None, daemon=daemon)
