"""The mobile node daemon's control API on the system D-Bus (``mhgui-mn``).

Bus name, object and interface::

    io.github.mhgui.MHGui.MobileNode1   /io/github/mhgui/MHGui/MobileNode1   io.github.mhgui.MHGui.MobileNode1

Results are JSON text where a structure would make the signature long: the
shapes can grow keys without a new interface version. Addresses are RFC 5952
text, times in the units their key names say (``_ms``: milliseconds, else
seconds).

Reading (open to every local user by the D-Bus policy, no polkit)::

    GetBindings() -> s      JSON list, one object per home address (MobileNodeDaemon.bindings()):
                            hoa, state ("registered", "waiting-ack", "unbound", "refused"), coa,
                            interface, ifindex, family (6/4), seq, lifetime (s, granted),
                            remaining (s), nat (bool), error, pending_interface, preference,
                            backup, never (lists of interface names), default_route (bool)
    GetUplinks() -> s       JSON list, one object per access interface (MobileNodeDaemon.uplinks()):
                            name, ifindex, carrier, coa6, coa4, family, mtu, metered,
                            reachable (null = not known yet), rtt_ms, srtt_ms, loss (0..1),
                            probe_interval_ms, probes_sent, probes_answered
    GetStatus() -> s        JSON object: api_version ("1"), version (mhgui's), identity (NAI),
                            home_agent (its address on the home prefix), home_agent_addresses
                            (outer, IPv6/IPv4), port (UDP), home_addresses, config_path
                            (null when not known), counters ({name: count}, {} when none),
                            multiple_care_of (bool: several CoAs per HoA and flow bindings)

Changes (each asks polkit, subject ``("system-bus-name", {"name": caller})``)::

    Rebind(s hoa, s interface) -> (b confirmed, d elapsed_ms, s coa, s interface, s reason)
        action io.github.mhgui.MHGui.engine-rebind. Returns when the home agent's Binding
        Acknowledgement came (confirmed, elapsed_ms as the daemon measured it, the new CoA) or
        the daemon refused / gave up (confirmed false, reason in words; coa ""). Only that HoA
        moves; nothing restarts.
    SetPreferences(s hoa, as preference, as backup, as never) -> ()
        action io.github.mhgui.MHGui.engine-preferences. The HoA's uplink order (draft 7.1, 7.2),
        used at once and saved in mn.toml by the daemon.
    ConfigureHomeAgent(as addresses, s home_agent_address, s identity, u spi, ay key) -> ()
        action io.github.mhgui.MHGui.engine-configure. ``addresses``: the home agent's outer
        addresses (1..2, at most one IPv6 and one IPv4); ``home_agent_address``: its IPv6
        address on the home prefix; ``identity``: this node's NAI (RFC 4283, 1..253 bytes);
        ``spi``: RFC 4285 SPI (256..2^32-1); ``key``: the MN-HA key (16..64 bytes). Writes
        mn.toml (atomically, previous one kept as ``.bak``) and the key file (0600, root),
        then the daemon stops (deregistering) and starts again with them.

Flow bindings (RFC 6089; need ``multiple_care_of = true`` in mn.toml's ``[tunnel]``)::

    GetFlowBindings() -> s  (reading) JSON object: multiple_care_of (bool), weights ({uplink: weight}),
                            limit (words), flows: one object per flow binding: hoa, fid, priority,
                            selector (words), uplinks (asked), bids (confirmed, or null), bound_to
                            (interface of each BID), state (bound, waiting-ack, removing, refused), error
    AddFlowBinding(s hoa, s selector_json, as uplinks) -> (b confirmed, q fid, d elapsed_ms, s reason)
        action engine-rebind (moving one of one's own connections). ``selector_json``: see
        mhgui/engine/flowspec.py (written as the home agent sees the flow: source = the
        correspondent). Several uplinks = a copy on each (bicast). Returns when the home agent
        confirmed or refused that flow (reason in words), or after 10 s.
    ChangeFlowBinding(s hoa, q fid, as uplinks) -> (b, q, d, s)     the same, for an existing FID
    RemoveFlowBinding(s hoa, q fid) -> (b, q, d, s)                 the flow follows the HoA again
    SetLoadSharing(a{su} weights) -> ()
        action engine-preferences. New flows are spread over the uplinks by these weights (each flow
        stays on one uplink); {} turns it off.

Signal::

    Changed(s what, s detail_json)    every change the daemon reports: what is "bindings",
                                      "uplinks", "preferences" or "flows"; detail is its JSON object

Errors (``io.github.mhgui.MHGui.MobileNode1.Error.`` + name, one sentence, never a traceback):
``InvalidArgs`` (an argument is wrong: checked before polkit is asked, so a request that cannot
succeed never prompts for a password), ``Busy`` (more than 4 changes of one caller, or 32 in all, are
already in flight), ``NotAuthorized`` (polkit said no, did not answer within
:data:`POLKIT_TIMEOUT`, or is absent), ``WriteFailed`` (mn.toml or the key file), ``Failed``
(anything unexpected; details in the daemon's log). A wrong signature gets
``org.freedesktop.DBus.Error.InvalidArgs``, an unknown member ``UnknownMethod``.

Who may call at all is the D-Bus policy's decision first
(``resources/io.github.mhgui.MHGui.MobileNode1.conf``): the reading methods, ``Introspect`` and
``Peer`` are open to everyone; the changes only to root and the groups ``netdev`` and ``sudo``.
Authorization is done as in :mod:`mhgui.helper.service`: ``bus.add_message_handler`` (the
caller's unique name is needed for polkit, which a dbus-fast ``ServiceInterface`` does not give).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from dbus_fast import BusType, Message, MessageFlag, NameFlag, RequestNameReply
from dbus_fast.aio import MessageBus

from .. import polkit
from ..dbus_service import STANDARD_INTERFACES_XML, claim_call
# the home agent setting and its check, pure (the first-run form uses them without D-Bus): re-exported
from .ha_setting import ERROR_PREFIX, ControlFailure, HomeAgentSetting, _address, _invalid, check_home_agent_setting
from .limits import KeyedBuckets

__all__ = [
    "ACTION_CONFIGURE",
    "ACTION_PREFERENCES",
    "ACTION_REBIND",
    "BUS_NAME",
    "ERROR_PREFIX",
    "INTERFACE",
    "OBJECT_PATH",
    "ControlFailure",
    "HomeAgentSetting",
    "MobileNodeService",
    "check_hoa",
    "check_home_agent_setting",
    "check_interface_name",
    "serve",
]

log = logging.getLogger("mhgui.engine.mn.dbus")

BUS_NAME = "io.github.mhgui.MHGui.MobileNode1"
OBJECT_PATH = "/io/github/mhgui/MHGui/MobileNode1"
INTERFACE = "io.github.mhgui.MHGui.MobileNode1"
ACTION_REBIND = "io.github.mhgui.MHGui.engine-rebind"
ACTION_PREFERENCES = "io.github.mhgui.MHGui.engine-preferences"
ACTION_CONFIGURE = "io.github.mhgui.MHGui.engine-configure"
API_VERSION = "1"

#: seconds polkit may take (engine-configure may wait for an administrator's password)
POLKIT_TIMEOUT = 120.0
#: seconds a Rebind waits for the daemon (which gives up by itself after 10 s without a BA)
REBIND_TIMEOUT = 30.0
#: seconds close() waits for running calls
CLOSE_GRACE = 5.0
IFNAME_MAX_BYTES = 15
MAX_NAMES = 64  # interface names in one SetPreferences list
MAX_CHANGES_PER_CALLER = 4  # changes (polkit checks, waits for the home agent) in flight for one caller
MAX_CHANGES_IN_FLIGHT = 32  # and in all

INTROSPECTION_XML = f"""<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node name="{OBJECT_PATH}">
  <interface name="{INTERFACE}">
    <method name="GetBindings"><arg name="bindings" type="s" direction="out"/></method>
    <method name="GetUplinks"><arg name="uplinks" type="s" direction="out"/></method>
    <method name="GetStatus"><arg name="status" type="s" direction="out"/></method>
    <method name="Rebind">
      <arg name="hoa" type="s" direction="in"/>
      <arg name="interface" type="s" direction="in"/>
      <arg name="confirmed" type="b" direction="out"/>
      <arg name="elapsed_ms" type="d" direction="out"/>
      <arg name="coa" type="s" direction="out"/>
      <arg name="interface" type="s" direction="out"/>
      <arg name="reason" type="s" direction="out"/>
    </method>
    <method name="SetPreferences">
      <arg name="hoa" type="s" direction="in"/>
      <arg name="preference" type="as" direction="in"/>
      <arg name="backup" type="as" direction="in"/>
      <arg name="never" type="as" direction="in"/>
    </method>
    <method name="ConfigureHomeAgent">
      <arg name="addresses" type="as" direction="in"/>
      <arg name="home_agent_address" type="s" direction="in"/>
      <arg name="identity" type="s" direction="in"/>
      <arg name="spi" type="u" direction="in"/>
      <arg name="key" type="ay" direction="in"/>
    </method>
    <method name="GetFlowBindings"><arg name="flow_bindings" type="s" direction="out"/></method>
    <method name="AddFlowBinding">
      <arg name="hoa" type="s" direction="in"/>
      <arg name="selector_json" type="s" direction="in"/>
      <arg name="uplinks" type="as" direction="in"/>
      <arg name="confirmed" type="b" direction="out"/>
      <arg name="fid" type="q" direction="out"/>
      <arg name="elapsed_ms" type="d" direction="out"/>
      <arg name="reason" type="s" direction="out"/>
    </method>
    <method name="ChangeFlowBinding">
      <arg name="hoa" type="s" direction="in"/>
      <arg name="fid" type="q" direction="in"/>
      <arg name="uplinks" type="as" direction="in"/>
      <arg name="confirmed" type="b" direction="out"/>
      <arg name="fid" type="q" direction="out"/>
      <arg name="elapsed_ms" type="d" direction="out"/>
      <arg name="reason" type="s" direction="out"/>
    </method>
    <method name="RemoveFlowBinding">
      <arg name="hoa" type="s" direction="in"/>
      <arg name="fid" type="q" direction="in"/>
      <arg name="confirmed" type="b" direction="out"/>
      <arg name="fid" type="q" direction="out"/>
      <arg name="elapsed_ms" type="d" direction="out"/>
      <arg name="reason" type="s" direction="out"/>
    </method>
    <method name="SetLoadSharing">
      <arg name="weights" type="a{{su}}" direction="in"/>
    </method>
    <signal name="Changed">
      <arg name="what" type="s"/>
      <arg name="detail_json" type="s"/>
    </signal>
  </interface>
{STANDARD_INTERFACES_XML}</node>
"""


# --------------------------------------------------------------------------- validation (pure)


def check_interface_name(name: object, what: str = "interface") -> str:
    """``name`` when the kernel would take it (1..15 bytes, not ``.``/``..``, no ``/``, ``:``,
    whitespace or control characters), else :class:`ControlFailure` ``InvalidArgs``."""
    if not isinstance(name, str) or not name:
        raise _invalid(f"{what}: an interface name is empty")
    shown = ascii(name[:40])
    if len(name.encode("utf-8", "surrogatepass")) > IFNAME_MAX_BYTES:
        raise _invalid(f"{what}: interface name {shown} is longer than {IFNAME_MAX_BYTES} bytes")
    if name in (".", ".."):
        raise _invalid(f"{what}: interface name {shown} is not allowed")
    for ch in name:
        if ch in "/:" or ch.isspace() or not ch.isprintable():
            raise _invalid(f"{what}: interface name {shown} contains {ascii(ch)}, which the kernel refuses")
    return name


def check_hoa(text: object) -> str:
    """The RFC 5952 text of the home address ``text`` (a unicast IPv6 address without a zone), else
    ``InvalidArgs``."""
    a = _address(text, "home address", 6)
    if a.scope_id is not None:
        raise _invalid(f"home address: {ascii(text)} is not an IPv6 address a home address can be (it has a zone)")
    if a.is_multicast or a.is_unspecified or a.is_loopback or a.is_link_local:
        raise _invalid(f"home address: {a.compressed} is not an IPv6 address a home address can be "
                       "(not global unicast)")
    return a.compressed


def _names(values: object, what: str) -> list[str]:
    if not isinstance(values, list):
        raise _invalid(f"{what}: a list of interface names is needed")
    if len(values) > MAX_NAMES:
        raise _invalid(f"{what}: {len(values)} interface names, at most {MAX_NAMES}")
    out: list[str] = []
    for v in values:
        name = check_interface_name(v, what)
        if name in out:
            raise _invalid(f"{what}: {name} is listed twice")
        out.append(name)
    return out


def _fid(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 0xFFFF:
        raise _invalid(f"a flow binding's FID is 1..65535, not {value!r}")
    return value


def _check_add_flow(hoa: object, selector: object, uplinks: object) -> tuple:
    from .flowspec import selector_from_json
    if not isinstance(selector, str):
        raise _invalid("the selector is JSON text")
    try:
        ts = selector_from_json(selector)
    except ValueError as e:
        raise _invalid(f"selector: {e}") from None
    return check_hoa(hoa), ts, _names(uplinks, "uplinks")


def _check_change_flow(hoa: object, fid: object, uplinks: object) -> tuple:
    return check_hoa(hoa), _fid(fid), _names(uplinks, "uplinks")


def _check_weights(weights: object) -> tuple:
    if not isinstance(weights, dict) or len(weights) > MAX_NAMES:
        raise _invalid(f"weights: at most {MAX_NAMES} interfaces")
    out = {}
    for name, w in weights.items():
        check_interface_name(name)
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 1000:
            raise _invalid(f"weight of {name}: 0..1000, not {w!r}")
        out[name] = w
    return (out,)


def _json(value: object) -> str:
    """JSON text; anything the encoder does not know (an address object, a tuple's items) as its str()."""
    return json.dumps(value, default=str, separators=(",", ":"))


def _cfg_value(cfg: object, name: str, default: Any = None) -> Any:
    """``cfg.name`` or ``cfg.node.name`` (mn.toml's ``[node]`` keys), else ``default``."""
    if cfg is None:
        return default
    if hasattr(cfg, name):
        return getattr(cfg, name)
    node = getattr(cfg, "node", None)
    return getattr(node, name, default) if node is not None else default


# --------------------------------------------------------------------------- configuration files


def write_home_agent_setting(path: str, setting: HomeAgentSetting) -> None:
    """Write ``setting`` into the mn.toml at ``path`` and its key file (runs in an executor).

    The current file is read (so that home addresses, probes and tunnel stay as they are) and its
    ``[node]`` and ``[home_agent]`` changed; mn.toml is written first (validated by the config
    module before anything is written; atomically, the previous one kept as ``mn.toml.bak``), then
    the key file (hex, mode 0600, atomically). When the key cannot be written, the previous mn.toml
    is written back. ``ControlFailure`` ``InvalidArgs`` (the result does not validate) or
    ``WriteFailed`` (I/O, or the current file does not load).
    """
    from . import config as engine_config

    try:
        cfg = engine_config.load_mn_config(path)
    except engine_config.EngineConfigError as e:
        raise ControlFailure("WriteFailed", f"the current configuration does not load, nothing written: {e}") from None
    ha = dataclasses.replace(cfg.home_agent, addresses=setting.addresses, address=setting.home_agent_address)
    new = dataclasses.replace(cfg, identity=setting.identity, spi=setting.spi, home_agent=ha)
    try:
        engine_config.write_mn_config(path, new)
    except engine_config.EngineConfigError as e:
        raise _invalid(f"refused: {e}") from None
    except OSError as e:
        raise ControlFailure("WriteFailed", f"cannot write {path}: {e.strerror or e}; nothing changed") from None
    key_file = new.key_file
    try:
        engine_config.write_key_file(key_file, setting.key)
        st = os.stat(key_file)
        if st.st_mode & 0o077 or st.st_uid != os.geteuid():
            raise OSError(f"it is mode {st.st_mode & 0o777:04o}, owner uid {st.st_uid} after writing")
    except (OSError, ValueError) as e:
        try:
            engine_config.write_mn_config(path, cfg)
            restored = f"the previous {os.path.basename(path)} was put back"
        except (OSError, engine_config.EngineConfigError) as e2:
            restored = f"putting the previous {os.path.basename(path)} back failed too ({e2})"
        raise ControlFailure("WriteFailed", f"cannot write the key file {key_file}: "
                                            f"{getattr(e, 'strerror', None) or e}; {restored}") from None


# --------------------------------------------------------------------------- the service


@dataclass(frozen=True)
class _Method:
    in_signature: str
    out_signature: str
    action: str | None  # None: no polkit (reading)
    impl: Callable[..., Awaitable[object]]
    check: Callable[..., tuple] | None = None  # validates the body before polkit, returns the impl's args


class MobileNodeService:
    """The D-Bus side of a :class:`~mhgui.engine.mnd.MobileNodeDaemon` (module docstring).

    ``daemon`` needs ``bindings()``, ``uplinks()``, ``async rebind(hoa, ifname)`` (a RebindDone),
    ``set_preferences(hoa, preference, backup, never)`` (ValueError with a sentence),
    ``subscribe(listener)``, ``request_restart()`` and ``cfg``; ``port`` and ``core.counters`` are
    used when present. ``config_path``: the mn.toml the daemon runs with (ConfigureHomeAgent
    writes it; None: ``daemon.config_path`` or ``daemon.cfg.path`` when set, else refused).
    """

    def __init__(self, bus: MessageBus, daemon: Any, config_path: str | None = None) -> None:
        self.bus = bus
        self.daemon = daemon
        self.config_path = (config_path or getattr(daemon, "config_path", None)
                            or getattr(getattr(daemon, "cfg", None), "path", None))
        self._tasks: set[asyncio.Task] = set()
        self._changing: collections.Counter[str] = collections.Counter()  # changes in flight per caller
        self._refusals = KeyedBuckets(1.0 / 10, 3.0)  # refusal log lines: 3 per caller, then one per 10 s
        self._configure_lock = asyncio.Lock()
        self._closed = False
        self._methods: dict[str, _Method] = {
            "GetBindings": _Method("", "s", None, self.get_bindings),
            "GetUplinks": _Method("", "s", None, self.get_uplinks),
            "GetStatus": _Method("", "s", None, self.get_status),
            "Rebind": _Method("ss", "bdsss", ACTION_REBIND, self.rebind, self._check_rebind),
            "SetPreferences": _Method("sasasas", "", ACTION_PREFERENCES, self.set_preferences,
                                      self._check_preferences),
            "ConfigureHomeAgent": _Method("asssuay", "", ACTION_CONFIGURE, self.configure_home_agent,
                                          lambda *body: (check_home_agent_setting(
                                              *body, home_addresses=self._home_addresses()),)),
            "GetFlowBindings": _Method("", "s", None, self.get_flow_bindings),
            "AddFlowBinding": _Method("ssas", "bqds", ACTION_REBIND, self.add_flow_binding, _check_add_flow),
            "ChangeFlowBinding": _Method("sqas", "bqds", ACTION_REBIND, self.change_flow_binding,
                                         _check_change_flow),
            "RemoveFlowBinding": _Method("sq", "bqds", ACTION_REBIND, self.remove_flow_binding,
                                         lambda hoa, fid: (check_hoa(hoa), _fid(fid))),
            "SetLoadSharing": _Method("a{su}", "", ACTION_PREFERENCES, self.set_load_sharing, _check_weights),
        }

    # ----------------------------------------------------------------- events → signal

    def on_daemon_change(self, what: str, detail: dict) -> None:
        """The daemon's listener: emit ``Changed(what, detail_json)``."""
        if self._closed or not self.bus.connected:
            return
        try:
            msg = Message.new_signal(OBJECT_PATH, INTERFACE, "Changed", "ss", [str(what), _json(detail)])
            fut = self.bus.send(msg)
        except Exception as e:  # noqa: BLE001 - a signal lost is logged, the engine goes on
            log.warning("Changed(%s) not sent: %s", what, e)
            return
        fut.add_done_callback(_log_send_failure)

    # ----------------------------------------------------------------- dispatch

    def handle_message(self, msg: Message) -> Message | bool:
        """``bus.add_message_handler`` callback: claims calls to our object."""
        method = claim_call(msg, OBJECT_PATH, INTERFACE, INTROSPECTION_XML, self._methods)
        if not isinstance(method, _Method):
            return method  # not ours (False) or answered at once
        if self._closed:
            return Message.new_error(msg, ERROR_PREFIX + "Failed", "the mobile node daemon is stopping")
        task = asyncio.ensure_future(self._dispatch(msg, method))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _dispatch(self, msg: Message, method: _Method) -> None:
        member = msg.member or ""
        sender = msg.sender or ""
        counted = False
        try:
            args = method.check(*msg.body) if method.check is not None else tuple(msg.body)
            if method.action is not None:
                # each change asks polkit and may wait for the home agent: bounded per caller and in all, so
                # that a flood cannot exhaust the bus's pending replies (the bus would drop our connection)
                if self._changing[sender] >= MAX_CHANGES_PER_CALLER or \
                        sum(self._changing.values()) >= MAX_CHANGES_IN_FLIGHT:
                    raise ControlFailure("Busy", "too many requests at once; try again when the earlier ones "
                                                 "have been answered")
                self._changing[sender] += 1
                counted = True
                await self._authorize(sender, method.action, member)
                log.info("%s by %s (uid %s)", member, sender, await self._caller_uid(sender))
            result = await method.impl(*args)
            body = [] if not method.out_signature else list(result) if isinstance(result, tuple) else [result]
            reply = Message.new_method_return(msg, method.out_signature, body)
        except ControlFailure as e:
            if self._refusals.take(sender, asyncio.get_running_loop().time()):
                log.warning("%s from %s: %s", member, sender, e)
            reply = Message.new_error(msg, e.name, e.message)
        except Exception:
            log.exception("internal error in %s", member)
            reply = Message.new_error(msg, ERROR_PREFIX + "Failed",
                                      f"{member} failed with an internal error; see the log of mhgui-mn")
        finally:
            if counted:
                self._changing[sender] -= 1
                if self._changing[sender] <= 0:
                    del self._changing[sender]
        if msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            return
        try:
            await self.bus.send(reply)
        except Exception as e:  # noqa: BLE001 - the bus went away: nobody to tell
            log.warning("cannot send the reply to %s: %s", sender, e)

    async def _authorize(self, sender: str, action: str, member: str) -> None:
        """polkit's CheckAuthorization for ``sender``; ControlFailure NotAuthorized unless it says yes."""
        try:
            await polkit.check_authorization(self.bus, sender, action, member, POLKIT_TIMEOUT)
        except polkit.NotAuthorized as e:
            raise ControlFailure("NotAuthorized", str(e)) from None

    async def _caller_uid(self, sender: str) -> str:
        return await polkit.caller_uid(self.bus, sender)

    # ----------------------------------------------------------------- argument checks (before polkit)

    @staticmethod
    def _check_rebind(hoa: object, interface: object) -> tuple[str, str]:
        return check_hoa(hoa), check_interface_name(interface)

    @staticmethod
    def _check_preferences(hoa: object, preference: object, backup: object, never: object) -> tuple:
        return (check_hoa(hoa), _names(preference, "preference"), _names(backup, "backup"),
                _names(never, "never"))

    # ----------------------------------------------------------------- methods

    async def get_bindings(self) -> str:
        return _json(list(self.daemon.bindings()))

    async def get_uplinks(self) -> str:
        return _json(list(self.daemon.uplinks()))

    def _home_addresses(self) -> list[str]:
        """The home addresses the daemon runs with (its configuration's), as text."""
        cfg = getattr(self.daemon, "cfg", None)
        return [str(getattr(h, "address", h)) for h in (getattr(cfg, "home_addresses", None) or ())]

    async def get_status(self) -> str:
        from .. import __version__
        d = self.daemon
        cfg = getattr(d, "cfg", None)
        ha = getattr(cfg, "home_agent", None)
        counters = getattr(getattr(d, "core", None), "counters", None)
        homes = [getattr(h, "address", str(h)) for h in (getattr(cfg, "home_addresses", None) or ())]
        return _json({
            "api_version": API_VERSION,
            "version": __version__,
            "identity": _cfg_value(cfg, "identity"),
            "home_agent": getattr(ha, "address", None),
            "home_agent_addresses": list(getattr(ha, "addresses", ()) or ()),
            "port": getattr(d, "port", None) or getattr(ha, "port", None),
            "home_addresses": homes,
            "config_path": self.config_path,
            "counters": dict(counters) if counters else {},
            "multiple_care_of": bool(getattr(getattr(d, "core", None), "mcoa", False)),
        })

    async def rebind(self, hoa: str, interface: str) -> tuple[bool, float, str, str, str]:
        try:
            done = await asyncio.wait_for(self.daemon.rebind(hoa, interface), REBIND_TIMEOUT)
        except asyncio.TimeoutError:
            return (False, REBIND_TIMEOUT * 1000.0, "", interface,
                    f"the mobile node did not answer the request within {REBIND_TIMEOUT:g} s")
        return (bool(done.confirmed), float(done.elapsed_ms or 0.0), done.coa or "", done.interface or interface,
                done.reason or "")

    async def set_preferences(self, hoa: str, preference: list[str], backup: list[str], never: list[str]) -> None:
        try:
            self.daemon.set_preferences(hoa, preference, backup, never)
        except ValueError as e:
            raise _invalid(str(e)) from None

    async def get_flow_bindings(self) -> str:
        d = self.daemon
        core = getattr(d, "core", None)
        return _json({"multiple_care_of": bool(getattr(core, "mcoa", False)),
                      "weights": dict(getattr(core, "weights", {}) or {}),
                      "limit": "the whole flow state of a home address fits in one Binding Update (2048 bytes)",
                      "flows": list(d.flows()) if hasattr(d, "flows") else []})

    async def _flow_call(self, coro) -> tuple[bool, int, float, str]:
        try:
            done = await asyncio.wait_for(coro, REBIND_TIMEOUT)
        except asyncio.TimeoutError:
            return (False, 0, REBIND_TIMEOUT * 1000.0,
                    f"the mobile node did not answer the request within {REBIND_TIMEOUT:g} s")
        return (bool(done.confirmed), int(getattr(done, "fid", 0) or 0), float(done.elapsed_ms or 0.0),
                done.reason or "")

    async def add_flow_binding(self, hoa: str, selector, uplinks: list[str]) -> tuple[bool, int, float, str]:
        return await self._flow_call(self.daemon.add_flow(hoa, selector, uplinks))

    async def change_flow_binding(self, hoa: str, fid: int, uplinks: list[str]) -> tuple[bool, int, float, str]:
        return await self._flow_call(self.daemon.change_flow(hoa, fid, uplinks))

    async def remove_flow_binding(self, hoa: str, fid: int) -> tuple[bool, int, float, str]:
        return await self._flow_call(self.daemon.remove_flow(hoa, fid))

    async def set_load_sharing(self, weights: dict[str, int]) -> None:
        try:
            self.daemon.set_weights(weights)
        except ValueError as e:
            raise _invalid(str(e)) from None

    async def configure_home_agent(self, setting: HomeAgentSetting) -> None:
        path = self.config_path
        if not path:
            raise ControlFailure("Failed", "the configuration file of this mobile node is not known "
                                           "(the daemon was started without one); nothing written")
        async with self._configure_lock:
            await asyncio.get_running_loop().run_in_executor(None, write_home_agent_setting, path, setting)
            log.info("home agent %s (%s), identity %s, SPI %d written to %s; restarting",
                     setting.home_agent_address, ", ".join(setting.addresses), setting.identity, setting.spi, path)
            self.daemon.request_restart()

    # ----------------------------------------------------------------- life

    async def close(self) -> None:
        """Release the name, let running calls finish (up to :data:`CLOSE_GRACE` s), disconnect. Idempotent."""
        if self._closed:
            return
        self._closed = True
        unsubscribe = getattr(self.daemon, "unsubscribe", None)
        if callable(unsubscribe):
            with contextlib.suppress(Exception):
                unsubscribe(self.on_daemon_change)
        if self.bus.connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.bus.release_name(BUS_NAME), CLOSE_GRACE)
        if self._tasks:
            done, pending = await asyncio.wait(set(self._tasks), timeout=CLOSE_GRACE)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending)
        self.bus.remove_message_handler(self.handle_message)
        if self.bus.connected:
            self.bus.disconnect()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.bus.wait_for_disconnect(), CLOSE_GRACE)


def _log_send_failure(fut: asyncio.Future) -> None:
    if fut.cancelled():
        return
    e = fut.exception()
    if e is not None:
        log.warning("Changed signal not sent: %s", e)


async def serve(daemon: Any, bus_address: str | None = None, *, config_path: str | None = None) -> MobileNodeService:
    """Offer ``daemon``'s control API on the system bus (``bus_address``, else $DBUS_SYSTEM_BUS_ADDRESS,
    else the system bus) until :meth:`MobileNodeService.close`.

    Raises ``OSError``/``RuntimeError`` when the bus cannot be reached or the name is owned by someone
    else (another mhgui-mn, or a policy that does not let this user own it).
    """
    bus = await MessageBus(bus_address=bus_address, bus_type=BusType.SYSTEM).connect()
    service = MobileNodeService(bus, daemon, config_path)
    bus.add_message_handler(service.handle_message)
    try:
        reply = await bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE)
    except Exception as e:
        bus.disconnect()
        raise RuntimeError(f"cannot own {BUS_NAME}: {e}") from None
    if reply is not RequestNameReply.PRIMARY_OWNER:
        bus.disconnect()
        raise RuntimeError(f"{BUS_NAME} is already owned by another process ({reply.name})")
    daemon.subscribe(service.on_daemon_change)
    log.info("control API on the system bus as %s", BUS_NAME)
    return service
