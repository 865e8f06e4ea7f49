"""The system bus as ``mhctl status`` reads it on its fast path (issue 14): one blocking connection, three
round trips, the same answers as the runtime's asyncio sources.

:class:`BusRead` asks, over :class:`~mhgui.sources.dbus_sync.SyncBus`, what the full path's sources ask:

- the access probe (:func:`mhgui.sources.access.probe_system_bus`): ``NameHasOwner`` and
  ``ListActivatableNames`` for the helper ``io.github.mhgui.MHGui.Helper1``, then its ``Peer.Ping``
  (which starts it when it is only activatable, as the probe does); 3 s for all of it;
- NetworkManager (:class:`mhgui.sources.networkmanager.NetworkManagerSource`'s enumeration): its owner,
  ``GetDevices``, each device's ``Device`` properties, ``Device.Wired.Carrier`` of Ethernet and veth
  devices, each ``IP6Config``'s ``AddressData``, ``ActiveConnections`` and the VPNs among them with their
  addresses; 5 s per round trip (the source's per-call timeout);
- the mobility engine (:class:`mhgui.daemons.engine.EngineDriver`): whether
  ``io.github.mhgui.MHGui.MobileNode1`` is owned, then ``GetStatus``, ``GetUplinks``, ``GetBindings``
  (and ``GetFlowBindings`` with several CoAs); 5 s per round trip.

Calls whose answer depends on an earlier one are sent with ``NO_AUTO_START`` when the full path would
only make them to a name that is owned (a speculative call must start nothing). The first round trip
is sent by :meth:`BusRead.start` (before the core is imported: the services answer meanwhile), the
rest by :meth:`BusRead.finish`, which returns the store events the runtime's sources would have sent.

Whatever the full path would answer in a way this module does not reproduce raises
:class:`~mhgui.status_fast.Fallback` (the caller then runs the full path): a bus that cannot be
connected to or refuses a call the sources need, NetworkManager that owns its name before its objects
answer, an engine that does not answer in time or whose answers the driver would retry.
"""

from __future__ import annotations

import json
from typing import Callable

from .sources.dbus_sync import DBUS, BusAddressError, Reply, SyncBus

__all__ = ["BusRead", "EngineRead", "PROBE_TIMEOUT", "NM_TIMEOUT", "ENGINE_TIMEOUT"]

#: seconds: the access probe's (mhgui.sources.access.DEFAULT_TIMEOUT), NetworkManager's source's
#: per-call timeout, the engine driver's call_timeout
PROBE_TIMEOUT, NM_TIMEOUT, ENGINE_TIMEOUT = 3.0, 5.0, 5.0

HELPER_NAME = "io.github.mhgui.MHGui.Helper1"
HELPER_PATH = "/io/github/mhgui/MHGui/Helper1"
NM = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
PROPS = "org.freedesktop.DBus.Properties"
ENGINE = "io.github.mhgui.MHGui.MobileNode1"
ENGINE_PATH = "/io/github/mhgui/MHGui/MobileNode1"

_ABSENT_ERRORS = frozenset({"org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"})
_NM_MATCHES = (
    f"type='signal',sender='{DBUS[0]}',path='{DBUS[1]}',interface='{DBUS[2]}',member='NameOwnerChanged',arg0='{NM}'",
    f"type='signal',sender='{NM}',path='{NM_PATH}',interface='{NM}',member='DeviceAdded'",
    f"type='signal',sender='{NM}',path='{NM_PATH}',interface='{NM}',member='DeviceRemoved'",
    f"type='signal',sender='{NM}',interface='{PROPS}',member='PropertiesChanged'",
)


class EngineRead:
    """What the engine driver knows after its first reads: ``status`` (``GetStatus``, {} when not an
    object), ``uplinks`` and ``raw`` (the dicts of ``GetUplinks`` and ``GetBindings``); or ``error`` (the
    driver's sentence when a read failed: its state is then "error"); ``absent``: nobody owns the name."""

    __slots__ = ("absent", "status", "uplinks", "raw", "error", "observed_at")

    def __init__(self, absent: bool = False, status: dict | None = None, uplinks: list | None = None,
                 raw: list | None = None, error: str | None = None, observed_at: float = 0.0) -> None:
        self.absent, self.status, self.uplinks, self.raw, self.error = absent, status or {}, uplinks or [], raw, error
        self.observed_at = observed_at


def _fallback(why: str) -> Exception:
    from .status_fast import Fallback
    return Fallback(why)


class BusRead:
    """One read of the system bus at ``where`` (module docstring). ``engine``: ask for the engine (False:
    ``--vt-port`` is None and no daemon is asked for); ``networkmanager``: ask NetworkManager."""

    def __init__(self, where: str, *, networkmanager: bool = True, engine: bool = True) -> None:
        self.where, self.networkmanager, self.engine = where, networkmanager, engine
        try:
            self.bus = SyncBus(where, PROBE_TIMEOUT)
        except FileNotFoundError:
            raise _fallback(f"no socket at {where}") from None
        except (OSError, TimeoutError, BusAddressError, ValueError, RuntimeError) as e:
            raise _fallback(f"the system bus at {where}: {type(e).__name__}: {e}") from None
        except Exception as e:  # jeepney's AuthenticationError and anything else: the full path says what
            raise _fallback(f"the system bus at {where}: {type(e).__name__}: {e}") from None
        b = self.bus
        self.r1: dict[str, int] = {
            "helper_owned": b.call(*DBUS, "NameHasOwner", "s", (HELPER_NAME,)),
            "activatable": b.call(*DBUS, "ListActivatableNames"),
        }
        if networkmanager:
            for i, rule in enumerate(_NM_MATCHES):
                self.r1[f"match{i}"] = b.call(*DBUS, "AddMatch", "s", (rule,))
            self.r1["nm_owner"] = b.call(*DBUS, "GetNameOwner", "s", (NM,))
            self.r1["devices"] = b.call(NM, NM_PATH, NM, "GetDevices", autostart=False)
            self.r1["active"] = b.call(NM, NM_PATH, PROPS, "Get", "ss", (NM, "ActiveConnections"), autostart=False)
        if engine:
            self.r1["engine_owned"] = b.call(*DBUS, "NameHasOwner", "s", (ENGINE,))
            self.r1["engine_owner"] = b.call(*DBUS, "GetNameOwner", "s", (ENGINE,))
            for m in ("GetStatus", "GetUplinks", "GetBindings"):
                self.r1[m] = b.call(ENGINE, ENGINE_PATH, ENGINE, m, autostart=False)
        self.got: dict[int, Reply] = {}
        try:
            self._wait((), 0.0)  # sent: the services answer while the caller loads the core
        except BaseException:  # the bus hung up (its policy refused this user?): the full path says so
            self.bus.close()
            raise

    def close(self) -> None:
        self.bus.close()

    def _wait(self, serials, timeout: float) -> dict[int, Reply]:
        try:
            got = self.bus.replies(serials, timeout)
        except (OSError, ValueError) as e:
            raise _fallback(f"the system bus at {self.where} failed: {type(e).__name__}: {e}") from None
        self.got.update(got)
        return got

    # ---- round 1
    def first(self) -> None:
        """Wait for the first round's replies (each within its owner's timeout)."""
        self._wait(self.r1.values(), NM_TIMEOUT if self.networkmanager or self.engine else PROBE_TIMEOUT)

    def reply(self, key: str) -> Reply | None:
        return self.got.get(self.r1[key])

    def engine_present(self) -> bool:
        """The engine's name is owned (the full path then uses its driver, not UMIP's)."""
        r = self.reply("engine_owned") if self.engine else None
        if self.engine and r is None:
            raise _fallback("the bus did not say whether the engine runs")
        return bool(r is not None and r.error is None and r.body and r.body[0] is True)

    # ---- the access probe
    def probe(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """The access probe's ``system-bus`` and ``helper`` (status, detail)."""
        owned, names = self.reply("helper_owned"), self.reply("activatable")
        if owned is None or names is None:
            return ("ok", ""), ("unknown", f"no answer within {PROBE_TIMEOUT:g} s")
        for r in (owned, names):
            if r.error is not None:
                return ("ok", ""), ("unknown", f"the bus answered {r.error}")
        has_owner = bool(owned.body and owned.body[0] is True)
        try:
            activatable = bool(names.body) and HELPER_NAME in names.body[0]
        except TypeError as e:
            return ("ok", ""), ("unknown", f"TypeError: {e}")
        if not has_owner and not activatable:
            from .i18n import _
            return ("ok", ""), ("absent", _("nobody owns io.github.mhgui.MHGui.Helper1 and no service file "
                                            "makes it activatable"))
        s = self.bus.call(HELPER_NAME, HELPER_PATH, "org.freedesktop.DBus.Peer", "Ping", autostart=not has_owner)
        reply = self._wait((s,), PROBE_TIMEOUT).get(s)
        if reply is None:
            return ("ok", ""), ("unknown", f"no answer within {PROBE_TIMEOUT:g} s")
        if reply.error is None:
            from .i18n import _
            return ("ok", ""), ("present", _("running") if has_owner else _("started on demand"))
        name, text = reply.error, reply.text
        if name == "org.freedesktop.DBus.Error.AccessDenied":
            return ("ok", ""), ("denied", name)
        if name in _ABSENT_ERRORS or name.startswith("org.freedesktop.DBus.Error.Spawn."):
            from .i18n import _
            return ("ok", ""), ("absent", _("its activation failed: {error}").format(
                error=f"{name}: {text}".rstrip(": ")))
        return ("ok", ""), ("unknown", f"{name}: {text}".rstrip(": "))

    # ---- NetworkManager
    def networkmanager_events(self, ifindex_of: Callable[[str], int | None]) -> list:
        """The events NetworkManager's source sends on its first enumeration (:mod:`mhgui.status_nm`)."""
        from .status_nm import networkmanager_events
        return networkmanager_events(self, ifindex_of)

    # ---- the engine
    def engine_read(self, clock: Callable[[], float]) -> EngineRead:
        """The engine driver's first reads (module docstring)."""
        owner = self.reply("engine_owner")
        if owner is None:
            raise _fallback("the bus did not say who owns the engine's name")
        if owner.error is not None or not owner.body:
            return EngineRead(absent=True)
        replies = {m: self.reply(m) for m in ("GetStatus", "GetUplinks", "GetBindings")}
        for m, r in replies.items():
            if r is None:
                raise _fallback(f"the engine did not answer {m} in time")
            if r.error is not None:
                if r.error in _ABSENT_ERRORS:
                    raise _fallback("the engine left the bus while it was read")
                return EngineRead(error=_engine_error(r))
        try:
            value = json.loads(replies["GetStatus"].body[0])
        except (ValueError, IndexError, TypeError):
            value = None
        status = value if isinstance(value, dict) else {}
        lists = {}
        for m in ("GetUplinks", "GetBindings"):
            try:
                v = json.loads(replies[m].body[0])
            except (ValueError, IndexError, TypeError):
                return EngineRead(status=status, error=f"the engine's {m} is not JSON")
            if not isinstance(v, list):
                return EngineRead(status=status, error=f"the engine's {m} is not a list")
            lists[m] = [x for x in v if isinstance(x, dict)]
            if m == "GetUplinks":
                uplinks = lists[m]
        observed = clock()
        if status.get("multiple_care_of"):
            s = self.bus.call(ENGINE, ENGINE_PATH, ENGINE, "GetFlowBindings")
            r = self._wait((s,), ENGINE_TIMEOUT).get(s)
            if r is None:
                raise _fallback("the engine did not answer GetFlowBindings in time")
            if r.error is not None:
                if r.error in _ABSENT_ERRORS:
                    raise _fallback("the engine left the bus while it was read")
                return EngineRead(status=status, uplinks=uplinks, error=_engine_error(r))
            try:
                json.loads(r.body[0])
            except (ValueError, IndexError, TypeError):
                return EngineRead(status=status, uplinks=uplinks, error="the engine's GetFlowBindings is not JSON")
        return EngineRead(status=status, uplinks=uplinks, raw=lists["GetBindings"], observed_at=observed)


def _engine_error(r: Reply) -> str:
    """The driver's EngineCallError text for an error reply: its first string argument, else its name."""
    return r.body[0] if r.body and isinstance(r.body[0], str) else r.error or "?"
