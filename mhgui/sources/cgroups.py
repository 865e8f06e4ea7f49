"""Which applications run in the user's session (read from cgroupfs; parsing in :mod:`mhgui.core.cgroups`).

Unprivileged: reads ``/proc/self/cgroup`` and lists the directories under the session manager's
``app.slice`` (``user@UID.service``). Blocking file reads: call :func:`running_apps` through
:func:`list_running_apps` (the default executor), never on the GUI thread.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from mhgui.core import cgroups as cg
from mhgui.i18n import _

__all__ = ["AppsFound", "find_running_apps", "list_running_apps", "list_running_apps_found", "running_apps"]


@dataclass(frozen=True, slots=True)
class AppsFound:
    """What :func:`find_running_apps` found. ``scopes``: the application scopes, sorted; ``where``: the
    cgroups looked in (``/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice``) or, when
    nothing could be looked in, why (``cgroup v2 is not mounted``), for the user when ``scopes`` is empty."""

    scopes: list[cg.AppScope] = field(default_factory=list)
    where: str = ""


def running_apps(proc_cgroup: str = "/proc/self/cgroup", mountinfo: str = "/proc/self/mountinfo",
                 limit: int = 5000) -> list[cg.AppScope]:
    """The application scopes of this process's session (every session when this process is in none,
    e.g. started from a root shell); [] when cgroup v2 is not there or not readable."""
    return find_running_apps(proc_cgroup, mountinfo, limit).scopes


def find_running_apps(proc_cgroup: str = "/proc/self/cgroup", mountinfo: str = "/proc/self/mountinfo",
                      limit: int = 5000) -> AppsFound:
    """:func:`running_apps` with where they were looked for (:class:`AppsFound`). Never raises."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            mount = cg.cgroup2_mount(f.read())
        with open(proc_cgroup, encoding="utf-8", errors="replace") as f:
            own = cg.parse_proc_cgroup(f.read())
    except OSError as e:
        return AppsFound([], _("{path} is not readable: {why}").format(path=e.filename or proc_cgroup,
                                                                     why=e.strerror or e))
    if mount is None:
        return AppsFound([], _("cgroup v2 is not mounted"))
    session = cg.own_session(own or "")
    found: list[str] = []
    roots = [session] if session else []
    if not roots:  # every user's manager
        try:
            for u in os.scandir(os.path.join(mount, "user.slice")):
                if u.is_dir():
                    roots += [f"user.slice/{u.name}/{m.name}" for m in os.scandir(u.path)
                              if m.name.startswith("user@") and m.is_dir()]
        except OSError:
            pass
    stack = [f"{r}/app.slice" for r in roots]
    while stack and len(found) < limit:
        rel = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(mount, rel)))
        except OSError:
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                found.append(f"{rel}/{e.name}")
                if e.name.endswith(".slice"):
                    stack.append(f"{rel}/{e.name}")
    if session:
        where = os.path.join(mount, session, "app.slice")
    elif roots:
        where = os.path.join(mount, "user.slice", "user-*.slice", "user@*.service", "app.slice")
    else:
        where = _("{path}: no user session there").format(path=os.path.join(mount, "user.slice"))
    return AppsFound(cg.scopes_of(found), where)


async def list_running_apps() -> list[cg.AppScope]:
    """:func:`running_apps` in the default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, running_apps)


async def list_running_apps_found() -> AppsFound:
    """:func:`find_running_apps` in the default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, find_running_apps)
