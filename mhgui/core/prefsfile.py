"""The user's failover preferences as a TOML file (``$XDG_CONFIG_HOME/mhgui/failover.toml``). Pure: no Qt, no I/O.

Format (read with the stdlib ``tomllib``, written with ``tomli-w``, which puts
short interface tables inline, ``interface = [{ name = "eth0", mark = "primary" }, ...]``;
both forms are the same TOML)::

    holdup = 5              # seconds a better interface must stay usable before going back (0-600)
    notifications = true    # desktop notifications on link loss and failover
    churn_window = 2.0      # seconds a removed CoA may take to come back (a DHCPv6 renewal)
    require_router = true   # an interface without an IPv6 default router is not usable

    [[interface]]           # best first
    name = "eth0"
    mark = "primary"        # primary | backup (used only when no primary is usable) | never

    [[interface]]
    name = "wwan0"
    mark = "backup"

Every key is optional. :func:`parse_prefs` never gives up on a file: it keeps
what it can read and lists each problem (:class:`PrefsProblem`, with the
file, the line when it can be found, and the key). Unknown keys, at the top
or in an ``[[interface]]`` table, are reported and kept: :func:`render_prefs`
writes them back. A problem that loses something (a value replaced by its
default, an entry skipped) is ``lossy``; the store keeps a copy of such a
file before replacing it.

What a change means for the daemon (:func:`mnif_changes`,
:func:`restart_needed`): the interface order and marks become UMIP
``MnIfPreference`` values (:func:`~mhgui.core.failover.mnifpreference_values`);
mainline UMIP reads them only at start, so changing them means writing
``mip6d.conf`` through the privileged helper and restarting mip6d. The
hold-up time, notifications, ``churn_window`` and ``require_router`` are
the app's own and take effect without touching the daemon.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

import tomli_w

from ..i18n import N_, _
from .capabilities import DaemonCapabilities
from .failover import Preferences, mnifpreference_values, usable_interfaces, valid_interface_name
from .settings import locate_line, type_name

__all__ = [
    "DEFAULT_HOLDUP",
    "FailoverSettings",
    "HOLDUP_MAX",
    "MARKS",
    "MARK_LABELS",
    "OrderEntry",
    "ParsedPrefs",
    "PrefsError",
    "PrefsProblem",
    "app_side_changes",
    "entries_to_prefs",
    "is_interface_name",
    "live_interface_rows",
    "marks_of",
    "merge_interfaces",
    "mnif_changes",
    "parse_prefs",
    "prefs_from_mnif",
    "render_prefs",
    "restart_needed",
]

#: the marks, in the file and in the model: primary (used in order), backup (only when no primary is usable), never
MARKS = ("primary", "backup", "never")
#: how the UI names each mark
MARK_LABELS = {"primary": N_("primary"), "backup": N_("backup only"), "never": N_("never")}
#: hold-up limits, seconds
DEFAULT_HOLDUP = 5
HOLDUP_MAX = 600

_TOP_KEYS = ("holdup", "notifications", "churn_window", "require_router", "interface")
_IF_KEYS = ("name", "mark")
_POS_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def is_interface_name(name: object) -> bool:
    return valid_interface_name(name)


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class FailoverSettings:
    """Everything ``failover.toml`` holds.

    ``prefs``: the policy's :class:`~mhgui.core.failover.Preferences` (order,
    marks, hold-up, churn window, router requirement); ``notifications``:
    desktop notifications on or off; ``extra``: unknown top-level keys and
    ``interface_extra``: unknown keys of each interface's table, both kept so
    that saving loses nothing another version of mhgui wrote.
    """

    prefs: Preferences = field(default_factory=lambda: Preferences(order=(), holdup=float(DEFAULT_HOLDUP)))
    notifications: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)
    interface_extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def with_prefs(self, prefs: Preferences, notifications: bool | None = None) -> "FailoverSettings":
        """A copy with new preferences; unknown keys of interfaces no longer listed are dropped."""
        kept = {n: v for n, v in self.interface_extra.items() if n in prefs.order}
        return replace(self, prefs=prefs, interface_extra=kept,
                       notifications=self.notifications if notifications is None else notifications)


@dataclass(frozen=True)
class PrefsProblem:
    """One problem in the file: ``str()`` is ``"PATH:LINE: message"`` (``"PATH: message"`` without a line).

    ``key``: the key concerned (dotted, e.g. ``interface[2].mark``) or None;
    ``lossy``: something in the file is not used and would not be written back.
    """

    path: str
    line: int | None
    key: str | None
    message: str
    lossy: bool = True

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


class PrefsError(ValueError):
    """Raised by ``parse_prefs(..., strict=True)`` for the first lossy problem; ``problem`` is it."""

    def __init__(self, problem: PrefsProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class ParsedPrefs:
    """What :func:`parse_prefs` read: the settings (defaults where the file had none or a bad value), the problems."""

    settings: FailoverSettings
    problems: tuple[PrefsProblem, ...] = ()

    @property
    def lossy(self) -> bool:
        return any(p.lossy for p in self.problems)


# --------------------------------------------------------------------------- reading
def _show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _locate(text: str, key: str | None, index: int | None) -> int | None:
    return locate_line(text, "interface", key, index)


def parse_prefs(text: str, path: str = "failover.toml", *, strict: bool = False) -> ParsedPrefs:
    """Read ``failover.toml``'s ``text`` (``path`` only names it in problems).

    Never raises unless ``strict``: invalid TOML gives the defaults and one
    problem with its line; a bad value gives its default, a bad interface
    entry is skipped (an unknown mark counts as ``never``, the safe reading),
    each with a problem naming the line and key; unknown keys are kept and
    reported (not lossy). ``strict``: raise :class:`PrefsError` for the first
    lossy problem instead.
    """
    problems: list[PrefsProblem] = []

    def problem(message: str, key: str | None, index: int | None = None, *, lossy: bool = True,
                dotted: str | None = None) -> None:
        p = PrefsProblem(path, _locate(text, key, index), dotted or key, message, lossy)
        if strict and lossy:
            raise PrefsError(p)
        problems.append(p)

    try:
        data = tomllib.loads(text)
    except RecursionError:  # tomllib recurses per nesting level: a hostile file, not a crash
        p = PrefsProblem(path, None, None, _("not valid TOML: nested too deeply; the defaults are used"), True)
        if strict:
            raise PrefsError(p) from None
        return ParsedPrefs(FailoverSettings(), (p,))
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        line = None
        m = _POS_RE.search(msg)
        if m:
            line = int(m.group(1))
            msg = f"{msg[: m.start()]} (column {m.group(2)})"
        elif msg.endswith(" (at end of document)"):
            line = len(text.rstrip("\n").split("\n"))
            msg = msg[: -len(" (at end of document)")] + _(" at the end of the file")
        p = PrefsProblem(path, line, None, _("not valid TOML: {why}; the defaults are used").format(why=msg), True)
        if strict:
            raise PrefsError(p) from None
        return ParsedPrefs(FailoverSettings(), (p,))

    extra = {k: v for k, v in data.items() if k not in _TOP_KEYS}
    for key in list(extra):
        if _depth(extra[key]) > MAX_KEPT_DEPTH:
            del extra[key]
            problem(_("unknown key {key}: nested more than {n} levels deep; dropped").format(
                key=_show(key), n=MAX_KEPT_DEPTH), key)
            continue
        problem(_("unknown key {key} (kept as it is; known: {known})").format(key=_show(key), known=", ".join(_TOP_KEYS)),
                key, lossy=False)

    def seconds(key: str, default: float, maximum: float) -> float:
        if key not in data:
            return default
        v = data[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            problem(_("{key} must be a number of seconds, not {type}; {default} is used").format(
                key=key, type=type_name(v), default=f"{default:g}"), key)
            return default
        if not (math.isfinite(v) and 0 <= v <= maximum):
            problem(_("{key} must be from 0 to {max} seconds, not {value}; {default} is used").format(
                key=key, max=f"{maximum:g}", value=repr(v), default=f"{default:g}"), key)
            return default
        return float(v)

    def boolean(key: str, default: bool) -> bool:
        if key not in data:
            return default
        v = data[key]
        if not isinstance(v, bool):
            problem(_("{key} must be true or false, not {type}; {default} is used").format(
                key=key, type=type_name(v), default="true" if default else "false"), key)
            return default
        return v

    holdup = seconds("holdup", float(DEFAULT_HOLDUP), HOLDUP_MAX)
    churn_window = seconds("churn_window", 2.0, HOLDUP_MAX)
    notifications = boolean("notifications", True)
    require_router = boolean("require_router", True)

    order: list[str] = []
    backup: set[str] = set()
    never: set[str] = set()
    interface_extra: dict[str, dict[str, Any]] = {}
    tables = data.get("interface", [])
    if not isinstance(tables, list):
        problem(_("interface must be an array of tables ([[interface]]), not {type}; ignored").format(
            type=type_name(tables)), "interface")
        tables = []
    for i, table in enumerate(tables):
        where = _("interface #{n}").format(n=i + 1)
        dotted = f"interface[{i}]"
        if not isinstance(table, dict):
            problem(_("{where} must be a table (name = ..., mark = ...), not {type}; ignored").format(
                where=where, type=type_name(table)), "interface", dotted=dotted)
            continue
        name = table.get("name")
        if name is None:
            problem(_("{where} has no name (name = \"eth0\"); ignored").format(where=where), None, i,
                    dotted=f"{dotted}.name")
            continue
        if not is_interface_name(name):
            what = type_name(name) if not isinstance(name, str) else _show(name)
            problem(_("{where}: {what} is not an interface name (1 to 15 characters, no space, '/' or ':'); ignored")
                    .format(where=where, what=what), "name", i, dotted=f"{dotted}.name")
            continue
        if name in order:
            problem(_("{where}: {name} is listed twice; the first entry is used").format(where=where, name=name),
                    "name", i, dotted=f"{dotted}.name")
            continue
        mark = table.get("mark", "primary")
        if mark not in MARKS:
            problem(_("{where} ({name}): unknown mark {mark} (primary, backup or never); never is used").format(
                where=where, name=name, mark=_show(mark)), "mark", i, dotted=f"{dotted}.mark")
            mark = "never"
        order.append(name)
        if mark == "backup":
            backup.add(name)
        elif mark == "never":
            never.add(name)
        unknown = {k: v for k, v in table.items() if k not in _IF_KEYS and _depth(v) <= MAX_KEPT_DEPTH}
        for k in [k for k in table if k not in _IF_KEYS and k not in unknown]:
            problem(_("{where} ({name}): unknown key {key}: nested more than {n} levels deep; dropped").format(
                where=where, name=name, key=_show(k), n=MAX_KEPT_DEPTH), k, i, dotted=f"{dotted}.{k}")
        for k in unknown:
            problem(_("{where} ({name}): unknown key {key} (kept as it is; known: {known})").format(
                where=where, name=name, key=_show(k), known=", ".join(_IF_KEYS)), k, i, lossy=False, dotted=f"{dotted}.{k}")
        if unknown:
            interface_extra[name] = unknown

    prefs = Preferences(order=tuple(order), backup=frozenset(backup), never=frozenset(never), holdup=holdup,
                        churn_window=churn_window, require_router=require_router)
    return ParsedPrefs(FailoverSettings(prefs, notifications, extra, interface_extra), tuple(problems))


# --------------------------------------------------------------------------- writing
_HEADER = """\
# mhgui failover preferences (TOML), written by mhgui's Preferences dialog.
# holdup: seconds a better interface must stay usable before going back to it (0-600).
# [[interface]]: best first; mark = "primary", "backup" (used only when no primary is usable) or "never".
# Changing the order or the marks changes MnIfPreference in mip6d.conf (UMIP restarts to read it).

"""


#: unknown values nested deeper than this are dropped (reported as lost), not kept: they could not be written back
MAX_KEPT_DEPTH = 32


def _depth(v: Any, limit: int = MAX_KEPT_DEPTH + 1) -> int:
    """Nesting depth of a TOML value (arrays and tables), counted up to ``limit``."""
    stack, deepest = [(v, 1)], 0
    while stack:
        x, d = stack.pop()
        deepest = max(deepest, d)
        if deepest >= limit:
            return deepest
        if isinstance(x, dict):
            stack += [(y, d + 1) for y in x.values()]
        elif isinstance(x, list):
            stack += [(y, d + 1) for y in x]
    return deepest


def _number(v: float) -> int | float:
    return int(v) if float(v).is_integer() else float(v)


def render_prefs(settings: FailoverSettings) -> str:
    """TOML text for ``settings`` that :func:`parse_prefs` reads back equal (with the unknown keys kept)."""
    p = settings.prefs
    doc: dict[str, Any] = {
        "holdup": _number(p.holdup),
        "notifications": settings.notifications,
        "churn_window": _number(p.churn_window),
        "require_router": p.require_router,
    }
    for k, v in settings.extra.items():
        if k not in _TOP_KEYS:
            doc[k] = v
    interfaces = []
    for name in p.order:
        mark = "backup" if name in p.backup else "never" if name in p.never else "primary"
        entry: dict[str, Any] = {"name": name, "mark": mark}
        for k, v in settings.interface_extra.get(name, {}).items():
            if k not in _IF_KEYS:
                entry[k] = v
        interfaces.append(entry)
    if interfaces:
        doc["interface"] = interfaces
    return _HEADER + tomli_w.dumps(doc)


# --------------------------------------------------------------------------- marks and the order list
def marks_of(prefs: Preferences) -> list[tuple[str, str]]:
    """``[(name, mark), ...]`` in preference order."""
    return [(n, "backup" if n in prefs.backup else "never" if n in prefs.never else "primary") for n in prefs.order]


def entries_to_prefs(marked: Iterable[tuple[str, str]], base: Preferences | None = None, *,
                     holdup: float | None = None) -> Preferences:
    """Preferences from ``[(name, mark), ...]``; timings from ``base`` (or the defaults), ``holdup`` overriding.

    Raises ``ValueError`` for a bad name, a name twice or an unknown mark.
    """
    order, backup, never = [], set(), set()
    for name, mark in marked:
        if mark not in MARKS:
            raise ValueError(f"unknown mark {mark!r} for {name} (primary, backup or never)")
        order.append(name)
        if mark == "backup":
            backup.add(name)
        elif mark == "never":
            never.add(name)
    base = base if base is not None else FailoverSettings().prefs
    return Preferences(order=tuple(order), backup=frozenset(backup), never=frozenset(never),
                       holdup=float(base.holdup if holdup is None else holdup),
                       churn_window=base.churn_window, require_router=base.require_router)


def prefs_from_mnif(values: Mapping[str, int], base: Preferences | None = None) -> Preferences:
    """Preferences matching ``MnIfPreference`` values read from mip6d.conf: ascending value (ties by name),
    0 = never. UMIP has no "backup only": every used interface is a primary."""
    used = sorted((v, n) for n, v in values.items() if v > 0 and is_interface_name(n))
    unused = sorted(n for n, v in values.items() if v <= 0 and is_interface_name(n))
    return entries_to_prefs([(n, "primary") for _, n in used] + [(n, "never") for n in unused], base)


@dataclass(frozen=True)
class OrderEntry:
    """One row of the dialog's interface list: a live interface, a saved one, or both.

    ``present``: the interface exists now; ``usable``: it could carry the node
    now (see :func:`~mhgui.core.failover.usable_interfaces`); ``note``: why not,
    or anything else to say; ``saved``: it is in the saved order.
    """

    name: str
    kind: str = ""
    usable: bool = False
    note: str = ""
    present: bool = True
    mark: str = "primary"
    saved: bool = True


def merge_interfaces(live: Sequence[tuple[str, str, bool, str]], saved: Preferences | None,
                     current_mnif: Mapping[str, int] | None = None) -> list[OrderEntry]:
    """The dialog's rows: the saved order (its marks), then the interfaces present now that it does not list.

    ``live``: ``(name, kind, usable, note)`` for each interface now. Saved names
    that are not present stay, with ``present=False``. Interfaces not in the
    saved order are never used by the policy (and, not in mip6d.conf, not by
    UMIP), so they are appended marked ``never``: the user places them.

    Without a saved order (``saved`` None or empty): the order from the daemon's
    ``MnIfPreference`` values when ``current_mnif`` is known (interfaces it does
    not list are ``never``, as UMIP does not use them), else the live interfaces
    in the given order, all primary (a proposal).
    """
    live_by_name: dict[str, tuple[str, str, bool, str]] = {}
    for row in live:
        if row[0] not in live_by_name and is_interface_name(row[0]):
            live_by_name[row[0]] = row
    if saved is not None and saved.order:
        base, new_mark, from_saved = marks_of(saved), "never", True
    elif current_mnif:
        base, new_mark, from_saved = marks_of(prefs_from_mnif(current_mnif)), "never", False
    else:
        base, new_mark, from_saved = [], "primary", False
    out: list[OrderEntry] = []
    listed = set()
    for name, mark in base:
        listed.add(name)
        if name in live_by_name:
            _name, kind, usable, note = live_by_name[name]
            out.append(OrderEntry(name, kind, bool(usable), note, True, mark, from_saved))
        else:
            out.append(OrderEntry(name, "", False, _("not present"), False, mark, from_saved))
    for name, (_name, kind, usable, note) in live_by_name.items():
        if name not in listed:
            note = note if new_mark == "primary" else (_("new (not in the saved list)") + (f"; {note}" if note else ""))
            out.append(OrderEntry(name, kind, bool(usable), note, True, new_mark, False))
    return out


def live_interface_rows(state, analysis, *, require_router: bool = True) -> list[tuple[str, str, bool, str]]:
    """``(name, kind, usable, note)`` for every access interface of a
    :class:`~mhgui.core.model.NodeState` (tunnels and loopback left out), by ifindex: the dialog's ``interfaces``."""
    usable = usable_interfaces(state, analysis, require_router=require_router)
    rows = []
    for ifindex in sorted(state.interfaces):
        iface = state.interfaces[ifindex]
        kind = getattr(iface.kind, "value", str(iface.kind))
        if kind in ("tunnel", "loopback"):
            continue
        if iface.name in usable:
            note = ""
        elif not iface.up:
            note = _("down") if not iface.admin_up else _("no carrier") if not iface.carrier else iface.operstate
        elif ifindex in analysis.home_links:
            note = _("home link")
        elif ifindex not in analysis.active:
            note = _("no usable care-of address")
        elif require_router and not state.routers.get(ifindex):
            note = _("no default router")
        else:
            note = _("NetworkManager: not connected")
        rows.append((iface.name, kind, iface.name in usable, note))
    return rows


# --------------------------------------------------------------------------- what a change means
def mnif_changes(old: Preferences | None, new: Preferences,
                 current: Mapping[str, int] | None = None) -> dict[str, int]:
    """The ``MnIfPreference`` values to write for ``new``: ``{interface: value}``, only those that change.

    Compared with ``current`` (the values in mip6d.conf now) when known, else
    with what ``old`` gives (nothing when None). An interface absent from the
    comparison counts as 0: without ``MnUseAllInterfaces`` UMIP does not use an
    interface mip6d.conf does not list. An interface that was listed and is
    not in ``new`` any more gets 0 (the policy never uses an unlisted interface).
    """
    before = dict(current) if current is not None else (mnifpreference_values(old) if old is not None else {})
    after = mnifpreference_values(new)
    for name, value in before.items():
        if name not in after and value != 0:
            after[name] = 0
    return {n: v for n, v in after.items() if before.get(n, 0) != v}


def restart_needed(old: Preferences | None, new: Preferences, caps: DaemonCapabilities | None = None,
                   current: Mapping[str, int] | None = None) -> bool:
    """Whether applying ``new`` means writing ``MnIfPreference`` into mip6d.conf and restarting the daemon.

    True when the order or the marks change the ``MnIfPreference`` values
    (:func:`mnif_changes`) and the daemon cannot rebind at run time (mainline
    UMIP: ``caps.runtime_rebind`` False; ``caps`` None is taken as UMIP).
    Hold-up, notifications, ``churn_window`` and ``require_router`` are the
    app's own: they never need a restart.
    """
    if caps is not None and caps.runtime_rebind:
        return False
    return bool(mnif_changes(old, new, current))


def app_side_changes(old: FailoverSettings | None, new: FailoverSettings) -> list[str]:
    """Names of the app-side settings that differ: holdup, notifications, churn_window, require_router."""
    base = old if old is not None else FailoverSettings()
    out = [n for n in ("holdup", "churn_window", "require_router") if getattr(base.prefs, n) != getattr(new.prefs, n)]
    if base.notifications != new.notifications:
        out.append("notifications")
    return out
