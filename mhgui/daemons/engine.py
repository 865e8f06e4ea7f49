"""Driver for mhgui's own mobility engine (``mhgui-mn``), through its control API on the system D-Bus.

The mobile node daemon (:mod:`mhgui.engine.mnd`) offers
``io.github.mhgui.MHGui.MobileNode1`` (:mod:`mhgui.engine.mn_dbus`: methods, JSON shapes,
errors). This driver:

- connects to the system bus (``bus_address``, else ``$DBUS_SYSTEM_BUS_ADDRESS``, else the
  system bus) and reconnects with backoff (0.5 s doubling to 10 s) when the bus goes;
- subscribes first (``AddMatch`` for the daemon's ``Changed`` signal and for
  ``NameOwnerChanged`` of its name), then reads (``GetNameOwner``, ``GetStatus``,
  ``GetBindings``, ``GetUplinks``), so that no change between subscribing and reading is lost;
  every ``Changed("bindings"|"preferences")`` re-reads the bindings, ``Changed("uplinks")`` the
  uplinks (reads are coalesced: one in flight, one more if something changed meanwhile);
- follows the daemon's name: when mhgui-mn stops (or restarts after ConfigureHomeAgent) the
  status becomes ``absent`` and the bindings empty; when it is back, everything is read again;
- maps the daemon's bindings to :class:`~mhgui.core.bindings.Binding` (see
  :func:`bindings_from_json`);
- rebinds one home address at run time (``Rebind``: no restart, the other HoAs stay), and
  reports the daemon's own measured time, from the request to the home agent's Binding
  Acknowledgement.

Capabilities: per-HoA choice (draft 7.1, 7.2), runtime rebind, its own failover (draft 7.3) and
IPv4 care-of addresses (RFC 5555, also behind NAT44); no multiple CoAs per HoA (RFC 5648), no
flow bindings (RFC 6089), no HoA as CoA (draft 6.2.2).

:func:`engine_present` tells whether the engine's bus name is owned (the app's choice of driver,
:func:`mhgui.runtime.choose_driver`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from typing import Any, Callable, Iterable, Mapping

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from mhgui.core.bindings import fill_interfaces
from mhgui.core.capabilities import DaemonCapabilities
from mhgui.i18n import N_, _

from .base import (
    STATE_ABSENT,
    BindingsChanged,
    CapabilityError,
    FlowBinding,
    FlowBindingResult,
    TrafficSelector,
    STATE_CONNECTED,
    STATE_ERROR,
    STATE_RECONNECTING,
    STATE_STARTING,
    STATE_STOPPED,
    DaemonDriver,
    DaemonMoved,
    DaemonStatus,
    LiveInput,
    LiveView,
    RebindPlan,
    RebindResult,
    as_live_view,
    cancel_and_wait,
)

# the daemon's names, the "not running" sentence and the JSON mapping: shared with `mhctl status`'s
# fast path, which loads no asyncio (engine_facts)
from .engine_facts import (_ABSENT_TEXT, BUS_NAME, INTERFACE, OBJECT_PATH, _canon, bindings_from_json,
                           engine_capabilities, engine_home_addresses)

log = logging.getLogger(__name__)

__all__ = [
    "BUS_NAME",
    "EngineCallError",
    "EngineDriver",
    "INTERFACE",
    "OBJECT_PATH",
    "bindings_from_json",
    "engine_present",
]

_DBUS = dict(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus", interface="org.freedesktop.DBus")


def _refusal(what: str, e: "EngineCallError", command: str | None, **kw: str) -> str:
    """What was refused and what to do, for a polkit or bus-policy refusal of the engine (issue 15.7)."""
    from mhgui.helper.client import polkit_refusal
    return polkit_refusal(_(what).format(**kw), command, bus_policy=e.error_name.endswith(".AccessDenied"))


class EngineCallError(RuntimeError):
    """A call to the engine failed: ``error_name`` (the D-Bus error, "" for a timeout or no bus) and
    the message (one sentence for the user)."""

    def __init__(self, error_name: str, message: str) -> None:
        super().__init__(message)
        self.error_name = error_name


async def _bus_call(bus: MessageBus, msg: Message, timeout: float | None) -> Message:
    """``bus.call`` within ``timeout`` s; the reply (an error reply too), or :class:`EngineCallError`."""
    call = bus.call(msg)
    try:
        reply = await (asyncio.wait_for(call, timeout) if timeout is not None else call)
    except asyncio.TimeoutError:
        raise EngineCallError("", f"no reply to {msg.member} within {timeout:g} s") from None
    except EngineCallError:
        raise
    except Exception as e:  # noqa: BLE001 - the connection broke
        raise EngineCallError("", f"{msg.member}: {e}") from None
    if reply is None:
        raise EngineCallError("", f"no reply to {msg.member}")
    return reply


async def engine_present(bus_address: str | None = None, timeout: float = 2.0) -> bool:
    """Whether the engine's name is owned on the system bus now; False when the bus cannot be reached
    within ``timeout`` s."""
    bus = None
    try:
        async with asyncio.timeout(timeout):
            bus = await MessageBus(bus_address=bus_address, bus_type=BusType.SYSTEM).connect()
            reply = await bus.call(Message(**_DBUS, member="NameHasOwner", signature="s", body=[BUS_NAME]))
        return reply is not None and reply.message_type is MessageType.METHOD_RETURN and bool(reply.body[0])
    except Exception as e:  # noqa: BLE001 - no bus: no engine
        log.debug("no system bus for the engine check: %s", e)
        return False
    finally:
        if bus is not None:
            bus.disconnect()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bus.wait_for_disconnect(), 1.0)


def _retrieve(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()


class EngineDriver(DaemonDriver):
    """mhgui's mobility engine through ``io.github.mhgui.MHGui.MobileNode1`` (module docstring).

    ``bus_address``: the system bus (None: ``$DBUS_SYSTEM_BUS_ADDRESS``, else the default);
    ``rebind_timeout``: seconds a Rebind may take (the daemon gives up after 10 s without a BA,
    polkit may ask first); ``call_timeout``: seconds for the reading calls; ``clock``: monotonic
    seconds (``observed_at`` of the bindings).
    """

    name = "engine"
    reports_moves = True  # the engine says why and when it moved (its Changed signals): DaemonMoved

    def __init__(self, *, bus_address: str | None = None, rebind_timeout: float = 30.0, call_timeout: float = 5.0,
                 backoff_initial: float = 0.5, backoff_max: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.bus_address = bus_address
        self.rebind_timeout = rebind_timeout
        self.call_timeout = call_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._clock = clock
        self._bus: MessageBus | None = None
        self._task: asyncio.Task | None = None
        self._worker: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._owner_dirty = False
        self._bindings_dirty = False
        self._uplinks_dirty = False
        self._owner: str | None = None
        self._read_lock = asyncio.Lock()
        self._raw: list[dict] = []
        self._uplinks: list[dict] = []
        self._status_json: dict = {}
        self._live: LiveView | None = None
        self._generation = 0
        self._flows: dict = {}
        self._flows_dirty = False

    # ---- state
    @property
    def capabilities(self) -> DaemonCapabilities:
        """Per-HoA choice, runtime rebind, failover (its own, draft 7.3) and IPv4 CoAs while connected; several
        CoAs per HoA and flow bindings (RFC 5648/6089) when its mn.toml says ``multiple_care_of = true``."""
        return engine_capabilities(self._status_json, self._status.reachable)

    @property
    def connected(self) -> bool:
        return self._status.state == STATE_CONNECTED

    @property
    def generation(self) -> int:
        """How many times the daemon was found (a new owner of its name)."""
        return self._generation

    @property
    def engine_status(self) -> dict:
        """The daemon's last ``GetStatus`` object ({} while absent)."""
        return dict(self._status_json)

    def uplinks(self) -> list[dict]:
        """The daemon's uplinks as last read (``GetUplinks``: name, coa6, coa4, family, reachable, rtt_ms...)."""
        return [dict(u) for u in self._uplinks]

    async def read_uplinks(self) -> list[dict]:
        """``GetUplinks`` now, also kept for :meth:`uplinks`: RTT and loss change with every probe and the
        engine signals only reachability changes (the health page polls this). EngineCallError when the
        engine is not connected or the call failed."""
        if not self.connected:
            raise EngineCallError("", "the engine is not connected")
        await self._read_uplinks()
        return self.uplinks()

    def home_addresses(self) -> tuple:
        """The engine's home addresses as :class:`~mhgui.core.model.HomeAddress` (origin ``"engine"``), for the
        model: with the engine, the HoAs are its configuration's, whatever mip6d.conf says."""
        return engine_home_addresses(self._raw)

    def raw_bindings(self) -> list[dict]:
        """The daemon's bindings as last read, unmapped (``GetBindings``: with preference, backup, never...)."""
        return [dict(b) for b in self._raw]

    def set_live(self, live: LiveView | None) -> None:
        """The live model: names a binding's interface from its CoA when the daemon did not."""
        self._live = live
        if live is not None and self._bindings:
            self._set_bindings(tuple(fill_interfaces(self._bindings, live.coa_interfaces())))

    def _status_with(self, state: str, *, reachable: bool = False, error: str | None = None) -> None:
        self._set_status(DaemonStatus(self.name, "mn" if reachable else None, reachable, state, error))

    # ---- lifecycle
    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._status_with(STATE_STARTING)
        self._task = asyncio.create_task(self._run(), name="engine-dbus")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)  # its clean-up disconnects from the bus
        await cancel_and_wait(self._worker)
        self._worker = None
        self._bus = None
        self._owner = None
        self._raw, self._uplinks, self._status_json = [], [], {}
        if self._bindings:
            self._set_bindings(())
        self._status_with(STATE_STOPPED)

    async def _nap(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _run(self) -> None:
        delay = self.backoff_initial
        while True:
            bus = None
            try:
                bus = await MessageBus(bus_address=self.bus_address, bus_type=BusType.SYSTEM).connect()
            except Exception as e:  # noqa: BLE001 - no bus yet: retry
                self._lost(STATE_ABSENT, f"cannot connect to the system bus: {e}")
            if bus is not None:
                gone = asyncio.ensure_future(bus.wait_for_disconnect())
                gone.add_done_callback(_retrieve)
                why = "the connection to the system bus was lost; reconnecting"
                try:
                    await self._serve(bus)
                    delay = self.backoff_initial
                    await asyncio.wait({gone})  # (asyncio.wait never cancels it: the bus's own future)
                except (EngineCallError, OSError, asyncio.TimeoutError) as e:
                    why = f"cannot follow the engine on the system bus: {e or 'timeout'}; retrying"
                finally:
                    # (no cancel_and_wait here: it re-raises while this task is being cancelled, and
                    # the bus would stay open)
                    worker, self._worker = self._worker, None
                    if worker is not None:
                        worker.cancel()
                        # the worker ends before the bus goes: a call it has pending must not fail with the
                        # socket's error instead of the cancellation (it would read on, on a closed bus)
                        await asyncio.wait({worker}, timeout=2.0)
                    self._bus = None
                    self._owner = None
                    bus.remove_message_handler(self._on_message)
                    if bus.connected:
                        bus.disconnect()
                    # the socket is closed before this returns (the loop may end right after stop())
                    await asyncio.wait({gone}, timeout=2.0)
                    if worker is not None and worker.done() and not worker.cancelled():
                        worker.exception()
                self._lost(STATE_RECONNECTING, why)
            await self._nap(delay)
            delay = min(delay * 2, self.backoff_max)

    async def _serve(self, bus: MessageBus) -> None:
        """Subscribe, then start the worker that reads (the bleak pattern: no change is lost between)."""
        self._bus = bus
        bus.add_message_handler(self._on_message)
        for rule in (f"type='signal',sender='{BUS_NAME}',path='{OBJECT_PATH}',interface='{INTERFACE}',"
                     "member='Changed'",
                     "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                     f"member='NameOwnerChanged',arg0='{BUS_NAME}'"):
            reply = await _bus_call(bus, Message(**_DBUS, member="AddMatch", signature="s", body=[rule]),
                                    self.call_timeout)
            if reply.message_type is MessageType.ERROR:
                raise EngineCallError(reply.error_name or "", f"cannot subscribe to the engine's signals: {reply.body}")
        self._owner_dirty = True
        self._wake.set()
        self._worker = asyncio.create_task(self._work(bus), name="engine-reads")

    def _lost(self, state: str, error: str) -> None:
        self._raw, self._uplinks, self._status_json = [], [], {}
        if self._bindings:
            self._set_bindings(())
        self._status_with(state, error=error)

    # ---- signals
    def _on_message(self, msg: Message) -> None:
        if msg.message_type is not MessageType.SIGNAL:
            return None
        if (msg.member == "NameOwnerChanged" and msg.sender == "org.freedesktop.DBus"
                and msg.body and msg.body[0] == BUS_NAME):
            self._owner_dirty = True
            self._wake.set()
        elif msg.interface == INTERFACE and msg.member == "Changed" and msg.path == OBJECT_PATH:
            if self._owner is not None and msg.sender != self._owner:
                return None  # an old owner's last words
            what = msg.body[0] if msg.body else ""
            if what == "bindings" and len(msg.body) > 1:
                self._maybe_moved(msg.body[1])
            if what == "uplinks":
                self._uplinks_dirty = True
            elif what == "flows":
                self._flows_dirty = True
            else:  # bindings, preferences, and anything new: the bindings carry the preferences
                self._bindings_dirty = True
            self._wake.set()
        return None

    def _maybe_moved(self, detail_json: object) -> None:
        """A registration through another uplink, in the engine's own words and times: :class:`DaemonMoved`."""
        try:
            d = json.loads(detail_json) if isinstance(detail_json, str) else None
        except ValueError:
            return
        if not isinstance(d, dict) or d.get("event") != "registered" or not d.get("moved"):
            return

        def t(k: str) -> float | None:
            v = d.get(k)
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

        hoa, to = d.get("hoa"), d.get("uplink")
        if not isinstance(hoa, str) or not isinstance(to, str):
            return
        frm = d.get("from") if isinstance(d.get("from"), str) else None
        reason = d.get("reason") if isinstance(d.get("reason"), str) else "moved"
        self._emit(DaemonMoved(_canon(hoa), frm, to, reason[:200], t("first_bu_at"), t("bu_sent_at"), t("ack_at")))

    async def _work(self, bus: MessageBus) -> None:
        """Read what the signals said changed, one read at a time, until cancelled."""
        me = asyncio.current_task()
        while True:
            # Python 3.11's wait_for may swallow a cancellation that comes as its call completes: look
            # before each wait, so that a stop is never lost
            if me is not None and me.cancelling():
                raise asyncio.CancelledError
            await self._wake.wait()
            self._wake.clear()
            if me is not None and me.cancelling():
                raise asyncio.CancelledError
            try:
                if self._owner_dirty:
                    self._owner_dirty = False
                    await self._check_owner(bus)
                if self._owner is None:
                    continue
                if self._uplinks_dirty:
                    self._uplinks_dirty = False
                    await self._read_uplinks()
                if self._bindings_dirty:
                    self._bindings_dirty = False
                    await self._read_bindings()
                if self._flows_dirty:
                    self._flows_dirty = False
                    await self._read_flows()
            except EngineCallError as e:
                if me is not None and me.cancelling():
                    raise asyncio.CancelledError from None
                if e.error_name in ("org.freedesktop.DBus.Error.ServiceUnknown",
                                    "org.freedesktop.DBus.Error.NameHasNoOwner"):
                    self._owner_dirty = self._bindings_dirty = True  # it went away meanwhile (or is back)
                    self._wake.set()
                    continue
                log.warning("engine: %s", e)
                await self._retry_after(str(e))
            except Exception as e:  # noqa: BLE001 - an answer we cannot use: say so and read again later
                if me is not None and me.cancelling():
                    raise asyncio.CancelledError from None
                log.exception("engine: cannot use the daemon's answer")
                await self._retry_after(f"the engine's answer could not be used: {e}")

    async def _retry_after(self, error: str) -> None:
        self._status_with(STATE_ERROR, reachable=False, error=error)
        await asyncio.sleep(self.backoff_max)
        self._owner_dirty = self._bindings_dirty = self._uplinks_dirty = True
        self._wake.set()

    async def _check_owner(self, bus: MessageBus) -> None:
        reply = await _bus_call(bus, Message(**_DBUS, member="GetNameOwner", signature="s", body=[BUS_NAME]),
                                self.call_timeout)
        owner = str(reply.body[0]) if reply.message_type is MessageType.METHOD_RETURN and reply.body else None
        if owner == self._owner and owner is not None and self.connected:
            return
        previous, self._owner = self._owner, owner
        if owner is None:
            log.info("engine: %s has no owner", BUS_NAME)
            self._lost(STATE_ABSENT, _ABSENT_TEXT)
            return
        if owner != previous:
            self._generation += 1
        status = await self._call("GetStatus")
        try:
            value = json.loads(status[0])
        except (ValueError, IndexError, TypeError):
            value = None
        self._status_json = value if isinstance(value, dict) else {}
        await self._read_uplinks()
        await self._read_bindings()
        await self._read_flows()
        log.info("engine: connected to %s (%s)", BUS_NAME, owner)
        self._status_with(STATE_CONNECTED, reachable=True)

    async def _call(self, member: str, signature: str = "", body: Iterable[Any] = (),
                    timeout: float | None = None) -> list:
        """Call the engine (``timeout`` s, default :attr:`call_timeout`); its reply's body, or
        :class:`EngineCallError` (a D-Bus error, a timeout, no bus)."""
        bus = self._bus
        if bus is None or not bus.connected:
            raise EngineCallError("", "not connected to the system bus")
        t = self.call_timeout if timeout is None else timeout
        reply = await _bus_call(bus, Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE,
                                             member=member, signature=signature, body=list(body)), t)
        if reply.message_type is MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else reply.error_name
            raise EngineCallError(reply.error_name or "", text)
        return list(reply.body)

    async def _read_json(self, member: str) -> list:
        body = await self._call(member)
        try:
            value = json.loads(body[0])
        except (ValueError, IndexError, TypeError):
            raise EngineCallError("", f"the engine's {member} is not JSON") from None
        if not isinstance(value, list):
            raise EngineCallError("", f"the engine's {member} is not a list")
        return value

    async def _read_uplinks(self) -> None:
        self._uplinks = [u for u in await self._read_json("GetUplinks") if isinstance(u, dict)]

    async def _read_bindings(self) -> None:
        async with self._read_lock:
            raw = [b for b in await self._read_json("GetBindings") if isinstance(b, dict)]
            self._raw = raw
            bindings = bindings_from_json(raw, peer=self._status_json.get("home_agent"), uplinks=self._uplinks,
                                          observed_at=self._clock())
            if self._live is not None:
                bindings = tuple(fill_interfaces(bindings, self._live.coa_interfaces()))
            self._set_bindings(bindings)

    async def refresh(self) -> bool:
        """Read the bindings now; False when the engine is not connected or the read failed."""
        if not self.connected:
            return False
        try:
            await self._read_bindings()
        except EngineCallError as e:
            log.debug("engine refresh: %s", e)
            return False
        return True

    # ---- requests
    async def plan_rebind(self, hoa: str, ifname: str, live: LiveInput) -> RebindPlan:
        """Plan "bind ``hoa`` through ``ifname``": only that HoA moves, nothing restarts.

        Refused when: ``hoa`` is not an IPv6 address or not one of the engine's home addresses;
        the engine is not connected; ``ifname`` is unknown, not one of the engine's uplinks, down,
        marked "never" for that HoA, has no care-of address the engine can use (a global IPv6 or
        IPv4 address; "not yet" with ``pending`` while its addresses are tentative), has none in
        a family the home agent has, or its probes say the home agent does not answer through it.
        """
        view = as_live_view(live, now=self._clock())
        try:
            hoa_c = ipaddress.IPv6Address(hoa.strip()).compressed
        except ValueError:
            return RebindPlan(hoa, ifname, refusal=_("{hoa} is not an IPv6 address").format(hoa=repr(hoa)))

        def refuse(reason: str, **kw) -> RebindPlan:
            return RebindPlan(hoa_c, ifname, moves=(hoa_c,), refusal=reason, **kw)

        if not self.connected:
            return refuse(_("the mobility engine is not connected ({why})").format(
                why=self._status.error or self._status.state))
        try:
            await self._read_uplinks()
            await self._read_bindings()
        except EngineCallError as e:
            return refuse(_("the mobility engine does not answer: {why}").format(why=e))
        entry = next((b for b in self._raw if _canon(b.get("hoa")) == hoa_c), None)
        if entry is None:
            known = ", ".join(_canon(b.get("hoa")) for b in self._raw) or _("none")
            return refuse(_("{hoa} is not one of the engine's home addresses ({known})").format(hoa=hoa_c, known=known))
        staying = tuple(_canon(b.get("hoa")) for b in self._raw if _canon(b.get("hoa")) != hoa_c)
        u = next((x for x in self._uplinks if x.get("name") == ifname), None)
        li = view.interfaces.get(ifname)
        if u is None:
            if li is None:
                return refuse(_("there is no interface {name}").format(name=ifname))
            return refuse(_("{name} is not one of the engine's uplinks (a tunnel, loopback or its own device)").format(
                name=ifname))
        if ifname in (entry.get("never") or ()):
            return refuse(_("{name} is marked 'never' for {hoa}: change its preferences first").format(
                name=ifname, hoa=hoa_c))
        if not u.get("carrier"):
            return refuse(_("{name} is down or has no carrier").format(name=ifname))
        coas = tuple(c for c in (u.get("coa6"), u.get("coa4")) if c)
        if not coas:
            if li is not None and li.tentative:
                return refuse(_("not yet: DAD in progress on {name} ({addresses} tentative); try again in a moment")
                              .format(name=ifname, addresses=", ".join(li.tentative)), pending=True)
            return refuse(_("{name} has no care-of address the engine can use (no global IPv6 or IPv4 address)").format(
                name=ifname))
        family = u.get("family")
        if family not in (4, 6):
            ha = ", ".join(self._status_json.get("home_agent_addresses") or ()) or "?"
            return refuse(_("{name} has no address in a family the home agent has ({ha}): {coas} cannot reach it")
                          .format(name=ifname, ha=ha, coas=_(" and ").join(coas)))
        if u.get("reachable") is False:
            return refuse(_("the home agent does not answer through {name} (its probes are lost)").format(name=ifname))
        target = u.get("coa6") if family == 6 else u.get("coa4")
        notes = [_("only {hoa} moves; {others} stay where they are").format(hoa=hoa_c, others=", ".join(staying))
                 if staying else _("only {hoa} moves").format(hoa=hoa_c),
                 _("no restart: the engine sends a Binding Update through the new interface at once")]
        if entry.get("state") == "registered" and entry.get("interface") == ifname:
            notes.insert(0, _("{hoa} is already bound through {name}").format(hoa=hoa_c, name=ifname))
        if u.get("reachable") is None:
            notes.append(_("the home agent has not answered through {name} yet").format(name=ifname))
        return RebindPlan(hoa_c, ifname, moves=(hoa_c,), staying=staying, restart_required=False,
                          target_coas=(target,) if target else coas, notes=tuple(notes))

    async def rebind(self, plan: RebindPlan) -> RebindResult:
        """``Rebind(hoa, interface)`` on the engine; ``elapsed_ms`` is the daemon's own measure (request to
        Binding Acknowledgement). The bindings are read again before this returns, when confirmed.
        Not confirmed (with the reason) when the plan was refused, polkit or the bus policy said no
        (the reason says so), the daemon refused or gave up, or nothing came within ``rebind_timeout``."""
        t0 = self._clock()

        def failed(reason: str, elapsed: float | None = None) -> RebindResult:
            return RebindResult(False, (self._clock() - t0) * 1000.0 if elapsed is None else elapsed, reason=reason)

        if plan.refusal is not None:
            return failed(plan.refusal)
        try:
            body = await self._call("Rebind", "ss", [plan.hoa, plan.interface], timeout=self.rebind_timeout)
        except EngineCallError as e:
            if e.error_name.endswith(".NotAuthorized") or e.error_name.endswith(".AccessDenied"):
                return failed(_("not allowed: {why}").format(why=e) + " — " + _refusal(
                    N_("Moving {hoa} to {iface}"), e, f"sudo mhctl rebind {plan.hoa} {plan.interface}",
                    hoa=plan.hoa, iface=plan.interface))
            return failed(str(e))
        confirmed, elapsed_ms, coa, _interface, reason = body
        if not confirmed:
            return failed(reason or _("the engine did not confirm the binding"), float(elapsed_ms))
        await self.refresh()
        coa = _canon(coa) if coa else None
        return RebindResult(True, float(elapsed_ms), new_coa=coa, coas={plan.hoa: coa} if coa else {})

    async def set_preferences(self, hoa: str, preference: Iterable[str], backup: Iterable[str] = (),
                              never: Iterable[str] = ()) -> None:
        """``SetPreferences`` on the engine (used at once, saved in mn.toml by the daemon).
        :class:`EngineCallError` with the daemon's sentence when refused."""
        await self._call("SetPreferences", "sasasas", [hoa, list(preference), list(backup), list(never)],
                         timeout=self.rebind_timeout)
        await self.refresh()

    async def configure_home_agent(self, addresses: Iterable[str], home_agent_address: str, identity: str,
                                   spi: int, key: bytes) -> None:
        """``ConfigureHomeAgent`` (:mod:`mhgui.engine.mn_dbus`, action ``engine-configure``): the home agent's
        outer ``addresses`` (1..2, one per family), its ``home_agent_address`` on the home prefix, this
        node's NAI ``identity`` (RFC 4283), the RFC 4285 ``spi`` (256..2^32-1) and the MN-HA ``key``
        (16..64 bytes; the daemon writes it root-only, 0600). The daemon then restarts with them (its name
        goes and comes back: the status becomes ``absent`` for a moment). Waits up to ``rebind_timeout``
        (polkit may ask for a password). :class:`EngineCallError` with the daemon's sentence when refused
        (``error_name`` ends in ``.NotAuthorized`` for polkit, ``.InvalidArgs`` for a bad argument)."""
        await self._call("ConfigureHomeAgent", "asssuay",
                         [list(addresses), home_agent_address, identity, int(spi), bytes(key)],
                         timeout=self.rebind_timeout)

    # ---- flow bindings (RFC 6089; the engine with multiple_care_of = true)
    async def _read_flows(self) -> None:
        if not self._status_json.get("multiple_care_of"):
            self._flows = {}
            return
        body = await self._call("GetFlowBindings")
        try:
            value = json.loads(body[0])
        except (ValueError, IndexError, TypeError):
            raise EngineCallError("", "the engine's GetFlowBindings is not JSON") from None
        self._flows = value if isinstance(value, dict) else {}
        self._emit(BindingsChanged(self._bindings))  # the window's flows view shows each flow's BIDs

    def flow_bindings(self) -> list[dict]:
        """The engine's flow bindings as last read (``GetFlowBindings``' ``flows``: hoa, fid, priority,
        selector (words), uplinks, bids, bound_to, state, error); [] without several CoAs."""
        return [dict(f) for f in self._flows.get("flows", ()) if isinstance(f, dict)]

    def flow_settings(self) -> dict:
        """``weights`` (load sharing, {} = off), ``limit`` (words) and ``multiple_care_of`` as last read."""
        return {"weights": dict(self._flows.get("weights") or {}), "limit": self._flows.get("limit"),
                "multiple_care_of": bool(self._flows.get("multiple_care_of"))}

    async def list_flow_bindings(self) -> list[dict]:
        """Read and return :meth:`flow_bindings`; CapabilityError without the capability."""
        self._need_flows()
        await self._read_flows()
        return self.flow_bindings()

    def _need_flows(self) -> None:
        if not self.capabilities.flow_bindings:
            raise CapabilityError(
                "engine: flow bindings need several care-of addresses at once: set multiple_care_of = true "
                "in mn.toml's [tunnel] (and restart mhgui-mn)" if self.connected else
                f"the mobility engine is not connected ({self._status.error or self._status.state})")

    async def _flow_call(self, member: str, signature: str, body: list) -> FlowBindingResult:
        t0 = self._clock()
        try:
            self._need_flows()
            confirmed, fid, elapsed_ms, reason = await self._call(member, signature, body,
                                                                  timeout=self.rebind_timeout)
        except CapabilityError as e:
            return FlowBindingResult(False, 0, (self._clock() - t0) * 1000.0, str(e))
        except EngineCallError as e:
            words = (f"not allowed: {e} — " + _refusal(N_("Moving this connection"), e, None)
                     if e.error_name.endswith((".NotAuthorized", ".AccessDenied")) else str(e))
            return FlowBindingResult(False, 0, (self._clock() - t0) * 1000.0, words)
        with contextlib.suppress(EngineCallError):
            await self._read_flows()
        return FlowBindingResult(bool(confirmed), int(fid), float(elapsed_ms), reason or None)

    async def bind_flow(self, hoa: str, selector: TrafficSelector, interfaces: Iterable[str]) -> FlowBindingResult:
        """Bind one flow of ``hoa`` (``selector`` as the home agent sees it: source = the correspondent) to
        ``interfaces`` (several = a copy on each); returns when the home agent confirmed or refused it."""
        from ..engine.flowspec import selector_to_json
        return await self._flow_call("AddFlowBinding", "ssas", [hoa, json.dumps(selector_to_json(selector)),
                                                                list(interfaces)])

    async def move_flow(self, hoa: str, fid: int, interfaces: Iterable[str]) -> FlowBindingResult:
        return await self._flow_call("ChangeFlowBinding", "sqas", [hoa, int(fid), list(interfaces)])

    async def set_flow_binding(self, fb: FlowBinding, hoa: str | None = None) -> FlowBindingResult:
        """The RFC 6089 form: ``fb.bid_refs`` are the engine's BIDs (GetBindings' ``paths``), mapped to its
        uplinks; ``hoa`` defaults to the selector's destination. A FID the engine already has is changed."""
        self._need_flows()
        hoa = hoa or (fb.selector.destination_address[0] if fb.selector.destination_address else None)
        entry = next((b for b in self._raw if hoa is not None and _canon(b.get("hoa")) == _canon(hoa)), None)
        if entry is None:
            return FlowBindingResult(False, 0, 0.0, f"{hoa} is not one of the engine's home addresses")
        by_bid = {p.get("bid"): p.get("interface") for p in entry.get("paths") or () if isinstance(p, dict)}
        missing = [b for b in fb.bid_refs if not by_bid.get(b)]
        if missing:
            return FlowBindingResult(False, 0, 0.0, f"BID {missing[0]} is not one of {entry.get('hoa')}'s paths")
        names = [by_bid[b] for b in fb.bid_refs]
        if any(f.get("fid") == fb.fid and _canon(f.get("hoa")) == _canon(hoa) for f in self.flow_bindings()):
            return await self.move_flow(hoa, fb.fid, names)
        return await self.bind_flow(hoa, fb.selector, names)

    async def remove_flow_binding(self, hoa: str, fid: int) -> FlowBindingResult:
        """The flow follows its home address again; confirmed by the home agent."""
        return await self._flow_call("RemoveFlowBinding", "sq", [hoa, int(fid)])

    async def set_load_sharing(self, weights: Mapping[str, int]) -> None:
        """Spread new flows over the uplinks by ``weights`` ({} = off). EngineCallError when refused."""
        self._need_flows()
        await self._call("SetLoadSharing", "a{su}", [{str(k): int(v) for k, v in weights.items()}],
                         timeout=self.rebind_timeout)
        await self._read_flows()
