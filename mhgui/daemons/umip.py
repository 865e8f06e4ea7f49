"""Driver for UMIP's ``mip6d`` (UMIP 1.0, mainline), through its virtual terminal.

The VT is UMIP's only run-time control interface (``/work/shared/domain/umip.md``
section 1): a plain TCP text service on ``localhost`` port 7777 (``--vt-service``),
present only in builds configured with ``--enable-vt`` (distribution packages are
not), one client at a time. :class:`VtClient` speaks its framing:

- greeting ``mip6d> `` (no NUL); a second client gets ``Too many connections``
  and is closed;
- one command per write, terminated by ``\\r\\n`` (UMIP overwrites the last byte
  of each ``recvmsg()`` chunk with NUL, and its key/value parser needs
  whitespace after the last value);
- each reply is the output, the ``mip6d> `` prompt and one NUL byte, possibly
  over several segments;
- ``fancy no`` first, so that no ``ESC[...m`` decorations come (the parsers
  strip them anyway); ``verbose yes`` so that ``bul`` names the CoA's
  interface (``dev``).

:class:`UmipDriver` polls ``bul`` (mobile node) or ``bc`` (home agent,
correspondent) every ``poll_interval`` seconds, reconnects with backoff
(0.5 s doubling to 10 s), and carries out rebind requests the only way
mainline UMIP allows (umip.md section 3): UMIP picks **one** interface for
**every** home address, the one with the lowest ``MnIfPreference`` (> 0) that
has a CoA and a default router, and the preferences are read at start only;
so "bind HoA to interface X" becomes "give X preference 1, keep the others'
order after it, restart mip6d", and all HoAs move together.

Mainline UMIP has no per-HoA choice, no multiple CoAs (RFC 5648), no flow
bindings (RFC 6089) and cannot register a home address as a care-of address
(draft-montavont-mobileip-multihoming-pb-statement-04 section 6.2.2; its HA
drops such a Binding Update, RFC 6275 section 9.5.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from typing import Callable, Iterable, Iterator, Mapping

from mhgui.core import mip6conf
from mhgui.i18n import N_, _
from mhgui.core.bindings import BindingState, binding_graph_has_cycle, cycle_path, fill_interfaces  # noqa: F401 (re-export)
from mhgui.core.capabilities import DaemonCapabilities
from mhgui.core.umip_parse import parse_bc, parse_bul

from .base import (
    STATE_ABSENT,
    STATE_BUSY,
    STATE_CONNECTED,
    STATE_ERROR,
    STATE_NO_TERMINAL,
    STATE_RECONNECTING,
    STATE_STARTING,
    STATE_STOPPED,
    CapabilityError,
    ConfigWriter,
    DaemonDriver,
    DaemonStatus,
    FlowBinding,
    LiveInput,
    LiveView,
    RebindPlan,
    RebindResult,
    as_live_view,
    cancel_and_wait,
)
# shared with the fast `mhctl status` path (no asyncio there): re-exported here
from .umip_facts import _ABSENT_TEXT, _NO_TERMINAL_TEXT, DEFAULT_HOSTS, DEFAULT_PORT, mip6d_running, umip_capabilities  # noqa: F401,E501

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PORT",
    "HOA_AS_COA_REASON",
    "UmipDriver",
    "VtBusy",
    "VtClient",
    "VtClosed",
    "VtError",
    "VtRefused",
    "VtTimeout",
    "backoff_delays",
    "binding_graph_has_cycle",
    "mip6d_running",
    "node_from_help",
    "preference_order",
    "rebind_preferences",
]

PROMPT = b"mip6d> "
TOO_MANY = b"Too many connections"

#: Why the UMIP driver never offers a home address as a care-of address (draft section 6.2.2).
#: the note of a UMIP rebind plan that says mip6d restarts (the window says it in its own words)
RESTART_NOTE = N_("mip6d restarts: it re-reads interface preferences only at start")

HOA_AS_COA_REASON = N_(
    "UMIP cannot register a home address as the care-of address of another: its mobile node only "
    "takes care-of addresses from access interfaces (mn_get_coa), and its home agent silently drops "
    "a Binding Update whose care-of address is a home address with a binding there (the circular "
    "reference check of RFC 6275 section 9.5.1), so the mobile node would only retransmit until it "
    "gives up (draft-montavont-mobileip-multihoming-pb-statement-04 section 6.2.2)"
)

_BUSY_TEXT = (
    "another program is attached to mip6d's virtual terminal, which serves one at a time; retrying"
)


# --------------------------------------------------------------------------- VT client


class VtError(Exception):
    """A failure talking to the VT; ``str()`` is a sentence for the user."""


class VtRefused(VtError):
    """Nobody accepts connections on the VT port (daemon absent, or built without ``--enable-vt``)."""


class VtBusy(VtError):
    """``Too many connections``: another client holds the VT."""


class VtClosed(VtError):
    """The daemon closed the connection (it stopped or restarted)."""


class VtTimeout(VtError):
    """No complete reply (no NUL) in time; the connection is closed since the framing is lost."""


def node_from_help(text: str) -> str | None:
    """``"mn"``, ``"ha"`` or None from the VT's ``help`` output (umip.md section 1).

    ``bul``/``rr`` are registered by ``mn_init`` only; ``hal``/``pl``/``thread``
    by the HA; a correspondent node has neither.
    """
    words = set(text.split())
    if "bul" in words or "rr" in words:
        return "mn"
    if words & {"hal", "pl", "thread"}:
        return "ha"
    return None


def backoff_delays(initial: float = 0.5, maximum: float = 10.0) -> Iterator[float]:
    """Reconnection delays: ``initial``, doubling, capped at ``maximum`` (0.5, 1, 2, 4, 8, 10, 10, ...)."""
    delay = initial
    while True:
        yield min(delay, maximum)
        delay = min(delay * 2, maximum)


class VtClient:
    """One connection to UMIP's virtual terminal (umip.md section 1).

    :meth:`connect` tries each of ``hosts`` (``::1``, then ``127.0.0.1``, as
    ``getaddrinfo("localhost")`` gives them) and reads the greeting;
    :meth:`command` sends one line and returns the reply without the prompt
    and the NUL. Commands are serialised.
    """

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        hosts: Iterable[str] = DEFAULT_HOSTS,
        *,
        connect_timeout: float = 2.0,
        greeting_timeout: float = 1.0,
        reply_timeout: float = 5.0,
        limit: int = 1 << 20,
    ) -> None:
        self.port = port
        self.hosts = tuple(hosts)
        self.connect_timeout = connect_timeout
        self.greeting_timeout = greeting_timeout
        self.reply_timeout = reply_timeout
        self.limit = limit
        self.greeting = ""
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        """Open the connection and read the greeting; raises :class:`VtRefused`, :class:`VtBusy`, :class:`VtClosed`."""
        await self.close()
        errors = []
        for host in self.hosts:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    reader, writer = await asyncio.open_connection(host, self.port, limit=self.limit)
            except (OSError, TimeoutError) as e:
                errors.append(f"{host}: {e.strerror if isinstance(e, OSError) and e.strerror else e or 'timeout'}")
                continue
            self._reader, self._writer = reader, writer
            break
        else:
            raise VtRefused(f"cannot connect to localhost port {self.port} ({'; '.join(errors)})")
        try:
            await self._read_greeting()
        except BaseException:
            await self.close()
            raise

    async def _read_greeting(self) -> None:
        assert self._reader is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.greeting_timeout
        buf = b""
        while not buf.endswith(PROMPT):
            if TOO_MANY in buf:
                raise VtBusy(_BUSY_TEXT)
            left = deadline - loop.time()
            if left <= 0:
                break  # ``prompt no``: no greeting at all
            try:
                async with asyncio.timeout(left):
                    chunk = await self._reader.read(4096)
            except TimeoutError:
                break
            except OSError as e:
                raise VtClosed(f"connection lost while connecting: {e}") from e
            if not chunk:
                if TOO_MANY in buf:
                    raise VtBusy(_BUSY_TEXT)
                raise VtClosed("mip6d closed the connection before its prompt")
            buf += chunk
        self.greeting = buf.decode("utf-8", "replace")

    async def command(self, line: str) -> str:
        """Send ``line`` and return its reply (prompt and NUL removed).

        Raises :class:`VtClosed` when the daemon closes the connection,
        :class:`VtTimeout` when no NUL comes within ``reply_timeout`` (then
        the connection is closed), ``ValueError`` for a line holding CR, LF
        or NUL (one write is one command).
        """
        if any(c in line for c in "\r\n\0"):
            raise ValueError("a VT command is one line")
        async with self._lock:
            if self._writer is None or self._reader is None:
                raise VtClosed("not connected")
            try:
                self._writer.write(line.encode("utf-8") + b"\r\n")
                await self._writer.drain()
                async with asyncio.timeout(self.reply_timeout):
                    data = await self._reader.readuntil(b"\0")
            except asyncio.IncompleteReadError as e:
                await self._close_locked()
                raise VtClosed("mip6d closed the virtual terminal connection") from e
            except asyncio.LimitOverrunError as e:
                await self._close_locked()
                raise VtError(f"reply to {line!r} longer than {self.limit} bytes") from e
            except TimeoutError as e:
                await self._close_locked()
                raise VtTimeout(f"no complete reply to {line!r} within {self.reply_timeout:g} s") from e
            except OSError as e:
                await self._close_locked()
                raise VtClosed(f"connection lost: {e}") from e
        reply = data[:-1]
        if reply.endswith(PROMPT):
            reply = reply[: -len(PROMPT)]
        return reply.decode("utf-8", "replace")

    async def close(self) -> None:
        """Close the connection (sends ``quit`` first when possible; idempotent)."""
        async with self._lock:
            await self._close_locked(polite=True)

    async def _close_locked(self, polite: bool = False) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        if polite and not writer.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                writer.write(b"quit\r\n")
        writer.close()
        with contextlib.suppress(OSError, TimeoutError, RuntimeError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()


# --------------------------------------------------------------------------- preferences (pure)


def preference_order(prefs: Mapping[str, int]) -> list[frozenset[str]]:
    """Interfaces grouped by ``MnIfPreference``, best (lowest > 0) first; 0 (unused) left out."""
    groups: dict[int, set[str]] = {}
    for name, p in prefs.items():
        if p > 0:
            groups.setdefault(p, set()).add(name)
    return [frozenset(groups[p]) for p in sorted(groups)]


def rebind_preferences(prefs: Mapping[str, int], target: str) -> dict[str, int]:
    """The preference map that makes ``target`` UMIP's choice, as a clean order.

    ``target`` gets 1; every other interface with a preference > 0 keeps its
    relative order after it and is numbered 2, 3, ... (a tie is broken by name,
    a gap closed: :func:`mhgui.core.mip6conf.preference_order_problem` refuses
    both, since the order shown and the order used would differ). 0 (never
    used) stays 0. Values stop at 10 (``POL_MN_IF_MIN_PREFERENCE``): with more
    than 10 interfaces in use the last ones tie, which
    :meth:`UmipDriver.plan_rebind` then refuses. E.g. ``{eth1: 1, wlan0: 2,
    wwan0: 3}`` with target ``wwan0`` gives ``{wwan0: 1, eth1: 2, wlan0: 3}``.
    """
    out = {name: p for name, p in prefs.items()}
    out[target] = 1
    others = sorted((p, name) for name, p in prefs.items() if name != target and p > 0)
    for n, (_, name) in enumerate(others, start=2):
        out[name] = min(n, mip6conf.MAX_PREFERENCE)
    return out


def _canon(addr: str) -> str:
    return ipaddress.ip_address(addr.strip()).compressed


# --------------------------------------------------------------------------- the driver


class UmipDriver(DaemonDriver):
    """UMIP ``mip6d`` through its virtual terminal (see the module docstring).

    ``config_writer`` (a :class:`~mhgui.daemons.base.ConfigWriter`) is needed
    for rebinding; without it plans are refused. ``process_probe`` tells
    whether mip6d runs when its port refuses connections (to say "no
    terminal" rather than "absent"). ``clock`` is monotonic seconds.
    """

    name = "umip"

    def __init__(
        self,
        *,
        port: int = DEFAULT_PORT,
        hosts: Iterable[str] = DEFAULT_HOSTS,
        poll_interval: float = 1.0,
        config_writer: ConfigWriter | None = None,
        rebind_timeout: float = 30.0,
        confirm_interval: float = 0.2,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        reply_timeout: float = 5.0,
        greeting_timeout: float = 1.0,
        verbose: bool = True,
        clock: Callable[[], float] = time.monotonic,
        process_probe: Callable[[], bool | None] | None = mip6d_running,
        hold_connection: bool = False,
    ) -> None:
        super().__init__()
        #: mip6d's terminal takes one client at a time ("Too many connections"): by default the
        #: driver connects for each poll and says ``quit`` after it, so that mhctl, a second
        #: window or an administrator's telnet can use the terminal in between
        self.hold_connection = hold_connection
        self._session_lock = asyncio.Lock()
        self.port = port
        self.hosts = tuple(hosts)
        self.poll_interval = poll_interval
        self.config_writer = config_writer
        self.rebind_timeout = rebind_timeout
        self.confirm_interval = confirm_interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.reply_timeout = reply_timeout
        self.greeting_timeout = greeting_timeout
        self.verbose = verbose
        self._clock = clock
        self._probe = process_probe
        self._client: VtClient | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()  # cut a backoff or poll wait short
        self._rebind_lock = asyncio.Lock()
        self._fast_reconnect = 0  # >0 while a rebind waits for the daemon
        self._generation = 0  # successful connections so far
        self._live: LiveView | None = None
        self._hurry_until = float("-inf")  # poll every hurry_interval s until then (clock seconds)
        #: the poll interval while hurried (a failover under way): the timing resolution of its log entry
        self.hurry_interval = 0.1
        self.unknown_lines: list[str] = []  # of the last poll, for diagnostics

    # ---- state
    @property
    def capabilities(self) -> DaemonCapabilities:
        """Mainline UMIP: ``connected`` and ``failover`` (its own move to the best remaining interface),
        nothing else (umip.md sections 3 and 6; :func:`~mhgui.daemons.umip_facts.umip_capabilities`)."""
        return umip_capabilities(self._status.reachable)

    @property
    def connected(self) -> bool:
        if not self.hold_connection:
            return self._status.state == STATE_CONNECTED
        return self._client is not None and self._client.connected and self._status.state == STATE_CONNECTED

    @property
    def generation(self) -> int:
        """How many times the VT connection was (re-)established."""
        return self._generation

    def set_live(self, live: LiveView | None) -> None:
        """The live model, used to fill a binding's interface from its CoA when UMIP did not name it."""
        self._live = live
        if live is not None and self._bindings:
            self._set_bindings(tuple(fill_interfaces(self._bindings, live.coa_interfaces())))

    def _status_with(self, state: str, *, reachable: bool = False, node: str | None = None,
                     error: str | None = None) -> None:
        self._set_status(DaemonStatus(self.name, node, reachable, state, error))

    # ---- lifecycle
    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._status_with(STATE_STARTING)
        self._task = asyncio.create_task(self._run(), name="umip-vt")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await self._drop_client()
        if self._bindings:
            self._set_bindings(())
        self._status_with(STATE_STOPPED)

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def _kick(self) -> None:
        self._wake.set()

    def hurry(self, duration: float) -> None:
        """Poll ``bul`` at once and every :attr:`hurry_interval` s for ``duration`` s (a failover is being timed)."""
        self._hurry_until = max(self._hurry_until, self._clock() + duration)
        self._kick()

    def _interval(self) -> float:
        return self.hurry_interval if self._clock() < self._hurry_until else self.poll_interval

    async def _nap(self, seconds: float) -> None:
        """Sleep ``seconds`` or until :meth:`_kick`."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
        # that arrives as the awaited event is set (gh-86296), and stop() would hang
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await self._wake.wait()
        self._wake.clear()

    async def _run(self) -> None:
        delays = backoff_delays(self.backoff_initial, self.backoff_max)
        while True:
            _raise_if_cancelling()
            try:
                if not self.hold_connection:
                    await self._session_poll()
                    delays = backoff_delays(self.backoff_initial, self.backoff_max)
                    await self._nap(self._interval())
                    continue
                await self._connect()
                delays = backoff_delays(self.backoff_initial, self.backoff_max)
                await self._poll_loop()
            except VtBusy as e:
                # someone else (mhctl, telnet) has the terminal: keep what we know, try again soon
                self._status_with(STATE_BUSY, reachable=self._status.reachable, node=self._status.node,
                                  error=f"{e}: another client is using mip6d's terminal; retrying")
            except VtRefused:
                running = self._probe() if self._probe is not None else None
                if running:
                    self._lost(STATE_NO_TERMINAL, _NO_TERMINAL_TEXT.format(port=self.port))
                else:
                    self._lost(STATE_ABSENT, _ABSENT_TEXT.format(port=self.port))
            except VtClosed as e:
                self._lost(STATE_RECONNECTING, f"{e}; reconnecting")
            except VtError as e:
                self._lost(STATE_ERROR, f"{e}; reconnecting")
            except OSError as e:
                self._lost(STATE_RECONNECTING, f"connection error: {e}; reconnecting")
            await self._drop_client()
            delay = next(delays)
            if self._fast_reconnect:
                delay = min(delay, self.confirm_interval)
            await self._nap(delay)

    def _lost(self, state: str, error: str) -> None:
        if self._bindings:
            self._set_bindings(())
        self._status_with(state, error=error)

    async def _connect(self) -> None:
        client = VtClient(self.port, self.hosts, reply_timeout=self.reply_timeout,
                          greeting_timeout=self.greeting_timeout)
        await client.connect()
        self._client = client
        fancy = (await client.command("fancy no")).strip()
        if fancy != "no":
            log.warning("mip6d VT: unexpected reply to 'fancy no': %r", fancy)
        if self.verbose:
            await client.command("verbose yes")
        node = node_from_help(await client.command("help"))
        self._generation += 1
        self._status_with(STATE_CONNECTED, reachable=True, node=node)

    async def _session_poll(self) -> None:
        """Connect, poll once, say ``quit`` (the terminal is free again)."""
        async with self._session_lock:
            try:
                await self._connect()
                await self._poll()
            finally:
                await self._drop_client()

    async def _poll_loop(self) -> None:
        while True:
            _raise_if_cancelling()
            await self._poll()
            await self._nap(self._interval())

    async def _poll(self) -> None:
        client = self._client
        if client is None:
            raise VtClosed("not connected")
        if self._status.node == "mn":
            reply = await client.command("bul")
            result = parse_bul(reply, now=self._clock())
        else:
            reply = await client.command("bc")
            result = parse_bc(reply, now=self._clock())
        self.unknown_lines = result.unknown_lines
        if result.unknown_lines:
            log.debug("mip6d VT: lines not understood: %r", result.unknown_lines)
        bindings = result.bindings
        if self._live is not None:
            bindings = fill_interfaces(bindings, self._live.coa_interfaces())
        self._set_bindings(tuple(bindings))

    async def refresh(self) -> bool:
        """Poll the daemon now; False when it is not connected or the poll failed (the run loop then reconnects)."""
        if not self.hold_connection:
            try:
                await self._session_poll()
            except (VtError, OSError):
                self._kick()
                return False
            return True
        if not self.connected:
            return False
        try:
            await self._poll()
        except VtError:
            self._kick()
            return False
        return True

    # ---- flow bindings / HoA as CoA
    async def set_flow_binding(self, fb: FlowBinding) -> None:
        raise CapabilityError(
            "mainline UMIP has no flow bindings (RFC 6089): no VT command and no mip6d.conf option "
            "installs one, and its Binding Updates carry no Flow Identification options (umip.md section 6)"
        )

    def hoa_as_coa_refusal(self, hoa: str, coa: str, cache: Mapping[str, str] | None = None) -> str:
        """Why ``coa`` (a home address) cannot be registered as the CoA of ``hoa`` with UMIP.

        ``cache``: the HA's bindings ``{hoa: coa}`` when known; a circular
        reference (RFC 6275 section 9.5.1) is then spelled out too.
        """
        reason = HOA_AS_COA_REASON
        if cache is not None:
            path = cycle_path(cache, (hoa, coa))
            if path is not None:
                reason += "; here it would also be circular: " + " -> ".join(path)
        return reason

    # ---- rebind planning
    async def plan_rebind(self, hoa: str, ifname: str, live: LiveInput) -> RebindPlan:
        """Plan "bind ``hoa`` through ``ifname``" for mainline UMIP (see the module docstring).

        Refused (``refusal`` set) when: no configuration writer; mip6d.conf
        unreadable, malformed, not ``NodeConfig MN`` or using ``include``; the
        HoA is not configured or is at home; an ``MnHomeLink`` interface is
        missing (mip6d would exit at start: "invalid interface"); the interface
        is unknown, down, on a home link, has no usable CoA ("not yet" with
        ``pending`` while its addresses are tentative: DAD), or (not a tunnel)
        no default router; the preference order would not change; mip6d's
        VT does not answer or it is not a mobile node.
        """
        view = as_live_view(live, now=self._clock())
        try:
            hoa_c = _canon(hoa)
        except ValueError:
            return RebindPlan(hoa, ifname, refusal=_("{hoa} is not an IPv6 address").format(hoa=repr(hoa)))

        def refuse(reason: str, **kw) -> RebindPlan:
            return RebindPlan(hoa_c, ifname, restart_required=True, refusal=reason, **kw)

        if self.config_writer is None:
            return refuse(_("no way to change mip6d.conf: the privileged helper is not available"))
        try:
            text = await self.config_writer.read_config()
        except Exception as e:  # the helper's error, whatever it is, is the user's answer
            return refuse(_("cannot read mip6d.conf: {why}").format(why=e))
        try:
            conf = mip6conf.parse(text, "mip6d.conf")
        except mip6conf.ConfError as e:
            return refuse(_("mip6d.conf is malformed ({why}); fix it first").format(why=e))
        node = mip6conf.node_config(conf)
        if node != "MN":
            return refuse(_("mip6d.conf configures a {node}, not a mobile node (NodeConfig MN)").format(node=node))
        if any(st.is_include for st in _walk(conf.statements)):
            return refuse(_("mip6d.conf uses include: the interface preferences may be in another file, "
                            "edit them by hand"))
        homes = mip6conf.home_addresses(conf)
        configured = [h.address for h in homes]
        if hoa_c not in configured:
            return refuse(_("{hoa} is not a home address in mip6d.conf (MnHomeLink)").format(hoa=hoa_c))
        if hoa_c in view.hoas_at_home:
            return refuse(_("{hoa} is at home: it has no binding to move (draft section 6.2.3)").format(hoa=hoa_c))
        missing = sorted({h.home_link for h in homes if h.home_link and h.home_link not in view.interfaces})
        if missing:
            return refuse(_("MnHomeLink interface {names} does not exist: mip6d would exit "
                            "at restart (invalid interface)").format(names=", ".join(missing)))
        iface = view.interfaces.get(ifname)
        if iface is None:
            return refuse(_("there is no interface {name}").format(name=ifname))
        if not iface.up:
            return refuse(_("{name} is down or has no carrier").format(name=ifname))
        if iface.home_link:
            return refuse(_("{name} is on a home link: its addresses are not care-of addresses "
                            "(draft section 6.2.3)").format(name=ifname))
        if not iface.coas:
            if iface.tentative:
                return refuse(_("not yet: DAD in progress on {name} ({addresses} tentative); try again in a moment")
                              .format(name=ifname, addresses=", ".join(iface.tentative)), pending=True)
            return refuse(_("{name} has no usable care-of address").format(name=ifname))
        if not iface.routers and not iface.tunnel:
            return refuse(_("{name} has no default router: UMIP only binds through an interface "
                            "with a care-of address and a default router").format(name=ifname))

        listed = dict(mip6conf.interface_preferences(conf))
        before = dict(listed)
        notes: list[str] = []
        if mip6conf.use_all_interfaces(conf):
            for name, li in view.interfaces.items():
                if name not in before and not li.tunnel and name != "lo":
                    before[name] = mip6conf.DEFAULT_PREFERENCE
            notes.append(_("MnUseAllInterfaces: unlisted interfaces count with preference {value}").format(
                value=mip6conf.DEFAULT_PREFERENCE))
        # the file's own list is renumbered (an unlisted interface stays unlisted, after the listed ones)
        written = rebind_preferences(listed, ifname)
        after = dict(before, **written)
        moves = tuple(a for a in configured if a not in view.hoas_at_home)
        staying = tuple(a for a in configured if a in view.hoas_at_home)
        common = dict(preferences_before=before, preferences_after=after, moves=moves, staying=staying,
                      target_coas=iface.coas)
        if preference_order(before) == preference_order(after):
            return refuse(_("nothing to do: {name} already has the best preference "
                            "(UMIP uses it whenever it has a care-of address and a default router)").format(name=ifname),
                          **common)
        problem = mip6conf.preference_order_problem(written)
        if problem is not None:  # never written: the helper would refuse it too
            return refuse(_("the interface preferences would not be a clean order: {why}").format(why=problem),
                          **common)
        if not self.connected:
            return refuse(_("mip6d's virtual terminal does not answer ({state}): "
                            "the change could not be confirmed").format(state=self._status.state), **common)
        if self._status.node != "mn":
            return refuse(_("mip6d does not run as a mobile node"), **common)
        if len(moves) > 1:
            others = ", ".join(a for a in moves if a != hoa_c)
            notes.append(_("UMIP binds every home address through one interface: {hoas} moves too").format(
                hoas=others))
        notes.append(_(RESTART_NOTE))
        return RebindPlan(hoa_c, ifname, restart_required=True, notes=tuple(notes), **common)

    # ---- rebind execution
    def _new_config(self, old: str, plan: RebindPlan) -> str:
        conf = mip6conf.parse(old, "mip6d.conf")
        current = mip6conf.interface_preferences(conf)
        for name, pref in plan.preferences_before.items():
            if name in current and current[name] != pref:
                raise ValueError("mip6d.conf changed since the plan was made; plan again")
        for name, (_, pref) in sorted(plan.changes.items()):
            conf = mip6conf.set_interface_preference(conf, name, pref)
        text = mip6conf.render(conf)
        check = mip6conf.parse(text, "mip6d.conf")  # validated by re-parsing before writing
        got = mip6conf.interface_preferences(check)
        for name, (_, pref) in plan.changes.items():
            if got.get(name) != pref:
                raise ValueError(f"the edited mip6d.conf gives {name} preference {got.get(name)}, not {pref}")
        if [h.address for h in mip6conf.home_addresses(check)] != [h.address for h in mip6conf.home_addresses(conf)]:
            raise ValueError("the edited mip6d.conf changed the home addresses")
        return text

    def _confirmed(self, plan: RebindPlan) -> tuple[dict[str, str], list[str]]:
        """``({hoa: coa} confirmed, [what is missing])`` from the current bindings."""
        targets = set(plan.target_coas)
        done: dict[str, str] = {}
        missing: list[str] = []
        for hoa in plan.moves:
            entries = [b for b in self._bindings if b.hoa == hoa and b.home_registration]
            good = [b for b in entries if b.state is BindingState.REGISTERED
                    and (b.coa in targets or b.interface == plan.interface)]
            if good:
                done[hoa] = good[0].coa
            elif entries:
                b = entries[0]
                missing.append(_("{hoa} is {state} via {coa}").format(hoa=hoa, state=b.state.value, coa=b.coa))
            else:
                missing.append(_("{hoa} has no binding").format(hoa=hoa))
        return done, missing

    async def _wait_back(self, generation: int, deadline: float) -> bool:
        """Wait for a VT connection newer than ``generation``; False at ``deadline``."""
        while not (self._generation > generation and self.connected):
            left = deadline - self._clock()
            if left <= 0:
                return False
            self._kick()
            await asyncio.sleep(min(self.confirm_interval, left))
        return True

    async def _await_confirmation(self, plan: RebindPlan, generation: int, deadline: float) -> tuple[bool, dict[str, str], str]:
        if not await self._wait_back(generation, deadline):
            return False, {}, _("mip6d did not come back within {s} s after the restart ({why})").format(
                s=f"{self.rebind_timeout:g}", why=self._status.error or self._status.state)
        while True:
            await self.refresh()
            done, missing = self._confirmed(plan)
            if not missing:
                return True, done, ""
            left = deadline - self._clock()
            if left <= 0:
                return False, done, _("not confirmed within {s} s: {missing}").format(
                    s=f"{self.rebind_timeout:g}", missing="; ".join(missing))
            await asyncio.sleep(min(self.confirm_interval, left))

    async def rebind(self, plan: RebindPlan) -> RebindResult:
        """Write the plan's preferences, restart mip6d and confirm from ``bul`` (module docstring).

        Confirmed when every HoA of ``plan.moves`` shows a REGISTERED home
        binding through one of ``plan.target_coas`` (or UMIP names
        ``plan.interface`` as its ``dev``), on a VT connection opened after the
        restart; ``elapsed_ms`` runs from the call. On timeout
        (``rebind_timeout``), when mip6d does not come back or the restart
        fails, the previous mip6d.conf is written back and mip6d restarted
        again (``rolled_back``).
        """
        t0 = self._clock()

        def result(confirmed: bool, **kw) -> RebindResult:
            return RebindResult(confirmed, (self._clock() - t0) * 1000.0, **kw)

        if plan.refusal is not None:
            return result(False, reason=plan.refusal)
        writer = self.config_writer
        if writer is None:
            return result(False, reason=_("no way to change mip6d.conf: the privileged helper is not available"))
        async with self._rebind_lock:
            try:
                old = await writer.read_config()
            except Exception as e:
                return result(False, reason=_("cannot read mip6d.conf: {why}").format(why=e))
            try:
                new = self._new_config(old, plan)
            except (mip6conf.ConfError, ValueError) as e:
                return result(False, reason=str(e))
            if new == old:
                return result(False, reason=_("nothing to change in mip6d.conf"))
            generation = self._generation
            deadline = t0 + self.rebind_timeout
            self._fast_reconnect += 1
            try:
                try:
                    if getattr(writer, "announces_rebinds", False):  # the helper tells a running app who asked
                        await writer.write_config(new, rebind=(plan.hoa, plan.interface))
                    else:
                        await writer.write_config(new)
                except Exception as e:
                    return result(False, reason=_("cannot write mip6d.conf: {why}").format(why=e))
                try:
                    await writer.restart_daemon()
                    self._kick()
                    ok, coas, why = await self._await_confirmation(plan, generation, deadline)
                except Exception as e:
                    ok, coas, why = False, {}, _("restarting mip6d failed: {why}").format(why=e)
                if ok:
                    return result(True, new_coa=coas.get(plan.hoa), coas=coas)
                rolled, how = await self._rollback(writer, old, new)
                return result(False, reason=f"{why}; {how}", rolled_back=rolled, coas=coas)
            finally:
                self._fast_reconnect -= 1

    @staticmethod
    def _same_meaning(new: str, old: str) -> str:
        """``new`` with every ``MnIfPreference`` back to what ``old`` meant.

        For a writer that only changes values (the privileged helper cannot
        remove statements): an ``Interface`` statement the change added gets
        0 (unused), or 10 with ``MnUseAllInterfaces``, which is what an
        unlisted interface had (umip.md section 2).
        """
        old_conf = mip6conf.parse(old, "mip6d.conf")
        before = mip6conf.interface_preferences(old_conf)
        unlisted = mip6conf.DEFAULT_PREFERENCE if mip6conf.use_all_interfaces(old_conf) else 0
        conf = mip6conf.parse(new, "mip6d.conf")
        for name, pref in mip6conf.interface_preferences(conf).items():
            want = before.get(name, unlisted)
            if pref != want:
                conf = mip6conf.set_interface_preference(conf, name, want)
        return mip6conf.render(conf)

    async def _rollback(self, writer: ConfigWriter, old: str, new: str) -> tuple[bool, str]:
        try:
            await writer.write_config(old)
        except Exception as e:
            try:
                await writer.write_config(self._same_meaning(new, old))
            except Exception:
                return False, _("restoring the previous mip6d.conf failed too: {why}").format(why=e)
            log.info("mip6d.conf restored by values (%s)", e)
        try:
            await writer.restart_daemon()
        except Exception as e:
            return True, _("previous mip6d.conf restored, but restarting mip6d failed: {why}").format(why=e)
        self._kick()
        return True, _("previous mip6d.conf restored and mip6d restarted")


def _raise_if_cancelling() -> None:
    """End a loop whose cancellation something swallowed (defence in depth, see ``_nap``)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _walk(stmts) -> Iterator:
    for st in stmts:
        yield st
        if st.block:
            yield from _walk(st.block)
