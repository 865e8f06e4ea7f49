"""asyncio client of mhgui's privileged helper (:mod:`mhgui.helper.service`), with dbus-fast.

::

    async with HelperClient() as helper:            # the system bus ($DBUS_SYSTEM_BUS_ADDRESS)
        text = await helper.read_config()
        text = await helper.set_interface_preferences({"eth1": 1, "wlan0": 2})
        job = await helper.restart_daemon()
        job = await helper.restart_engine()         # mhgui's mobility engine (mhgui-mn.service)
        info = await helper.status()                # {"config_path": ..., "unit": ..., "last_error": ...}
        rule_id = await helper.add_steering_rule("2001:db8:5::/48", "wlan0")   # or a list of prefixes
        rules = await helper.list_steering_rules()  # [{"id", "destinations", "interface", "created",
                                                    #   "in_kernel", "status"}, ...]
        await helper.remove_steering_rule(rule_id)

Exceptions, all :class:`HelperError` (``error_name`` is the D-Bus error name
when there is one, ``message`` the one-line text):

- :class:`HelperAbsent`: no system bus, the helper's name has no owner and
  cannot be activated (``ServiceUnknown``, ``NameHasNoOwner``, ``Spawn.*``;
  also what a Flatpak without ``--system-talk-name`` sees), or the connection
  was lost;
- :class:`NotAuthorized`: polkit refused (``...Helper1.Error.NotAuthorized``),
  or the bus policy refused the call (``org.freedesktop.DBus.Error.AccessDenied``:
  the user is in none of the groups the policy allows);
- :class:`InvalidArguments`: a bad interface name or value, more than 64
  interfaces in one call, or a result whose interfaces in use are not
  numbered 1..k each once (ties, gaps; the helper checks the whole resulting
  file with :func:`mhgui.core.mip6conf.preference_order_problem`) (steering:
  also a bad destination);
- :class:`SteeringConflict`: the destination is already in another steering rule;
- :class:`NoSuchRule`: no steering rule has that id;
- :class:`WouldStopDaemon`: ``interfaces`` lists the missing interfaces;
- :class:`HelperError` for everything else (``InvalidConfig``, ``ReadFailed``
  (also: mip6d.conf is a symbolic link, not a regular file, or not root's),
  ``WriteFailed``, ``RestartFailed``, ``NoReply``, a timeout...). The helper's
  messages name files and lines but never quote their text.

:class:`HelperConfigWriter` adapts the client to the UMIP driver's injected
writer (``read_config``, ``write_config``, ``restart_daemon``); it never sends
file text to the privileged side, only ``MnIfPreference`` values.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Mapping, Sequence

from dbus_fast import BusType, Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus

from mhgui.core import mip6conf
from mhgui.i18n import _

__all__ = [
    "BUS_NAME",
    "HelperAbsent",
    "HelperClient",
    "HelperConfigWriter",
    "HelperError",
    "InvalidArguments",
    "NoSuchRule",
    "NotAuthorized",
    "SteeringConflict",
    "UnsupportedChange",
    "WouldStopDaemon",
    "is_dismissed",
    "polkit_refusal",
]

log = logging.getLogger("mhgui.helper.client")

# duplicated from service.py so that the GUI does not import the service module
BUS_NAME = "io.github.mhgui.MHGui.Helper1"
OBJECT_PATH = "/io/github/mhgui/MHGui/Helper1"
INTERFACE = "io.github.mhgui.MHGui.Helper1"
ERROR_PREFIX = INTERFACE + ".Error."

#: Generous: a change may wait for the user to type a password into the polkit agent.
DEFAULT_TIMEOUT = 600.0
_U32_MAX = 0xFFFFFFFF


class HelperError(Exception):
    """The helper failed or could not be reached. ``error_name``: the D-Bus error name, or None."""

    def __init__(self, message: str, error_name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_name = error_name

    def __str__(self) -> str:
        return self.message


class HelperAbsent(HelperError):
    """No system bus, or nobody owns (or can activate) the helper's name."""


class NotAuthorized(HelperError):
    """polkit or the bus policy refused the call; nothing changed. :meth:`explain` says it for a user."""

    def explain(self, what: str, command: str | None = None) -> str:
        """One sentence: what was refused, by whom, and what to do (:func:`polkit_refusal`)."""
        return polkit_refusal(what, command, bus_policy=self.error_name == "org.freedesktop.DBus.Error.AccessDenied",
                              dismissed=is_dismissed(str(self)))


def is_dismissed(message: str) -> bool:
    """The refusal's message (:func:`mhgui.polkit.check_authorization`'s, passed on by the helper and the
    engine) says the user closed the password prompt: nobody refused anything."""
    return "authentication was dismissed" in message


def polkit_refusal(what: str, command: str | None = None, *, bus_policy: bool = False,
                   dismissed: bool = False) -> str:
    """``"Restarting the mobility daemon was refused by your system's policy (polkit): ask an administrator,
    or run: sudo systemctl restart mhgui-mn"``. ``what``: the refused change as the subject of the sentence
    (translated by the caller, e.g. ``_("Restarting the mobility daemon")``); ``command``: what an
    administrator can run instead (None: none is given); ``bus_policy``: the system bus's policy refused
    the call before polkit was asked (the user is in none of the groups it allows); ``dismissed``: the user
    closed polkit's password prompt (nothing was refused: it can be tried again)."""
    if dismissed:
        return _("{what} was cancelled: the password prompt was closed; try again to enter the password").format(
            what=what)
    if bus_policy:
        text = _("{what} was refused by the system bus policy: your user is in none of the groups allowed to ask "
                 "(netdev or sudo); ask an administrator to add you").format(what=what)
    else:
        text = _("{what} was refused by your system's policy (polkit): ask an administrator").format(what=what)
    if command:
        text += _(", or run: {command}").format(command=command)
    return text


class InvalidArguments(HelperError):
    """A bad interface name or preference value; nothing changed."""


class WouldStopDaemon(HelperError):
    """mip6d would exit with this configuration: ``interfaces`` do not exist on the system."""

    def __init__(self, message: str, error_name: str | None = None) -> None:
        super().__init__(message, error_name)
        tail = message.rsplit("on this system:", 1)[-1]
        self.interfaces: tuple[str, ...] = tuple(re.findall(r'"([^"]*)"', tail))


class SteeringConflict(HelperError):
    """A destination of the new steering rule is already in another rule; nothing changed."""


class NoSuchRule(HelperError):
    """No steering rule has the given id (already removed?)."""


class UnsupportedChange(HelperError):
    """:meth:`HelperConfigWriter.write_config` got text that differs in more than ``MnIfPreference`` values."""


_ABSENT = {
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.Disconnected",
    "org.freedesktop.DBus.Error.NoServer",
}
_BY_NAME: dict[str, type[HelperError]] = {
    ERROR_PREFIX + "NotAuthorized": NotAuthorized,
    "org.freedesktop.DBus.Error.AccessDenied": NotAuthorized,
    ERROR_PREFIX + "InvalidArgs": InvalidArguments,
    "org.freedesktop.DBus.Error.InvalidArgs": InvalidArguments,
    ERROR_PREFIX + "WouldStopDaemon": WouldStopDaemon,
    ERROR_PREFIX + "Conflict": SteeringConflict,
    ERROR_PREFIX + "NoSuchRule": NoSuchRule,
}


def _error_from_reply(reply: Message) -> HelperError:
    name = reply.error_name or "org.freedesktop.DBus.Error.Failed"
    text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else name
    if name in _ABSENT or name.startswith("org.freedesktop.DBus.Error.Spawn."):
        return HelperAbsent(_("the mhgui helper ({name}) is not available: {why}").format(name=BUS_NAME, why=text), name)
    if name == "org.freedesktop.DBus.Error.AccessDenied":
        return NotAuthorized(
            _("the system bus policy does not let this user talk to the mhgui helper "
              "(see io.github.mhgui.MHGui.Helper1.conf): {why}").format(why=text), name)
    if name == "org.freedesktop.DBus.Error.NoReply":
        return HelperError(_("the mhgui helper did not answer: {why}").format(why=text), name)
    return _BY_NAME.get(name, HelperError)(text, name)


class HelperClient:
    """Calls the helper on the system bus (``bus_address`` overrides ``$DBUS_SYSTEM_BUS_ADDRESS``).

    Connects on first use; :meth:`close` (or ``async with``) disconnects. An
    existing ``bus`` may be given instead (it is then not closed here).
    """

    def __init__(self, bus_address: str | None = None, *, bus: MessageBus | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self._address = bus_address
        self._bus = bus
        self._own_bus = bus is None
        self._connect_lock = asyncio.Lock()
        self.timeout = timeout

    async def __aenter__(self) -> "HelperClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def unique_name(self) -> str | None:
        """This client's unique bus name (what the helper gives polkit as the subject)."""
        return self._bus.unique_name if self._bus is not None else None

    async def connect(self) -> MessageBus:
        async with self._connect_lock:
            if self._bus is not None and self._bus.connected:
                return self._bus
            if not self._own_bus:
                raise HelperAbsent(_("the connection to the system bus is closed"))
            try:
                self._bus = await asyncio.wait_for(
                    MessageBus(bus_address=self._address, bus_type=BusType.SYSTEM).connect(), 30.0)
            except Exception as e:
                self._bus = None
                where = self._address or _("the system bus")
                raise HelperAbsent(_("cannot connect to {where}: {why}").format(where=where, why=e or type(e).__name__)) \
                    from e
            return self._bus

    async def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None and self._own_bus and bus.connected:
            bus.disconnect()
            try:
                await asyncio.wait_for(bus.wait_for_disconnect(), 5.0)
            except Exception:
                pass

    async def _call(self, member: str, signature: str = "", body: list[Any] | None = None) -> list[Any]:
        bus = await self.connect()
        msg = Message(
            destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE, member=member,
            signature=signature, body=body or [], flags=MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION,
        )
        try:
            reply = await asyncio.wait_for(bus.call(msg), self.timeout)
        except asyncio.TimeoutError:
            raise HelperError(_("the mhgui helper did not answer {call} within {s} s").format(
                call=member, s=f"{self.timeout:g}")) from None
        except Exception as e:
            if not bus.connected:
                raise HelperAbsent(_("lost the connection to the system bus: {why}").format(
                    why=e or type(e).__name__)) from e
            raise HelperError(_("cannot call {call}: {why}").format(call=member, why=e or type(e).__name__)) from e
        if reply is None:
            raise HelperAbsent(_("lost the connection to the system bus"))
        if reply.message_type is MessageType.ERROR:
            raise _error_from_reply(reply)
        return list(reply.body)

    async def read_config(self) -> str:
        """The daemon's mip6d.conf text."""
        return (await self._call("ReadConfig"))[0]

    async def set_interface_preferences(self, prefs: Mapping[str, int], *,
                                        rebind: tuple[str, str] | None = None) -> str:
        """Set ``MnIfPreference`` of each interface (0..10; 1 best, 0 unused); returns the new file text.

        ``rebind``: ``(hoa, interface)`` when the write is a user's rebind (``SetInterfacePreferencesForRebind``:
        the helper announces it, RebindRequested, when this client restarts mip6d next, so that a running app
        logs the move as the user's). A helper without that method gets the plain write.

        At most 64 names. The helper refuses (:class:`InvalidArguments`) a
        result in which the interfaces in use (above 0) are not exactly 1..k,
        each once, over the whole file: send every interface whose value must
        change for the order to be clean, not only the one that moved.
        """
        body: dict[str, int] = {}
        for name, value in prefs.items():
            if not isinstance(name, str):
                raise InvalidArguments(f"interface name {name!r} is not a string")
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U32_MAX:
                raise InvalidArguments(f"MnIfPreference of {name!r} must be 0..10, not {value!r}")
            body[name] = value
        if rebind is not None:
            try:
                return (await self._call("SetInterfacePreferencesForRebind", "a{su}ss",
                                         [body, str(rebind[0]), str(rebind[1])]))[0]
            except HelperError as e:
                if e.error_name != "org.freedesktop.DBus.Error.UnknownMethod":
                    raise
                log.info("the helper announces no rebinds (an older one): plain write")
        return (await self._call("SetInterfacePreferences", "a{su}", [body]))[0]

    async def interface_preferences(self) -> dict[str, int]:
        """``{interface: MnIfPreference}`` of mip6d.conf as the helper reads it ({} when the file does not exist);
        asks no polkit (not secret): what a sandboxed app needs of the file for its preferences dialog."""
        (raw,) = await self._call("GetInterfacePreferences")
        return {str(k): int(v) for k, v in raw.items()}

    async def restart_daemon(self) -> str:
        """Restart mip6d; returns the systemd job path, or ``"pid N"`` for the helper's fallback."""
        return (await self._call("RestartDaemon"))[0]

    async def restart_engine(self) -> str:
        """Restart (or start) mhgui's mobility engine, mhgui-mn (the helper's ``--engine-unit``) through systemd;
        returns the job path. :class:`HelperError` ``RestartFailed`` without systemd."""
        return (await self._call("RestartEngine"))[0]

    async def status(self) -> dict[str, Any]:
        """``config_path``, ``backup_path``, ``unit``, ``restart_method`` (systemd|command|none),
        ``last_error`` ("" when none), ``version``."""
        (raw,) = await self._call("GetStatus")
        return {k: v.value for k, v in raw.items()}

    async def add_steering_rule(self, destinations: str | Sequence[str], interface: str,
                                source: str | None = None, *, protocol: str | None = None,
                                ports: str | None = None, application: str | None = None) -> str:
        """Steer new connections to ``destinations`` (a prefix or address, or a list of up to 16,
        IPv6 and/or IPv4; may be empty with a selector below) through ``interface``, optionally from
        ``source`` (a prefix or address of the interface's); returns the rule's id. The helper validates.

        Selectors (issue 15.6; :mod:`mhgui.core.steering_selectors`): ``protocol`` ``tcp``/``udp``,
        ``ports`` destination ports (``"443,8000-8100"``), ``application`` (``app:ID`` or
        ``cgroup:PATH``). Without them the request is what older helpers take."""
        extra: dict[str, Variant] = {}
        for key, value in (("protocol", protocol), ("ports", ports), ("application", application)):
            if value in (None, ""):
                continue
            if not isinstance(value, str):
                raise InvalidArguments(f"{key} {value!r} is not a string")
            extra[key] = Variant("s", value)
        if extra and not destinations:
            request: dict[str, Variant] = {"destinations": Variant("as", [])}
        elif isinstance(destinations, str):
            request = {"destination": Variant("s", destinations)}
        else:
            dests = list(destinations)
            if not all(isinstance(d, str) for d in dests):
                raise InvalidArguments("destinations must be strings")
            request = {"destinations": Variant("as", dests)}
        if not isinstance(interface, str):
            raise InvalidArguments(f"interface name {interface!r} is not a string")
        request["interface"] = Variant("s", interface)
        if source is not None:
            if not isinstance(source, str):
                raise InvalidArguments(f"source {source!r} is not a string")
            request["source"] = Variant("s", source)
        request.update(extra)
        return (await self._call("AddSteeringRule", "a{sv}", [request]))[0]

    async def remove_steering_rule(self, rule_id: str) -> None:
        """Remove a steering rule; connections it steered lose their route through its interface."""
        if not isinstance(rule_id, str):
            raise InvalidArguments(f"rule id {rule_id!r} is not a string")
        await self._call("RemoveSteeringRule", "s", [rule_id])

    async def set_steering_fallback(self, fallback: Mapping[str, str]) -> None:
        """While failed over, steer the rules of each interface ``k`` through ``fallback[k]``; ``{}`` ends it.

        The helper keeps the map in memory, for as long as this connection
        lives (it clears it when this client leaves the bus), so keep the
        client open. Raises :class:`InvalidArguments` on a bad name, and the
        usual helper errors (:class:`NotAuthorized`, :class:`HelperAbsent`...).
        """
        body: dict[str, str] = {}
        for k, v in fallback.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise InvalidArguments(f"interface names must be strings, not {k!r}: {v!r}")
            body[k] = v
        await self._call("SetSteeringFallback", "a{ss}", [body])

    async def list_steering_rules(self) -> list[dict[str, Any]]:
        """Every rule: ``id``, ``destinations`` (list of prefixes), ``interface``, ``created``
        (seconds since the epoch), ``in_kernel`` (bool), ``status`` ("" or why it is not applied)
        and ``via`` (the interface it leaves through now: its own, or a failover substitute); from helpers
        of issue 15.6 on also ``protocol``, ``ports`` and ``application`` ("" when not set)."""
        (raw,) = await self._call("ListSteeringRules")
        return [{k: (list(v.value) if k == "destinations" else v.value) for k, v in item.items()} for item in raw]


def _interface_statement_texts(conf: mip6conf.ConfFile) -> dict[str, str]:
    """Source text of the first top-level ``Interface`` statement of each name."""
    text = mip6conf.render(conf)
    out: dict[str, str] = {}
    for st in conf.find("Interface"):
        out.setdefault(st.args[0].value, text[st.start:st.end])
    return out


def _first_difference(a: str, b: str) -> int:
    for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines()), start=1):
        if x != y:
            return i
    return min(len(a.splitlines()), len(b.splitlines())) + 1


class HelperConfigWriter:
    """The UMIP driver's config writer, through the helper.

    ``read_config() -> str``, ``write_config(text) -> None``,
    ``restart_daemon() -> None``. :meth:`write_config` does not send ``text``
    to root: it works out which ``MnIfPreference`` values ``text`` changes
    (against the current file) and sends only those. ``text`` must be exactly
    what :func:`mip6conf.set_interface_preference` makes of the current file
    for those values; any other difference raises :class:`UnsupportedChange`
    and nothing is written.
    """

    def __init__(self, client: HelperClient | None = None) -> None:
        self.client = client if client is not None else HelperClient()

    async def read_config(self) -> str:
        return await self.client.read_config()

    #: :meth:`write_config` takes ``rebind=(hoa, interface)`` (the UMIP driver's rebind passes it)
    announces_rebinds = True

    async def write_config(self, text: str, *, rebind: tuple[str, str] | None = None) -> None:
        new = mip6conf.parse(text, "<new mip6d.conf>")  # ConfError for a broken text
        current_text = await self.client.read_config()
        try:
            current = mip6conf.parse(current_text, "<current mip6d.conf>")
        except mip6conf.ConfError as e:
            raise UnsupportedChange(_("the current mip6d.conf does not parse ({why}); fix it by hand").format(why=e)) \
                from None
        want = mip6conf.interface_preferences(new)
        have = mip6conf.interface_preferences(current)
        new_st = _interface_statement_texts(new)
        cur_st = _interface_statement_texts(current)
        removed = sorted(set(have) - set(want))
        if removed:
            raise UnsupportedChange(_("cannot remove Interface statements through the helper: {names}").format(
                names=", ".join(removed)))
        changes = {n: p for n, p in want.items() if have.get(n) != p or new_st.get(n) != cur_st.get(n)}
        expected = current
        try:
            for name, pref in changes.items():
                expected = mip6conf.set_interface_preference(expected, name, pref)
        except ValueError as e:
            raise UnsupportedChange(_("cannot express the change as MnIfPreference values: {why}").format(why=e)) \
                from None
        if mip6conf.render(expected) != text:
            line = _first_difference(mip6conf.render(expected), text)
            raise UnsupportedChange(_(
                "only MnIfPreference values can be changed through the helper; "
                "the new text also differs elsewhere (line {line})").format(line=line))
        if not changes:
            return
        result = await self.client.set_interface_preferences(changes, rebind=rebind)
        if result != text:
            log.warning("mip6d.conf changed while it was being written; the helper's result differs from the request")

    async def restart_daemon(self) -> None:
        await self.client.restart_daemon()
