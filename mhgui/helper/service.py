"""mhgui's privileged helper: a small root process on the system D-Bus.

The GUI never runs as root. It asks this helper, over the system bus, to read
UMIP's ``mip6d.conf``, to change the ``MnIfPreference`` values in it, and to
restart ``mip6d``. A Flatpak reaches it with ``--system-talk-name=`` the bus
name below.

Bus name, object and interface::

    io.github.mhgui.MHGui.Helper1   /io/github/mhgui/MHGui/Helper1   io.github.mhgui.MHGui.Helper1

Methods (every one but GetInterfacePreferences asks polkit first, see below)::

    ReadConfig() -> s                        the daemon's mip6d.conf text
    GetInterfacePreferences() -> a{su}       {ifname: MnIfPreference} of mip6d.conf (with its includes), {}
                                             when the file does not exist: all the preferences dialog needs
                                             of the file (a sandboxed GUI cannot read it). Not secret, so
                                             polkit is not asked (only the bus policy decides); ReadConfig,
                                             which returns the whole text (IPsec key paths...), still is
    SetInterfacePreferencesForRebind(a{su} preferences, s hoa, s interface) -> s
                                             SetInterfacePreferences for a user's rebind of ``hoa`` (an
                                             IPv6 address) onto ``interface``: the same checks and write;
                                             the next RestartDaemon by the same caller then emits
                                             RebindRequested (below)
    SetInterfacePreferences(a{su}) -> s      {ifname: MnIfPreference 0..10}, at most 64 names;
                                             returns the new text
    RestartDaemon() -> s                     systemd job path, or "pid N" (process fallback)
    RestartEngine() -> s                     systemd job path: restarts (or starts) mhgui's mobility
                                             engine's unit (``--engine-unit``, default mhgui-mn.service);
                                             systemd only (issue 15.7: "mobility daemon lost" offers it)
    GetStatus() -> a{sv}                     config_path, backup_path, unit, restart_method,
                                             last_error, version, state_dir

Signal::

    RebindRequested(s hoa, s interface, u uid, s caller)
        emitted as RestartDaemon starts the restart that follows a SetInterfacePreferencesForRebind of the
        same caller (``caller``: its unique bus name, ``uid``: its Unix user as the bus says): another
        process (``mhctl rebind``) asked for the move the restarted daemon makes, so a running app logs it
        as the user's (:mod:`mhgui.sources.rebind_requests`). Only the owner of the helper's name sends it:
        a receiver checks the signal's sender against that owner.
    AddSteeringRule(a{sv}) -> s              {"destination": s} or {"destinations": as}, {"interface": s},
                                             optional {"source": s}; since 15.6 also {"protocol": s}
                                             (tcp/udp), {"ports": s or as} ("443,8000-8100") and
                                             {"application": s} ("app:ID" or "cgroup:PATH"), with
                                             destinations then optional; returns the new rule's id
    RemoveSteeringRule(s)                    by id
    ListSteeringRules() -> aa{sv}            id, destinations, interface, source ("" for none), protocol,
                                             ports, application ("" for none), created
                                             (unix seconds), in_kernel, status (why the rule is not in
                                             the kernel; in it: "" or a note on its next hop)

Steering rules ("new connections to this destination via INTERFACE",
:mod:`mhgui.core.steering` for the kernel design, :mod:`mhgui.helper.steering`
for applying it) are persisted in ``--state-dir`` (default
``/var/lib/mhgui-helper``, file ``steering.json`` and its ``.bak``), applied
again when the helper starts and whenever links, addresses or routes change
(debounced), and removed from the kernel completely with their last rule.
The steering methods are not (yet) in the introspection data of the
interface.

Errors (``io.github.mhgui.MHGui.Helper1.Error.`` + name, one-line messages,
never a traceback):

- ``NotAuthorized``: polkit said no (or could not be asked); nothing changed.
- ``InvalidArgs``: a bad interface name (kernel rules: 1..15 bytes, not ``.``
  or ``..``, no ``/``, ``:``, whitespace; and no ``"``, ``#`` or control
  characters, which mip6d.conf cannot hold), a value outside 0..10, an empty
  request, more than :data:`MAX_INTERFACES` names, a result where no
  interface has a preference above 0, or a result whose interfaces in use are
  not numbered 1..k each once (ties, gaps: :func:`mhgui.core.mip6conf.preference_order_problem`,
  checked over the whole resulting file).
- ``InvalidConfig``: the current file (or an included one) does not parse, or
  is not UTF-8; or an included file cannot be read or is not allowed (see
  Files). The message gives the file, the line and the reason, never text
  from the file (a caller could otherwise read, through errors and
  GetStatus's ``last_error``, a file it may not read itself).
- ``WouldStopDaemon``: an ``MnHomeLink`` interface (with ``NodeConfig HA``:
  also an ``Interface``) does not exist on this system; mip6d would exit with
  ``invalid interface``. The message lists the names, each in double quotes.
- ``Unsupported``: the interface's effective ``Interface`` statement is in an
  included file (only the main file is edited).
- ``ReadFailed`` / ``WriteFailed``: I/O errors, or a file that is not allowed
  (see Files), with path and reason.
- ``CallerGone``: the caller left the bus before the work could start (while
  polkit or another call kept it waiting); nothing was done.
- ``RestartFailed``: systemd refused or the fallback command failed.
- Steering: ``InvalidArgs`` (a bad destination, interface name, key or
  type), ``Conflict`` (a destination is already in another rule), ``NoSuchRule``,
  ``LimitReached``, ``StateCorrupt`` (the state file and its backup do not
  parse; nothing changes until they are fixed), ``WriteFailed``,
  ``KernelFailed`` (the kernel refused a route or rule; the previous state is
  put back).
- ``Failed``: an unexpected internal error (details only in the helper's log).
- ``org.freedesktop.DBus.Error.InvalidArgs`` / ``UnknownMethod``: wrong
  signature / no such method.

Authorization. ``bus.add_message_handler`` (not ``ServiceInterface``, which
cannot see the caller) receives each call; the helper then calls polkit's
``CheckAuthorization`` with the subject ``("system-bus-name", {"name":
sender})``, flags 1 (AllowUserInteraction) and the action
``io.github.mhgui.MHGui.read-config`` (ReadConfig, GetStatus) or
``io.github.mhgui.MHGui.change-daemon`` (SetInterfacePreferences,
RestartDaemon, RestartEngine) or ``io.github.mhgui.MHGui.steer`` (AddSteeringRule,
RemoveSteeringRule; ListSteeringRules is read-config) or
``io.github.mhgui.MHGui.steer-fallback`` (SetSteeringFallback: moves approved
rules to another interface while theirs is down; no password for the active
session, since it happens at link loss). Before that, the D-Bus policy
(``resources/io.github.mhgui.MHGui.Helper1.conf``) decides who may send to
the helper at all.

Right before acting (after polkit said yes, and again once a change's lock
is held) the helper asks the bus whether the caller's unique name still has
an owner; if not, the call ends with ``CallerGone`` and nothing is done.

Where things are comes only from the helper's own command line
(``--mip6d-conf``, ``--unit``, ``--mip6d-command``, ``--pidfile``), never
from the caller.

Files. mip6d.conf, every file it includes and the pidfile are opened with
``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` on the opened
descriptor: each must be a regular file owned by root (or by the helper's own
user), not a symbolic link, not in /proc or /sys, at most 1 MiB. A symlinked
mip6d.conf is refused (``ReadFailed``; directories above it may be links); a
FIFO, device or directory is refused at once, never waited on.

Writing. The new text is produced by :func:`mhgui.core.mip6conf.set_interface_preferences`
(only ``MnIfPreference`` bytes change; a missing one is added), re-parsed with
its includes, checked, then written atomically: the previous contents go to
``<file>.bak`` (itself written atomically), the new contents to a temporary
file in the same directory, which is fsync'ed, given the original's mode and
owner, and renamed over the file; then the directory is fsync'ed. All the
requested values are applied in one edit with one re-parse. A reader sees
the old file or the new one, never a mix. Mutating calls are serialized. At
start the helper removes the temporary files a killed helper left next to
mip6d.conf, the pidfile and in ``--state-dir`` (:mod:`mhgui.atomicfile`: only
its own pattern, only when their writer is gone).

Restarting. ``--restart-method auto`` (default) uses systemd when
``org.freedesktop.systemd1`` is on the bus:
``Manager.RestartUnit(--unit, "replace")``, returning the job path without
waiting for it. Otherwise, with ``--mip6d-command "mip6d -c /etc/mip6d.conf -d 1"``
it runs the daemon itself: it stops the process it started (or the one in
``--pidfile``, if that process's command line is exactly the command's), with
SIGTERM, then SIGKILL after ``--stop-timeout`` seconds, starts the command
(no shell; split like a POSIX shell) in a new session, records its pid in the
pidfile, and fails if it exits within ``--start-grace`` seconds. The command
must stay in the foreground: mip6d detaches unless its debug level is above
0 (``-d 1``) or its parent is PID 1. Before restarting, the current file is
checked like a new one (``InvalidConfig``, ``WouldStopDaemon``); a missing
file is not an error (mip6d then runs with its defaults).

Run it as ``python -m mhgui.helper [options]`` (as root; the D-Bus policy
lets only root own the name). ``DBUS_SYSTEM_BUS_ADDRESS`` (or
``--bus-address``) selects the bus. SIGTERM/SIGINT: the name is released,
running calls finish (up to 10 s), exit status 0; file and kernel work runs
in daemon threads, so a read stuck on a hung file system does not keep the
helper from exiting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import errno
import functools
import glob as _glob
import ipaddress
import logging
import os
import re
import shlex
import signal
import socket
import stat
import threading
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping

from dbus_fast import BusType, Message, MessageFlag, MessageType, NameFlag, RequestNameReply, Variant
from dbus_fast.aio import MessageBus

from mhgui import polkit
from mhgui.dbus_errors import ServiceFailure
from mhgui.dbus_service import STANDARD_INTERFACES_XML, claim_call
from mhgui.logs import setup_logging
from mhgui.atomicfile import atomic_replace, remove_stale_temp_files
from mhgui.core import mip6conf
from mhgui.core import steering as _core_steering
from mhgui.helper import steering as _steering

__all__ = [
    "ACTION_CHANGE",
    "ACTION_READ",
    "ACTION_STEER",
    "ACTION_FALLBACK",
    "BUS_NAME",
    "ERROR_PREFIX",
    "INTERFACE",
    "OBJECT_PATH",
    "HelperFailure",
    "Helper",
    "MAX_INTERFACES",
    "Options",
    "apply_preferences",
    "atomic_write",
    "check_interface_name",
    "main",
    "parse_args",
]

log = logging.getLogger("mhgui.helper")

BUS_NAME = "io.github.mhgui.MHGui.Helper1"
OBJECT_PATH = "/io/github/mhgui/MHGui/Helper1"
INTERFACE = "io.github.mhgui.MHGui.Helper1"
ERROR_PREFIX = INTERFACE + ".Error."
ACTION_READ = "io.github.mhgui.MHGui.read-config"
ACTION_CHANGE = "io.github.mhgui.MHGui.change-daemon"
ACTION_STEER = "io.github.mhgui.MHGui.steer"
ACTION_FALLBACK = "io.github.mhgui.MHGui.steer-fallback"
VERSION = "1"

SYSTEMD_NAME = "org.freedesktop.systemd1"
SYSTEMD_PATH = "/org/freedesktop/systemd1"
SYSTEMD_MANAGER = "org.freedesktop.systemd1.Manager"
#: How long systemd may take to queue a restart job (RestartUnit returns at once; a hung manager must not hold
#: the change lock, and with it every other change, for ever).
SYSTEMD_TIMEOUT = 25.0
#: What --engine-unit may be: a systemd service name (unit name characters, systemd's 255-byte limit).
_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\@-]{1,247}\.service")

#: ``IFNAMSIZ`` is 16 with the terminating NUL.
IFNAME_MAX_BYTES = 15
#: mip6d.conf (and its includes) larger than this are refused: it is a few hundred bytes in practice.
MAX_CONFIG_BYTES = 1 << 20
#: At most this many interfaces in one SetInterfacePreferences (a host has a handful; mip6d ranks 10).
MAX_INTERFACES = 64
#: How long polkit may take (it may be waiting for the user to type a password).
POLKIT_TIMEOUT = 600.0
#: How long SIGTERM waits for running calls.
SHUTDOWN_GRACE = 10.0
#: After a link, address or route change, wait this long for more before re-applying steering rules.
STEERING_DEBOUNCE = 0.3

INTROSPECTION_XML = f"""<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node name="{OBJECT_PATH}">
  <interface name="{INTERFACE}">
    <method name="ReadConfig"><arg name="text" type="s" direction="out"/></method>
    <method name="SetInterfacePreferences">
      <arg name="preferences" type="a{{su}}" direction="in"/>
      <arg name="text" type="s" direction="out"/>
    </method>
    <method name="RestartDaemon"><arg name="job" type="s" direction="out"/></method>
    <method name="GetInterfacePreferences"><arg name="preferences" type="a{{su}}" direction="out"/></method>
    <method name="SetInterfacePreferencesForRebind">
      <arg name="preferences" type="a{{su}}" direction="in"/>
      <arg name="hoa" type="s" direction="in"/>
      <arg name="interface" type="s" direction="in"/>
      <arg name="text" type="s" direction="out"/>
    </method>
    <signal name="RebindRequested">
      <arg name="hoa" type="s"/><arg name="interface" type="s"/><arg name="uid" type="u"/><arg name="caller" type="s"/>
    </signal>
    <method name="RestartEngine"><arg name="job" type="s" direction="out"/></method>
    <method name="GetStatus"><arg name="status" type="a{{sv}}" direction="out"/></method>
    <method name="AddSteeringRule">
      <arg name="rule" type="a{{sv}}" direction="in"/>
      <arg name="id" type="s" direction="out"/>
    </method>
    <method name="RemoveSteeringRule"><arg name="id" type="s" direction="in"/></method>
    <method name="ListSteeringRules"><arg name="rules" type="aa{{sv}}" direction="out"/></method>
    <method name="SetSteeringFallback"><arg name="fallback" type="a{{ss}}" direction="in"/></method>
  </interface>
{STANDARD_INTERFACES_XML}</node>
"""


class HelperFailure(ServiceFailure):
    """A failure reported to the caller as the D-Bus error ``name`` with ``message``.

    ``name`` without a dot is short for ``io.github.mhgui.MHGui.Helper1.Error.<name>``.
    """

    error_prefix = ERROR_PREFIX


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    mip6d_conf: str = "/etc/mip6d.conf"
    unit: str = "mip6d.service"
    engine_unit: str = "mhgui-mn.service"
    restart_method: str = "auto"  # auto | systemd | command
    mip6d_command: str | None = None
    pidfile: str = "/run/mhgui-helper/mip6d.pid"
    stop_timeout: float = 5.0
    start_grace: float = 1.0
    bus_address: str | None = None
    log_level: str = "INFO"
    state_dir: str = "/var/lib/mhgui-helper"

    @property
    def command_argv(self) -> list[str]:
        return shlex.split(self.mip6d_command) if self.mip6d_command else []


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(
        prog="python -m mhgui.helper",
        description="mhgui's privileged helper on the system D-Bus (" + BUS_NAME + ").",
    )
    p.add_argument("--mip6d-conf", default=Options.mip6d_conf, metavar="PATH",
                   help="the daemon's configuration file (default: %(default)s)")
    p.add_argument("--unit", default=Options.unit, help="systemd unit of the daemon (default: %(default)s)")
    p.add_argument("--engine-unit", default=Options.engine_unit,
                   help="systemd unit of mhgui's mobility engine, for RestartEngine (default: %(default)s)")
    p.add_argument("--restart-method", choices=("auto", "systemd", "command"), default="auto",
                   help="auto: systemd when it is on the bus, else --mip6d-command (default: %(default)s)")
    p.add_argument("--mip6d-command", metavar="COMMAND",
                   help="without systemd: the daemon's command line, run in the foreground "
                        "(e.g. \"/usr/sbin/mip6d -c /etc/mip6d.conf -d 1\")")
    p.add_argument("--pidfile", default=Options.pidfile,
                   help="where the fallback records the daemon's pid (default: %(default)s)")
    p.add_argument("--stop-timeout", type=float, default=Options.stop_timeout, metavar="SECONDS",
                   help="fallback: SIGKILL after this long after SIGTERM (default: %(default)s)")
    p.add_argument("--start-grace", type=float, default=Options.start_grace, metavar="SECONDS",
                   help="fallback: a daemon exiting within this time failed to start (default: %(default)s)")
    p.add_argument("--bus-address", help="D-Bus address (default: $DBUS_SYSTEM_BUS_ADDRESS or the system bus)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument("--state-dir", default=Options.state_dir, metavar="DIR",
                   help="where steering rules are kept (default: %(default)s)")
    a = p.parse_args(argv)
    if a.mip6d_command is not None:
        try:
            argv_ = shlex.split(a.mip6d_command)
        except ValueError as e:
            p.error(f"--mip6d-command: {e}")
        if not argv_:
            p.error("--mip6d-command is empty")
    if a.restart_method == "command" and not a.mip6d_command:
        p.error("--restart-method command needs --mip6d-command")
    if not _UNIT_NAME.fullmatch(a.engine_unit):
        p.error(f"--engine-unit {a.engine_unit!r} is not a systemd service name (NAME.service)")
    return Options(
        mip6d_conf=os.path.abspath(a.mip6d_conf),
        unit=a.unit,
        engine_unit=a.engine_unit,
        restart_method=a.restart_method,
        mip6d_command=a.mip6d_command,
        pidfile=os.path.abspath(a.pidfile),
        stop_timeout=a.stop_timeout,
        start_grace=a.start_grace,
        bus_address=a.bus_address,
        log_level=a.log_level,
        state_dir=os.path.abspath(a.state_dir),
    )


# --------------------------------------------------------------------------- validation


def check_interface_name(name: object) -> str:
    """``name`` if it is a valid interface name for the kernel and for mip6d.conf, else HelperFailure.

    Kernel (``dev_valid_name``): 1..15 bytes, not ``.``/``..``, no ``/``,
    ``:`` or whitespace. mip6d.conf strings cannot hold ``"`` or a newline,
    and :func:`mip6conf.set_interface_preference` refuses ``#``; control
    characters are refused too.
    """
    if not isinstance(name, str) or not name:
        raise HelperFailure("InvalidArgs", "an interface name is empty")
    shown = ascii(name)
    if len(name.encode("utf-8", "surrogatepass")) > IFNAME_MAX_BYTES:
        raise HelperFailure("InvalidArgs", f"interface name {shown} is longer than {IFNAME_MAX_BYTES} bytes")
    if name in (".", ".."):
        raise HelperFailure("InvalidArgs", f"interface name {shown} is not allowed")
    for ch in name:
        if ch in "/:" or ch.isspace():
            raise HelperFailure("InvalidArgs", f"interface name {shown} contains {ch!r} (not allowed by the kernel)")
        if ch in '"#' or ord(ch) < 0x20 or ord(ch) == 0x7F or not ch.isprintable():
            raise HelperFailure("InvalidArgs", f"interface name {shown} contains {ascii(ch)} (not allowed in mip6d.conf)")
    return name


def check_preferences(prefs: object) -> dict[str, int]:
    if not isinstance(prefs, Mapping) or not prefs:
        raise HelperFailure("InvalidArgs", "no interface preferences given")
    if len(prefs) > MAX_INTERFACES:
        raise HelperFailure(
            "InvalidArgs",
            f"too many interfaces: {len(prefs)} given, at most {MAX_INTERFACES} in one call "
            f"(and at most {mip6conf.MAX_PREFERENCE} of them in use)",
        )
    out: dict[str, int] = {}
    for name, value in prefs.items():
        check_interface_name(name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= mip6conf.MAX_PREFERENCE:
            raise HelperFailure(
                "InvalidArgs",
                f"MnIfPreference of {name!r} must be 0..{mip6conf.MAX_PREFERENCE} (1 best, 0 unused), not {value!r}",
            )
        out[name] = value
    return out


# --------------------------------------------------------------------------- file I/O (runs in an executor)


class _NotAllowed(OSError):
    """A file the helper does not read (a link, not a regular file, not root's, a kernel pseudo-file)."""


def _pseudo_devices() -> set[int]:
    out = set()
    for d in ("/proc", "/sys"):
        with contextlib.suppress(OSError):
            out.add(os.stat(d).st_dev)
    return out


def _read_checked(path: str) -> tuple[bytes, os.stat_result]:
    """``path``'s bytes and the opened file's stat, when it is a regular file owned by root (or by the
    helper's own user), not a symbolic link, not in /proc or /sys, and at most
    :data:`MAX_CONFIG_BYTES`. Opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` on
    the opened descriptor: a FIFO or device never blocks, and nothing can be swapped in between a
    check and the read. Raises OSError (``strerror`` a one-line reason, never the file's content)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        if e.errno == errno.ELOOP and os.path.islink(path):
            raise _NotAllowed(errno.ELOOP, "it is a symbolic link (the helper reads no links: name the "
                                           "file itself)") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a directory" if stat.S_ISDIR(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                    else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise _NotAllowed(errno.EINVAL, f"it is {kind}, not a regular file")
        if st.st_uid not in (0, os.geteuid()):
            raise _NotAllowed(errno.EPERM, f"it is owned by uid {st.st_uid}, not by root")
        if st.st_dev in _pseudo_devices():
            raise _NotAllowed(errno.EINVAL, "it is a kernel pseudo-file (/proc, /sys), not a configuration file")
        chunks = []
        size = 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_CONFIG_BYTES:
            raise _NotAllowed(errno.EFBIG, f"it is larger than {MAX_CONFIG_BYTES} bytes")
        return b"".join(chunks), st
    finally:
        os.close(fd)


def _read_bytes(path: str) -> tuple[bytes, os.stat_result]:
    """:func:`_read_checked`, failures as HelperFailure ``ReadFailed``."""
    try:
        return _read_checked(path)
    except OSError as e:
        raise HelperFailure("ReadFailed", f"cannot read {path}: {e.strerror or e}") from None


def _decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise HelperFailure("InvalidConfig", f"{path}:{line}: not valid UTF-8") from None


def read_text(path: str) -> str:
    """The file's text, exactly (no newline translation); :func:`_read_checked`'s rules."""
    return _decode(path, _read_bytes(path)[0])


def _real(path: str) -> str:
    """``path`` with its directories resolved, not its last component (a link there is refused)."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def atomic_write(path: str, data: bytes, like: os.stat_result | None = None) -> None:
    """Replace ``path`` with ``data``: temp file in the same directory, fsync, rename, fsync the directory.

    The temp file gets ``like``'s mode and owner (default mode 0644). On any
    failure the temp file is removed and ``path`` is untouched; OSError propagates.
    """
    atomic_replace(path, lambda f: f.write(data), stat.S_IMODE(like.st_mode) if like is not None else 0o644,
                   (like.st_uid, like.st_gid) if like is not None else None)


def _read_include(p: str) -> str:
    data, _ = _read_checked(p)  # OSError: load() reports it at the include line
    return _decode(p, data)


def _conf_failure(e: mip6conf.ConfError) -> HelperFailure:
    """InvalidConfig with the file, line and reason, never text of the file: a caller may include
    (or have the admin include) a file it cannot read itself."""
    return HelperFailure("InvalidConfig", e.redacted)


def _load(path: str, main_text: str | None = None, *, main: mip6conf.ConfFile | None = None) -> mip6conf.LoadedConf:
    """``path`` parsed with ``main_text`` as its contents (or ``main``, already parsed), includes read
    from disk (:func:`_read_checked`'s rules)."""

    def read(p: str) -> str:
        return main_text if p == path and main_text is not None else _read_include(p)

    try:
        return mip6conf.load(path, read, _glob.glob, main=main)
    except mip6conf.ConfError as e:
        raise _conf_failure(e) from None


def _interface_exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def check_daemon_would_start(loaded: mip6conf.LoadedConf, exists: Callable[[str], bool] = _interface_exists) -> None:
    """HelperFailure ``WouldStopDaemon`` when an interface mip6d needs at start is missing.

    umip.md section 2: ``MnHomeLink`` interfaces must exist when the file is
    parsed; with ``NodeConfig HA`` the ``Interface`` ones too.
    """
    try:
        needed = [h.home_link for h in mip6conf.home_addresses(loaded) if h.home_link]
        if mip6conf.node_config(loaded) == "HA":
            needed += list(mip6conf.interface_preferences(loaded))
    except mip6conf.ConfError as e:
        raise _conf_failure(e) from None
    missing = sorted({n for n in needed if not exists(n)})
    if missing:
        names = ", ".join(f'"{n}"' for n in missing)
        raise HelperFailure(
            "WouldStopDaemon",
            f"refused: mip6d would exit ('invalid interface'), these interfaces named in "
            f"{loaded.path} do not exist on this system: {names}",
        )


def apply_preferences(
    path: str,
    prefs: Mapping[str, int],
    exists: Callable[[str], bool] = _interface_exists,
) -> tuple[str, bool]:
    """Set ``MnIfPreference`` values in ``path``; returns (new text, whether the file changed).

    Validates everything first (names, values, at most :data:`MAX_INTERFACES`,
    all edits applied with one re-parse and then loaded with the includes, at
    least one preference above 0, the preferences in use of the whole
    resulting file numbered 1..k without ties or gaps
    (:func:`mip6conf.preference_order_problem`), the daemon's interfaces),
    then writes ``path + ".bak"`` and ``path`` atomically. ``path`` and its
    includes are read by :func:`_read_checked`'s rules (a symlinked ``path``
    is refused). Raises :class:`HelperFailure`.
    """
    prefs = check_preferences(prefs)
    real = _real(path)
    old_bytes, st = _read_bytes(path)
    old_text = _decode(path, old_bytes)
    loaded = _load(path, old_text)
    where = mip6conf.interface_files(loaded)
    for name in prefs:
        if where.get(name, path) != path:
            raise HelperFailure(
                "Unsupported",
                f'Interface "{name}" is defined in the included file {where[name]}; the helper edits only {path}',
            )
    try:
        conf = mip6conf.set_interface_preferences(loaded.main, prefs)
    except mip6conf.ConfError as e:
        raise _conf_failure(e) from None
    except ValueError as e:
        raise HelperFailure("InvalidArgs", str(e)) from None
    new_text = mip6conf.render(conf)
    new_loaded = _load(path, main=conf)
    try:
        result = mip6conf.interface_preferences(new_loaded)
    except mip6conf.ConfError as e:
        raise _conf_failure(e) from None
    if not any(v > 0 for v in result.values()):
        raise HelperFailure(
            "InvalidArgs",
            "refused: no interface would have a preference above 0 (0 means unused); mip6d would have no interface",
        )
    problem = mip6conf.preference_order_problem(result)
    if problem is not None:
        raise HelperFailure("InvalidArgs", f"refused: in {path} after this change, {problem}")
    check_daemon_would_start(new_loaded, exists)
    if new_text == old_text:
        return new_text, False
    try:
        atomic_write(real + ".bak", old_bytes, like=st)
    except OSError as e:
        raise HelperFailure("WriteFailed", f"cannot write the backup {real}.bak: {e.strerror or e}; {path} is unchanged") from None
    try:
        atomic_write(real, new_text.encode("utf-8"), like=st)
    except OSError as e:
        raise HelperFailure("WriteFailed", f"cannot write {path}: {e.strerror or e}; the file is unchanged") from None
    return new_text, True


def check_current_config(path: str, exists: Callable[[str], bool] = _interface_exists) -> None:
    """Before a restart: the current file must parse and name existing interfaces (a missing file is fine)."""
    try:
        data, _ = _read_checked(path)
    except FileNotFoundError:
        log.info("%s does not exist: mip6d will run with its defaults", path)
        return
    except OSError as e:
        raise HelperFailure("ReadFailed", f"cannot read {path}: {e.strerror or e}") from None
    check_daemon_would_start(_load(path, _decode(path, data)), exists)


def interface_preferences_of(path: str) -> dict[str, int]:
    """``{ifname: MnIfPreference}`` of ``path`` and its includes (GetInterfacePreferences); {} when it does not
    exist. ReadFailed / InvalidConfig as for a write (never text of the file)."""
    try:
        data, _ = _read_checked(path)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise HelperFailure("ReadFailed", f"cannot read {path}: {e.strerror or e}") from None
    return {str(k): int(v) for k, v in mip6conf.interface_preferences(_load(path, _decode(path, data))).items()}


#: rebind writes remembered until their caller's RestartDaemon (callers that never restart are forgotten)
MAX_PENDING_REBINDS = 32


def remove_stale_temp_files_of(opts: Options) -> list[str]:
    """At start: remove the temp files a killed helper left next to the files it writes
    (:func:`mhgui.atomicfile.remove_stale_temp_files`). Never raises."""
    conf = _real(opts.mip6d_conf)
    base = os.path.basename(conf)
    removed = remove_stale_temp_files(os.path.dirname(conf), [base, base + ".bak"])
    removed += remove_stale_temp_files(os.path.dirname(opts.pidfile), [os.path.basename(opts.pidfile)])
    removed += remove_stale_temp_files(opts.state_dir)
    return removed


# --------------------------------------------------------------------------- the fallback daemon runner


def _proc_cmdline(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")[:-1]]


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    state = data[data.rfind(b")") + 2 : data.rfind(b")") + 3]
    return state not in (b"Z", b"X", b"")


def _read_pidfile(path: str) -> int | None:
    try:
        data, _ = _read_checked(path)  # (a FIFO there must not block the restart)
        return int(data.decode("ascii").strip())
    except (OSError, ValueError):
        return None


def _run_in_thread(fn: Callable[..., object], *args: object) -> "asyncio.Future[object]":
    """``fn(*args)`` in a new daemon thread, as a future of the running loop.

    Not the loop's default executor: asyncio.run() (and the interpreter) wait
    for its threads at exit, so one read stuck on a hung file system would
    keep SIGTERM from stopping the helper. A daemon thread is abandoned at exit.
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[object] = loop.create_future()

    def done(ok: bool, value: object) -> None:
        if fut.done():
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result: tuple[bool, object] = (True, fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            result = (False, e)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(done, *result)

    threading.Thread(target=run, name="mhgui-helper-io", daemon=True).start()
    return fut


# --------------------------------------------------------------------------- the service


#: (sender, member) of the call a task is serving: what :meth:`Helper._caller_present` checks.
_CALL: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("mhgui_helper_call", default=None)


@dataclass(frozen=True)
class _Method:
    in_signature: str
    out_signature: str
    action: str | None  # None: polkit is not asked (data that is not secret)
    impl: Callable[..., Awaitable[object]]
    with_sender: bool = False  # impl(sender, *body)


class Helper:
    """The D-Bus side: dispatches calls, asks polkit, runs the work off the event loop."""

    def __init__(self, bus: MessageBus, options: Options) -> None:
        self.bus = bus
        self.opts = options
        self.last_error = ""
        self._tasks: set[asyncio.Task] = set()
        self._change_lock = asyncio.Lock()
        self._proc: asyncio.subprocess.Process | None = None
        self._methods: dict[str, _Method] = {
            "ReadConfig": _Method("", "s", ACTION_READ, self.read_config),
            "SetInterfacePreferences": _Method("a{su}", "s", ACTION_CHANGE, self.set_interface_preferences),
            "RestartDaemon": _Method("", "s", ACTION_CHANGE, self.restart_daemon),
            "RestartEngine": _Method("", "s", ACTION_CHANGE, self.restart_engine),
            "GetStatus": _Method("", "a{sv}", ACTION_READ, self.get_status),
            "AddSteeringRule": _Method("a{sv}", "s", ACTION_STEER, self.add_steering_rule),
            "RemoveSteeringRule": _Method("s", "", ACTION_STEER, self.remove_steering_rule),
            "ListSteeringRules": _Method("", "aa{sv}", ACTION_READ, self.list_steering_rules),
            "SetSteeringFallback": _Method("a{ss}", "", ACTION_FALLBACK, self.set_steering_fallback, True),
            "GetInterfacePreferences": _Method("", "a{su}", None, self.get_interface_preferences),
            "SetInterfacePreferencesForRebind": _Method("a{su}ss", "s", ACTION_CHANGE,
                                                        self.set_interface_preferences_for_rebind, True),
        }
        #: the unique bus name that set the steering fallback: when it leaves the bus, the fallback goes
        self._fallback_owner: str | None = None
        #: caller's unique name -> (hoa, interface) of its rebind write, announced at its next RestartDaemon
        self._rebinds: dict[str, tuple[str, str]] = {}
        self.steering = _steering.SteeringEngine(options.state_dir)
        self._steer_lock = asyncio.Lock()
        self._steer_pending: asyncio.TimerHandle | None = None

    # ----------------------------------------------------------------- dispatch

    def handle_message(self, msg: Message) -> Message | bool:
        """``bus.add_message_handler`` callback: claims calls to our object."""
        if (msg.message_type is MessageType.SIGNAL and msg.member == "NameOwnerChanged"
                and msg.sender == "org.freedesktop.DBus" and self._fallback_owner is not None
                and len(msg.body) == 3 and msg.body[0] == self._fallback_owner and not msg.body[2]):
            self._fallback_owner_gone()
            return False
        method = claim_call(msg, OBJECT_PATH, INTERFACE, INTROSPECTION_XML, self._methods)
        if not isinstance(method, _Method):
            return method  # not ours (False) or answered at once
        task = asyncio.ensure_future(self._dispatch(msg, method))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _dispatch(self, msg: Message, method: _Method) -> None:
        member = msg.member
        try:
            if method.action is not None:
                await self._authorize(msg.sender or "", method.action, member or "")
            _CALL.set((msg.sender or "", member or ""))
            await self._caller_present()
            if method.action in (ACTION_CHANGE, ACTION_STEER, ACTION_FALLBACK):
                log.info("%s by %s (uid %s)", member, msg.sender, await self._caller_uid(msg.sender or ""))
            args = (msg.sender or "", *msg.body) if method.with_sender else tuple(msg.body)
            result = await method.impl(*args)
            reply = Message.new_method_return(msg, method.out_signature,
                                              [result] if method.out_signature else [])
        except HelperFailure as e:
            self.last_error = f"{e.name}: {e.message}"
            log.warning("%s from %s: %s", member, msg.sender, e)
            reply = Message.new_error(msg, e.name, e.message)
        except Exception:
            log.exception("internal error in %s", member)
            self.last_error = f"{ERROR_PREFIX}Failed: internal error in {member}"
            reply = Message.new_error(
                msg, ERROR_PREFIX + "Failed",
                f"{member} failed with an internal error; see the helper's log (journalctl -u mhgui-helper)",
            )
        if msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            return
        try:
            await self.bus.send(reply)
        except Exception as e:  # the bus went away: nothing to tell anyone
            log.warning("cannot send the reply to %s: %s", msg.sender, e)

    async def _authorize(self, sender: str, action: str, member: str) -> None:
        """polkit's CheckAuthorization for ``sender``; HelperFailure NotAuthorized unless it says yes."""
        try:
            await polkit.check_authorization(self.bus, sender, action, member, POLKIT_TIMEOUT)
        except polkit.NotAuthorized as e:
            raise HelperFailure("NotAuthorized", str(e)) from None

    async def _caller_present(self) -> None:
        """HelperFailure ``CallerGone`` when the caller of the call this task serves has left the bus.

        Asked right before acting (after polkit, and again after waiting for a
        lock): a call whose caller is gone (it gave up, crashed, or was killed
        while polkit or another call kept it waiting) must not go on. Unique
        names are never reused, so ``NameHasOwner`` of the unique name is
        exact; when the bus cannot be asked the call does not go on either.
        """
        call = _CALL.get()
        if call is None:
            return
        sender, member = call
        try:
            reply = await self.bus.call(Message(
                destination="org.freedesktop.DBus", path="/org/freedesktop/DBus", interface="org.freedesktop.DBus",
                member="NameHasOwner", signature="s", body=[sender]))
            present = (reply is not None and reply.message_type is MessageType.METHOD_RETURN
                       and reply.body == [True])
        except Exception:  # noqa: BLE001 - cannot tell: do not act
            present = False
        if not present:
            raise HelperFailure("CallerGone", f"{member} not done: the caller ({sender}) left the bus before "
                                              f"it could start")

    async def _in_executor(self, fn: Callable[..., object], *args: object) -> object:
        return await _run_in_thread(fn, *args)

    async def _caller_uid(self, sender: str) -> str:
        return await polkit.caller_uid(self.bus, sender)

    # ----------------------------------------------------------------- methods

    async def read_config(self) -> str:
        return await self._in_executor(read_text, self.opts.mip6d_conf)  # type: ignore[return-value]

    async def set_interface_preferences(self, prefs: dict[str, int]) -> str:
        check_preferences(prefs)
        call = _CALL.get()
        if call is not None and call[1] == "SetInterfacePreferences":
            self._rebinds.pop(call[0], None)  # a plain write (a rollback): its restart is no rebind
        async with self._change_lock:
            await self._caller_present()
            text, changed = await self._in_executor(apply_preferences, self.opts.mip6d_conf, prefs)  # type: ignore[misc]
        shown = ", ".join(f"{k}={v}" for k, v in prefs.items())
        log.info("MnIfPreference %s in %s (%s)", shown, self.opts.mip6d_conf, "written" if changed else "unchanged")
        return text

    async def set_interface_preferences_for_rebind(self, sender: str, prefs: dict[str, int], hoa: str,
                                                   interface: str) -> str:
        """SetInterfacePreferences for a user's rebind of ``hoa`` onto ``interface``: announced (RebindRequested)
        when this caller restarts the daemon next."""
        try:
            hoa = ipaddress.IPv6Address(hoa).compressed if isinstance(hoa, str) else ""
        except ValueError:
            hoa = ""
        if not hoa:
            raise HelperFailure("InvalidArgs", "the home address of a rebind must be an IPv6 address")
        interface = check_interface_name(interface)
        text = await self.set_interface_preferences(prefs)
        self._rebinds.pop(sender, None)
        self._rebinds[sender] = (hoa, interface)
        while len(self._rebinds) > MAX_PENDING_REBINDS:
            self._rebinds.pop(next(iter(self._rebinds)))
        return text

    async def _announce_rebind(self, sender: str) -> None:
        """RebindRequested for ``sender``'s rebind write, if its last write was one (module docstring)."""
        request = self._rebinds.pop(sender, None)
        if request is None:
            return
        uid = await self._caller_uid(sender)
        if not uid.isdigit():
            return  # the caller is gone: nobody to attribute the move to
        hoa, interface = request
        log.info("rebind of %s onto %s by uid %s (%s): announced", hoa, interface, uid, sender)
        with contextlib.suppress(Exception):  # a signal nobody gets changes nothing of the restart
            await self.bus.send(Message.new_signal(OBJECT_PATH, INTERFACE, "RebindRequested", "ssus",
                                                   [hoa, interface, int(uid), sender]))

    async def get_interface_preferences(self) -> dict[str, int]:
        return await self._in_executor(interface_preferences_of, self.opts.mip6d_conf)  # type: ignore[return-value]

    async def restart_daemon(self) -> str:
        call = _CALL.get()
        async with self._change_lock:
            await self._caller_present()
            await self._in_executor(check_current_config, self.opts.mip6d_conf)
            if call is not None:
                await self._announce_rebind(call[0])
            method = await self._restart_method()
            if method == "systemd":
                return await self._restart_systemd()
            if method == "command":
                return await self._restart_process()
        raise HelperFailure(
            "RestartFailed",
            "cannot restart the daemon: systemd is not on the bus and the helper has no --mip6d-command",
        )

    async def restart_engine(self) -> str:
        """systemd's ``RestartUnit(--engine-unit, "replace")`` (starts it when stopped); the job path.
        ``RestartFailed`` without systemd: the helper runs no engine process itself."""
        async with self._change_lock:
            await self._caller_present()
            if await self._systemd_present():  # (--restart-method is about mip6d: the engine is systemd's only)
                return await self._restart_systemd(self.opts.engine_unit)
        raise HelperFailure(
            "RestartFailed",
            f"cannot restart {self.opts.engine_unit}: systemd is not on the bus; start the engine again yourself "
            "(as root: mhgui-mn --config /etc/mhgui/mn.toml)",
        )

    async def get_status(self) -> dict[str, Variant]:
        real = _real(self.opts.mip6d_conf)
        return {
            "config_path": Variant("s", self.opts.mip6d_conf),
            "backup_path": Variant("s", real + ".bak"),
            "unit": Variant("s", self.opts.unit),
            "restart_method": Variant("s", await self._restart_method()),
            "last_error": Variant("s", self.last_error),
            "version": Variant("s", VERSION),
            "state_dir": Variant("s", self.opts.state_dir),
        }

    # ----------------------------------------------------------------- steering rules

    async def _steer(self, fn: Callable[..., object], *args: object, for_caller: bool = False) -> object:
        """Run an engine call off the event loop, one at a time; engine failures become HelperFailure.
        ``for_caller``: for the call this task serves (:meth:`_caller_present` once the lock is held)."""
        async with self._steer_lock:
            if for_caller:
                await self._caller_present()
            try:
                return await self._in_executor(fn, *args)
            except _steering.SteeringFailure as e:
                raise HelperFailure(e.kind, e.message) from None

    async def add_steering_rule(self, request: dict[str, Variant]) -> str:
        plain: dict[str, object] = {}
        for key, value in request.items():
            if value.signature == "s":
                plain[key] = value.value
            elif value.signature == "as":
                plain[key] = list(value.value)
            else:
                raise HelperFailure("InvalidArgs", f"{ascii(key)[:40]} must be a string (s) or a list of "
                                                   f"strings (as), not {ascii(value.signature)[:20]}")
        rule = await self._steer(self.steering.add, plain, for_caller=True)
        return rule.id  # type: ignore[attr-defined]

    async def set_steering_fallback(self, sender: str, fallback: dict[str, str]) -> None:
        """Steer each key's rules through its value until changed, or until ``sender`` leaves the bus
        (an app that crashed must not leave rules on a substitute)."""
        await self._steer(self.steering.set_fallback, dict(fallback), for_caller=True)
        if not fallback or sender == self._fallback_owner:
            self._fallback_owner = sender if fallback else None
            return
        self._fallback_owner = sender
        match = ("type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                 f"member='NameOwnerChanged',arg0='{sender}'")
        try:
            await self.bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                        interface="org.freedesktop.DBus", member="AddMatch",
                                        signature="s", body=[match]))
        except Exception as e:  # without the match the fallback stays until the app changes it
            log.warning("cannot watch %s: %s", sender, e)
        try:  # it may have left while its call waited for polkit: then the signal is never coming
            reply = await self.bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                                interface="org.freedesktop.DBus", member="NameHasOwner",
                                                signature="s", body=[sender]))
            gone = reply is not None and reply.message_type is MessageType.METHOD_RETURN and reply.body == [False]
        except Exception:
            gone = False
        if gone and self._fallback_owner == sender:
            self._fallback_owner_gone()

    def _fallback_owner_gone(self) -> None:
        log.info("%s left the bus: steering rules back on their own interfaces", self._fallback_owner)
        self._fallback_owner = None

        async def clear() -> None:
            try:
                await self._steer(self.steering.set_fallback, {})
            except HelperFailure as e:
                log.warning("steering fallback not cleared: %s", e.message)

        # (a fresh context: not the one of a call whose caller is gone)
        task = asyncio.get_running_loop().create_task(clear(), context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def remove_steering_rule(self, rule_id: str) -> None:
        await self._steer(self.steering.remove, rule_id, for_caller=True)

    async def list_steering_rules(self) -> list[dict[str, Variant]]:
        listed = await self._steer(self.steering.listing)
        return [{
            "id": Variant("s", x.rule.id),
            "destinations": Variant("as", [str(d) for d in x.rule.destinations]),
            "interface": Variant("s", x.rule.interface),
            "created": Variant("d", x.rule.created),
            "in_kernel": Variant("b", x.in_kernel),
            "status": Variant("s", x.status),
            "via": Variant("s", x.via),
            "source": Variant("s", str(x.rule.source or "")),
            # selectors of marked rules ("" when not set; older clients ignore the keys)
            "protocol": Variant("s", x.rule.protocol or ""),
            "ports": Variant("s", _core_steering.format_ports(x.rule.ports)),
            "application": Variant("s", x.rule.application or ""),
        } for x in listed]  # type: ignore[attr-defined]

    async def follow_apps(self) -> None:
        """Forever: add the cgroups of applications started since to their steering rules
        (:meth:`mhgui.helper.steering.SteeringEngine.follow_apps`), woken by inotify on cgroupfs as soon as
        a directory appears, and every :data:`~mhgui.helper.steering_apps.POLL_SECONDS` (see
        :mod:`mhgui.helper.steering_apps`). The watch exists while there are marked rules. Failures are
        logged and following goes on."""
        from mhgui.helper.steering_apps import POLL_SECONDS, CgroupWatch

        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        watch: CgroupWatch | None = None
        no_watch = False  # inotify failed once: polling only (said once)

        def readable() -> None:
            if watch is not None and watch.read():
                wake.set()
        try:
            while True:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), POLL_SECONDS)
                wake.clear()
                mount = self.steering.marks.tree.mount
                if not self.steering.has_marked_rules or mount is None:
                    if watch is not None:
                        loop.remove_reader(watch.fd)
                        watch.close()
                        watch = None
                    continue
                if watch is None and not no_watch:
                    try:
                        watch = await self._in_executor(CgroupWatch, mount)  # type: ignore[assignment]
                        loop.add_reader(watch.fd, readable)  # type: ignore[union-attr]
                        log.debug("watching %d cgroup directories for new application scopes", watch.watched)  # type: ignore[union-attr]
                    except OSError as e:
                        no_watch = True
                        log.warning("no inotify on %s (%s): new application scopes are found by polling", mount, e)
                try:
                    await self._steer(self.steering.follow_apps)
                except HelperFailure as e:
                    log.warning("application scopes not followed: %s", e.message)
                except Exception:
                    log.exception("application scopes not followed")
        finally:
            if watch is not None:
                loop.remove_reader(watch.fd)
                watch.close()

    async def reconcile_steering(self, full: bool = True) -> None:
        """Apply the persisted rules to the kernel as it is now; failures are logged, not raised.
        ``full``: read mhgui's part of the kernel back even when the interfaces did not change."""
        try:
            plan = await self._steer(functools.partial(self.steering.reconcile, full=full))
        except HelperFailure as e:
            log.warning("steering rules not applied: %s", e.message)
            return
        except Exception:
            log.exception("steering rules not applied")
            return
        log.debug("steering rules applied: %d routes, %d policy rules", len(plan.routes), len(plan.rules))  # type: ignore[attr-defined]

    def steering_changed(self) -> None:
        """Something in the kernel changed: re-apply the steering rules once things settle."""
        if self._steer_pending is not None:
            self._steer_pending.cancel()
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._steer_pending = None
            task = asyncio.ensure_future(self.reconcile_steering(full=False))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._steer_pending = loop.call_later(STEERING_DEBOUNCE, fire)

    async def watch_kernel(self) -> None:
        """Follow links, addresses and routes (rtnetlink); call :meth:`steering_changed` on changes
        that can matter (not our own routes), while there are rules."""
        from pyroute2 import AsyncIPRoute
        from pyroute2.netlink.rtnl import (
            RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE, RTMGRP_LINK)

        from mhgui.core.steering import is_our_table

        groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE
        try:
            async with AsyncIPRoute() as mon:
                await mon.bind(groups=groups)
                while True:
                    async for msg in mon.get():
                        event = msg.get("event", "")
                        if event in ("RTM_NEWROUTE", "RTM_DELROUTE") and is_our_table(
                                msg.get("RTA_TABLE", msg.get("table"))):
                            continue
                        state = self.steering._state
                        if state is not None and not state.rules:
                            continue
                        self.steering_changed()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("not following kernel changes (steering rules are applied only at start and on "
                        "changes): %s", e)

    # ----------------------------------------------------------------- restart

    async def _systemd_present(self) -> bool:
        try:
            reply = await self.bus.call(Message(
                destination="org.freedesktop.DBus", path="/org/freedesktop/DBus", interface="org.freedesktop.DBus",
                member="NameHasOwner", signature="s", body=[SYSTEMD_NAME]))
        except Exception:
            return False
        return reply.message_type is MessageType.METHOD_RETURN and bool(reply.body[0])

    async def _restart_method(self) -> str:
        """"systemd", "command" or "none"."""
        if self.opts.restart_method != "auto":
            return self.opts.restart_method
        if await self._systemd_present():
            return "systemd"
        return "command" if self.opts.mip6d_command else "none"

    async def _restart_systemd(self, unit: str | None = None) -> str:
        unit = self.opts.unit if unit is None else unit
        try:
            reply = await asyncio.wait_for(self.bus.call(Message(
                destination=SYSTEMD_NAME, path=SYSTEMD_PATH, interface=SYSTEMD_MANAGER, member="RestartUnit",
                signature="ss", body=[unit, "replace"])), SYSTEMD_TIMEOUT)
        except asyncio.TimeoutError:
            raise HelperFailure("RestartFailed", f"systemd did not answer within {SYSTEMD_TIMEOUT:g} s when asked to "
                                                 f"restart {unit}") from None
        except Exception as e:
            raise HelperFailure("RestartFailed", f"cannot ask systemd to restart {unit}: {e}") from None
        if reply.message_type is MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise HelperFailure("RestartFailed", f"systemd refused to restart {unit}: {reply.error_name}: {text}")
        job = str(reply.body[0]) if reply.body else ""
        log.info("systemd restarts %s (job %s)", unit, job)
        return job

    async def _stop_pid(self, pid: int, own: asyncio.subprocess.Process | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.opts.stop_timeout
        for sig in (None, signal.SIGKILL):
            if sig is not None:
                log.warning("pid %d ignored SIGTERM for %g s: SIGKILL", pid, self.opts.stop_timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                deadline = loop.time() + 5.0
            while loop.time() < deadline:
                if own is not None:
                    if own.returncode is not None:
                        return
                elif not _alive(pid):
                    return
                await asyncio.sleep(0.02)
        raise HelperFailure("RestartFailed", f"the daemon (pid {pid}) does not stop, even with SIGKILL")

    async def _restart_process(self) -> str:
        argv = self.opts.command_argv
        own = self._proc if self._proc is not None and self._proc.returncode is None else None
        pid = own.pid if own is not None else None
        if pid is None:
            recorded = await self._in_executor(_read_pidfile, self.opts.pidfile)
            if isinstance(recorded, int) and recorded > 1:
                cmdline = await self._in_executor(_proc_cmdline, recorded)
                if cmdline == argv and _alive(recorded):
                    pid = recorded
                elif cmdline is not None:
                    log.warning("%s names pid %d, which is not %s: not stopping it", self.opts.pidfile, recorded, argv)
        if pid is not None:
            log.info("stopping the daemon, pid %d", pid)
            await self._stop_pid(pid, own)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as e:
            raise HelperFailure("RestartFailed", f"cannot start {argv[0]}: {e.strerror or e}") from None
        self._proc = proc
        try:
            await self._in_executor(_write_pidfile, self.opts.pidfile, proc.pid)
        except OSError as e:
            log.warning("cannot record pid %d in %s: %s", proc.pid, self.opts.pidfile, e)
        try:
            status = await asyncio.wait_for(proc.wait(), self.opts.start_grace)
        except asyncio.TimeoutError:
            log.info("started %s, pid %d", argv[0], proc.pid)
            return f"pid {proc.pid}"
        raise HelperFailure(
            "RestartFailed",
            f"{argv[0]} exited with status {status} right after it started; the command must stay in the "
            f"foreground (mip6d: give -d 1 or higher)",
        )


def _write_pidfile(path: str, pid: int) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    atomic_write(path, f"{pid}\n".encode("ascii"))


# --------------------------------------------------------------------------- main


async def _run(opts: Options) -> int:
    # first: a SIGTERM right after the name appears must stop the helper cleanly too
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    remove_stale_temp_files_of(opts)
    try:
        bus = await MessageBus(bus_address=opts.bus_address, bus_type=BusType.SYSTEM).connect()
    except Exception as e:
        log.error("cannot connect to the system bus: %s", e)
        return 1
    helper = Helper(bus, opts)
    bus.add_message_handler(helper.handle_message)
    try:
        reply = await bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE)
    except Exception as e:
        log.error("cannot own %s: %s", BUS_NAME, e)
        bus.disconnect()
        return 1
    if reply is not RequestNameReply.PRIMARY_OWNER:
        log.error("%s is already owned by another process (%s)", BUS_NAME, reply.name)
        bus.disconnect()
        return 1
    log.info("serving %s: %s, unit %s", BUS_NAME, opts.mip6d_conf, opts.unit)
    watcher = asyncio.ensure_future(helper.watch_kernel())
    from mhgui.helper.ra_listener import RAListener  # which router advertised which prefix (issue 13.2)

    ra = RAListener(on_change=helper.steering_changed)
    helper.steering.adverts = ra.adverts
    ra_task = asyncio.ensure_future(ra.run())
    first = asyncio.ensure_future(helper.reconcile_steering())
    helper._tasks.add(first)
    first.add_done_callback(helper._tasks.discard)
    apps = asyncio.ensure_future(helper.follow_apps())
    stop_wait = asyncio.ensure_future(stop.wait())
    gone = asyncio.ensure_future(bus.wait_for_disconnect())
    await asyncio.wait({stop_wait, gone}, return_when=asyncio.FIRST_COMPLETED)
    if gone.done():
        stop_wait.cancel()
        with contextlib.suppress(Exception):
            gone.result()
        log.error("lost the connection to the system bus")
        return 1
    watcher.cancel()
    ra_task.cancel()
    apps.cancel()
    with contextlib.suppress(BaseException):
        await apps
    with contextlib.suppress(BaseException):
        await watcher
    with contextlib.suppress(BaseException):
        await ra_task
    if helper._steer_pending is not None:
        helper._steer_pending.cancel()
    with contextlib.suppress(Exception):
        await bus.release_name(BUS_NAME)
    if helper._tasks:
        await asyncio.wait(set(helper._tasks), timeout=SHUTDOWN_GRACE)
    bus.disconnect()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(gone, 5.0)  # (never cancel it: that would cancel the bus's own future)
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    # journal priorities under systemd (journalctl -p err shows its errors)
    setup_logging("mhgui-helper", getattr(logging, opts.log_level), "mhgui-helper: %(levelname)s: %(message)s")
    if os.geteuid() != 0:
        log.warning("not running as root: writing %s or restarting the daemon may fail", opts.mip6d_conf)
    try:
        return asyncio.run(_run(opts))
    except KeyboardInterrupt:
        return 0
