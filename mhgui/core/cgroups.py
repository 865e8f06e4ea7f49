"""Desktop applications as cgroups: parsing and matching, pure (no I/O; the reading is in
:mod:`mhgui.sources.cgroups` and :mod:`mhgui.helper.steering_apps`).

A systemd user session runs each application it launches in a transient scope of its own
(``systemd.unit(5)``; the naming is the XDG "desktop application as systemd unit" convention of
``systemd.special(7)`` and the Desktop Entry spec, used by GNOME, KDE and ``systemd-run --user
--scope``)::

    /user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox-1234.scope
    /user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-1234.scope
    /user.slice/user-1000.slice/user@1000.service/app.slice/app-flatpak-org.mozilla.firefox-5678.scope

Unit names are ``app[-LAUNCHER]-APPID[@RANDOM|-RANDOM].scope`` (or ``.service``); the launcher is
one of :data:`LAUNCHERS`. Paths here are relative to the cgroup2 root, without a leading ``/``
(``user.slice/user-1000.slice/...``); a cgroup's *level* is its number of path components (the
root is level 0), as nft's ``socket cgroupv2 level N`` counts it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from ..i18n import _

__all__ = ["AppScope", "LAUNCHERS", "MAX_LEVEL", "MAX_PATH", "app_of_unit", "cgroup2_mount", "check_app_id", "check_cgroup_path",
           "level_of", "matches", "nft_prefix", "own_session", "parse_proc_cgroup", "scopes_of"]

#: Launcher prefixes that desktops put between ``app-`` and the application id.
LAUNCHERS = ("gnome", "kde", "flatpak", "snap", "dbus", "xdg-autostart", "plasma")
MAX_PATH = 1024
#: The deepest cgroup level ``socket cgroupv2 level N`` can match (the kernel's nft_socket refuses more).
MAX_LEVEL = 255
_APP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_UNIT = re.compile(r"app-(?P<body>.+?)(?:[-@](?P<inst>[0-9a-f]{6,64}|[0-9]+))?\.(?:scope|service)")


def check_app_id(text: object) -> str:
    """An application id as desktops put it in unit names (``firefox``, ``org.mozilla.firefox``):
    1..128 of ``A-Z a-z 0-9 . _ + -``, starting with a letter or digit. ValueError otherwise."""
    if not isinstance(text, str) or not _APP_ID.fullmatch(text):
        raise ValueError(_("{value} is not an application id (letters, digits, . _ + -; "
                           "for example firefox or org.mozilla.firefox)").format(value=ascii(text)[:80]))
    return text


def check_cgroup_path(text: object) -> str:
    """A cgroup path relative to the cgroup2 root (a leading ``/`` is dropped): ``user.slice/x.scope``.
    ValueError for empty, ``.``/``..`` components, control characters, quotes and backslashes, more than
    1024 characters or 255 components (:data:`MAX_LEVEL`)."""
    if not isinstance(text, str):
        raise ValueError(_("a cgroup path must be a string"))
    path = text.strip("/")
    if not path or len(path) > MAX_PATH:
        raise ValueError(_("a cgroup path has 1..{max} characters").format(max=MAX_PATH))
    for part in path.split("/"):
        if part in ("", ".", "..") or any(ord(c) < 0x20 or c in '"\\' or ord(c) == 0x7F for c in part):
            raise ValueError(_("cgroup path {path}: component {component} is not allowed").format(
                path=ascii(text)[:80], component=ascii(part)[:40]))
    if level_of(path) > MAX_LEVEL:
        raise ValueError(_("a cgroup path has at most {max} components (nft matches levels up to {max})").format(
            max=MAX_LEVEL))
    return path


def level_of(path: str) -> int:
    """The level of a cgroup (path relative to the root; the root is 0)."""
    return len([p for p in path.split("/") if p])


def app_of_unit(unit: str) -> tuple[str, str] | None:
    """(application id, launcher or "") of an application unit name, None for anything else.

    ``app-firefox-1234.scope`` -> ("firefox", ""); ``app-gnome-firefox-1234.scope`` -> ("firefox",
    "gnome"); ``app-flatpak-org.mozilla.firefox-99.scope`` -> ("org.mozilla.firefox", "flatpak");
    ``app-org.kde.konsole@ab12cd34.service`` -> ("org.kde.konsole", ""). Escapes (``\\x2d``) are
    decoded. ``app.slice`` and ``app-gnome-firefox.slice`` are not applications.
    """
    m = _UNIT.fullmatch(unit)
    if m is None:
        return None
    body = re.sub(r"\\x([0-9a-fA-F]{2})", lambda x: chr(int(x.group(1), 16)), m.group("body"))
    launcher = ""
    for name in LAUNCHERS:
        if body.startswith(name + "-") and len(body) > len(name) + 1:
            launcher, body = name, body[len(name) + 1:]
            break
    if not _APP_ID.fullmatch(body):
        return None
    return body, launcher


@dataclass(frozen=True, order=True)
class AppScope:
    """One running application instance: ``app_id`` (``firefox``), ``path`` (its cgroup, relative to the
    root), ``unit`` (the scope's name), ``launcher`` ("" or one of :data:`LAUNCHERS`)."""

    app_id: str
    path: str
    unit: str
    launcher: str = ""

    @property
    def level(self) -> int:
        return level_of(self.path)


def matches(app_id: str, scope: AppScope) -> bool:
    """Whether a rule for ``app_id`` takes ``scope``: equal ids, ignoring case; a reverse-DNS id also
    matches its last part (``org.mozilla.firefox`` scopes match a rule for ``firefox``)."""
    a, b = app_id.lower(), scope.app_id.lower()
    return a == b or b.rsplit(".", 1)[-1] == a


def scopes_of(paths: Iterable[str]) -> list[AppScope]:
    """The application scopes among cgroup ``paths`` (relative to the root), sorted: a path whose last
    component is an application unit (:func:`app_of_unit`) inside an ``app.slice`` (or a slice inside it).
    Paths :func:`check_cgroup_path` refuses (quotes, control characters: any user may name the cgroups
    of the tree systemd delegates to their session) are left out."""
    out = []
    for path in paths:
        parts = [p for p in path.split("/") if p]
        if len(parts) < 2 or "app.slice" not in parts[:-1]:
            continue
        try:  # users name the slices of their own (delegated) tree: a name nft cannot be given is skipped
            check_cgroup_path(path)
        except ValueError:
            continue
        got = app_of_unit(parts[-1])
        if got is not None:
            out.append(AppScope(got[0], "/".join(parts), parts[-1], got[1]))
    return sorted(out)


def parse_proc_cgroup(text: str) -> str | None:
    """The cgroup2 path of a process from ``/proc/PID/cgroup`` (the ``0::/PATH`` line; cgroups(7)), relative
    to the root ("" for the root), None when there is none (cgroup v1 only)."""
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:].strip().strip("/")
    return None


def own_session(path: str) -> str | None:
    """The ``user@UID.service`` cgroup that holds ``path`` (the caller's session manager), None when the
    process is not in a user session."""
    parts = [p for p in path.split("/") if p]
    for i, p in enumerate(parts):
        if re.fullmatch(r"user@[0-9]+\.service", p):
            return "/".join(parts[:i + 1])
    return None


def cgroup2_mount(mountinfo: str) -> str | None:
    """The mount point of the cgroup2 hierarchy from ``/proc/self/mountinfo`` (proc(5)), the first one;
    None when cgroup v2 is not mounted. (Unified hosts: ``/sys/fs/cgroup``; hybrid: ``/sys/fs/cgroup/unified``.)"""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if sep and right.split()[:1] == ["cgroup2"] and len(fields) >= 5:
            return fields[4].replace("\\040", " ")
    return None


def nft_prefix(mount: str) -> str | None:
    """What nft must put before a cgroup path: nft resolves ``socket cgroupv2`` paths under
    ``/sys/fs/cgroup`` (nftables ``SYSFS_CGROUPSV2_PATH``): "" on unified hosts, ``unified/`` on hybrid
    ones; None when cgroup2 is mounted elsewhere (nft cannot name its cgroups)."""
    mount = mount.rstrip("/")
    if mount == "/sys/fs/cgroup":
        return ""
    if mount.startswith("/sys/fs/cgroup/"):
        return mount[len("/sys/fs/cgroup/"):] + "/"
    return None
