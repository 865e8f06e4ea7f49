"""Start mhgui in the tray at login, as an option (issue 15.5).

Outside a sandbox: an XDG Autostart entry, ``$XDG_CONFIG_HOME/autostart/io.github.mhgui.MHGui.desktop``
(Desktop Application Autostart Specification: a desktop entry in the user's autostart directory,
``XDG_CONFIG_HOME`` defaulting to ``~/.config``), whose ``Exec`` starts the app hidden in the tray
(``mhgui --tray``). Removing the file turns it off. Inside a Flatpak (``FLATPAK_ID`` set or
``/.flatpak-info`` present) the app cannot write there: it asks the Background portal
(:mod:`mhgui.sources.portal`).

:func:`desktop_entry` and :func:`exec_line` are pure; :func:`write_entry`, :func:`remove_entry` and
:func:`is_enabled` do file I/O (blocking: the dialog runs them in an executor); :func:`set_autostart`
is the coroutine the preferences dialog calls.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

from .. import APP_ID, APP_NAME
from ..i18n import _

__all__ = ["ENTRY_NAME", "TRAY_FLAG", "AutostartResult", "autostart_dir", "command", "desktop_entry", "entry_path",
           "exec_line", "in_flatpak", "is_enabled", "remove_entry", "set_autostart", "write_entry"]

ENTRY_NAME = f"{APP_ID}.desktop"
#: the command-line flag that starts the app hidden in the tray (mhgui.ui.app.parser)
TRAY_FLAG = "--tray"
_RESERVED = set(' \t\n"\'\\><~|&;$*?#()`')


def in_flatpak(environ: Mapping[str, str] | None = None, info: str = "/.flatpak-info") -> bool:
    """Running inside a Flatpak sandbox."""
    env = os.environ if environ is None else environ
    return bool(env.get("FLATPAK_ID")) or os.path.exists(info)


def autostart_dir(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CONFIG_HOME/autostart`` (``~/.config/autostart`` when unset or not absolute, as the XDG
    Base Directory specification says)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "autostart")


def entry_path(environ: Mapping[str, str] | None = None) -> str:
    return os.path.join(autostart_dir(environ), ENTRY_NAME)


def command() -> list[str]:
    """How to start this installation of the app hidden in the tray: ``mhgui`` when it is the one on
    PATH, else the absolute path of the running ``mhgui`` script, plus :data:`TRAY_FLAG`."""
    on_path = shutil.which(APP_NAME)
    argv0 = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(argv0) == APP_NAME and os.access(argv0, os.X_OK) and (
            on_path is None or os.path.realpath(on_path) != os.path.realpath(argv0)):
        return [argv0, TRAY_FLAG]
    return [APP_NAME if on_path else (argv0 if os.path.basename(argv0) == APP_NAME else APP_NAME), TRAY_FLAG]


def exec_line(argv: Sequence[str]) -> str:
    """``argv`` as the value of a desktop entry's ``Exec`` key: arguments with reserved characters in
    double quotes (with ``"``, `````, ``$`` and ``\\`` escaped by a backslash), ``%`` doubled, then
    the string escapes of the value (``\\`` doubled) — Desktop Entry Specification, "The Exec key"."""
    out = []
    for a in argv:
        a = a.replace("%", "%%")
        if not a or any(ch in _RESERVED for ch in a):
            a = '"' + "".join("\\" + ch if ch in '"`$\\' else ch for ch in a) + '"'
        out.append(a)
    return " ".join(out).replace("\\", "\\\\")


def desktop_entry(argv: Sequence[str]) -> str:
    """The autostart entry starting ``argv`` (Desktop Entry Specification 1.5). ValueError when an argument
    holds a control character (none can be written in a desktop entry)."""
    # no control character (a line break, a tab...): string values may hold none (the spec, "Possible value types")
    if any(ord(ch) < 0x20 or ch == "\x7f" for a in argv for ch in a):
        raise ValueError("a command-line argument with a control character cannot be put in a desktop entry")
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        f"Name={APP_NAME}",
        "Comment=" + _("Connection manager for multihomed Mobile IPv6 nodes, started in the tray at login"),
        f"Exec={exec_line(argv)}",
        f"Icon={APP_ID}",
        "Terminal=false",
        "Categories=Network;Monitor;Qt;",
        "X-GNOME-Autostart-enabled=true",
        "X-KDE-autostart-after=panel",
        "",
    ])


def write_entry(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Write the autostart entry (atomically; the directory is made). Returns its path. Raises OSError."""
    from ..atomicfile import atomic_replace
    path = entry_path(environ)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    data = desktop_entry(list(argv) if argv is not None else command()).encode("utf-8")
    atomic_replace(path, lambda f: f.write(data), mode=0o644)
    return path


def remove_entry(environ: Mapping[str, str] | None = None) -> bool:
    """Remove the autostart entry; False when there was none. Raises OSError (other than not there)."""
    try:
        os.unlink(entry_path(environ))
    except FileNotFoundError:
        return False
    return True


def is_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """The autostart entry is there and not hidden (``Hidden=true`` means deleted, per the spec) nor turned off by
    the desktop (``X-GNOME-Autostart-enabled=false``: GNOME's Startup Applications keep the file)."""
    try:
        with open(entry_path(environ), encoding="utf-8", errors="replace") as f:
            text = f.read(65536)
    except OSError:
        return False
    off = ("Hidden=true", "X-GNOME-Autostart-enabled=false")
    return not any(line.strip().replace(" ", "") in off for line in text.splitlines())


def portal_state_path(environ: Mapping[str, str] | None = None) -> str:
    """Where the portal's last answer is remembered (the sandbox cannot see the entry the portal wrote):
    ``$XDG_CONFIG_HOME/mhgui/autostart-portal``."""
    return os.path.join(os.path.dirname(autostart_dir(environ)), APP_NAME, "autostart-portal")


def is_enabled_any(environ: Mapping[str, str] | None = None, *, flatpak: bool | None = None) -> bool:
    """Whether the app starts at login: the autostart entry, or inside a Flatpak the portal's last
    granted answer. Blocking (file reads)."""
    if in_flatpak(environ) if flatpak is None else flatpak:
        try:
            with open(portal_state_path(environ), encoding="ascii", errors="replace") as f:
                return f.read(16).strip() == "1"
        except OSError:
            return False
    return is_enabled(environ)


def _remember_portal(enabled: bool, environ: Mapping[str, str] | None) -> None:
    from ..atomicfile import atomic_replace
    path = portal_state_path(environ)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    atomic_replace(path, lambda f: f.write(b"1\n" if enabled else b"0\n"), mode=0o600)


@dataclass(frozen=True)
class AutostartResult:
    """What :func:`set_autostart` did: ``enabled`` now, ``how`` ("file" or "portal"), ``message``
    (one sentence for the user; a failure says why)."""

    ok: bool
    enabled: bool
    how: str
    message: str


async def set_autostart(enabled: bool, *, flatpak: bool | None = None, bus_address: str | None = None,
                        environ: Mapping[str, str] | None = None) -> AutostartResult:
    """Turn starting at login on or off: the autostart file, or the Background portal in a Flatpak.
    Never raises: a failure is an :class:`AutostartResult` with ``ok`` False."""
    loop = asyncio.get_running_loop()
    if in_flatpak(environ) if flatpak is None else flatpak:
        from ..sources.portal import PortalError, request_background
        try:  # the command inside the sandbox: the portal's autostart entry runs it with "flatpak run"
            r = await request_background(autostart=enabled, commandline=[APP_NAME, TRAY_FLAG],
                                         reason=_("Start mhgui in the tray at login"), bus_address=bus_address)
        except PortalError as e:
            return AutostartResult(False, not enabled, "portal",
                                   _("Could not change the start at login: {error}").format(error=e))
        if not r.ok:
            return AutostartResult(False, r.autostart, "portal",
                                   _("Start at login was not allowed (the request was cancelled or refused)."))
        if r.autostart != enabled:
            return AutostartResult(False, r.autostart, "portal",
                                   _("The desktop did not change the start at login."))
        try:
            await loop.run_in_executor(None, _remember_portal, r.autostart, environ)
        except OSError:
            pass  # the portal has it; the box may show it off next time
        return AutostartResult(True, r.autostart, "portal",
                               _("mhgui starts in the tray at login.") if enabled
                               else _("mhgui no longer starts at login."))
    try:
        if enabled:
            path = await loop.run_in_executor(None, write_entry, None, environ)
        else:
            await loop.run_in_executor(None, remove_entry, environ)
            path = entry_path(environ)
    except OSError as e:
        return AutostartResult(False, not enabled, "file", _("Could not change the start at login ({path}): "
                                                             "{error}").format(path=entry_path(environ),
                                                                               error=e.strerror or e))
    except ValueError:  # the command has a control character, or bytes that are not UTF-8 (an odd path)
        return AutostartResult(False, not enabled, "file", _(
            "Could not turn on the start at login: the path of this installation ({path}) cannot be written in "
            "a desktop entry.").format(path=ascii(sys.argv[0] if sys.argv else "")))
    return AutostartResult(True, enabled, "file",
                           (_("mhgui starts in the tray at login ({path}).") if enabled
                            else _("mhgui no longer starts at login ({path} removed).")).format(path=path))
