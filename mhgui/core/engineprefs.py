"""The mobility engine's per-home-address uplink preferences, for the preferences dialog and the tray. Pure.

The engine (``mhgui-mn``) keeps, per home address, an ordered ``preference`` list, a
``backup`` list (used only when nothing else works) and a ``never`` list; an interface
none of them names is allowed, ranked after the preferred ones and before the backups
(:class:`mhgui.engine.mn_binding.UplinkPrefs`). Its ``GetBindings`` carries them per HoA
(:meth:`mhgui.daemons.engine.EngineDriver.raw_bindings`), ``SetPreferences`` replaces them.

- :func:`hoa_uplinks`: the lists of each HoA from the engine's bindings;
- :func:`engine_rows`: the dialog's rows for one HoA (listed ones first, in the engine's
  order, then the node's other interfaces, allowed, marked primary);
- :func:`engine_lists`: what to send for rows as edited (unlisted rows left at the end stay
  unlisted, so opening and applying the dialog changes nothing);
- :func:`engine_problems`: why a HoA's lists cannot be sent.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..i18n import N_, _, ngettext
from .failover import valid_interface_name
from .prefsfile import OrderEntry

__all__ = ["HoaUplinks", "engine_lists", "engine_problems", "engine_rows", "hoa_uplinks", "uplink_order"]

#: the status note of an interface the engine's lists do not name
UNLISTED = N_("not listed: allowed after the listed ones")


@dataclass(frozen=True, slots=True)
class HoaUplinks:
    """One home address's uplink preferences in the engine, and where it is bound now.

    ``interface``: the uplink of its registration (None: none); ``state``: the engine's word
    (registered, waiting-ack, unbound, refused).
    """

    hoa: str
    preference: tuple[str, ...] = ()
    backup: tuple[str, ...] = ()
    never: tuple[str, ...] = ()
    interface: str | None = None
    state: str | None = None

    @property
    def lists(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        return self.preference, self.backup, self.never

    @property
    def listed(self) -> frozenset[str]:
        return frozenset(self.preference) | frozenset(self.backup) | frozenset(self.never)


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        return ()
    out: list[str] = []
    for n in value:
        if isinstance(n, str) and n and n not in out:
            out.append(n)
    return tuple(out)


def _canon(text: str) -> str:
    try:
        return ipaddress.IPv6Address(text.strip()).compressed
    except ValueError:
        return text.strip()


def hoa_uplinks(raw_bindings: Iterable[Mapping[str, Any]]) -> list[HoaUplinks]:
    """Each HoA's lists from the engine's ``GetBindings`` objects, in the engine's order (junk skipped)."""
    out: list[HoaUplinks] = []
    seen: set[str] = set()
    for b in raw_bindings:
        if not isinstance(b, Mapping) or not isinstance(b.get("hoa"), str):
            continue
        hoa = _canon(b["hoa"])
        if hoa in seen:
            continue
        seen.add(hoa)
        state = b.get("state") if isinstance(b.get("state"), str) else None
        iface = b.get("pending_interface") if state == "waiting-ack" else b.get("interface")
        out.append(HoaUplinks(hoa, _names(b.get("preference")), _names(b.get("backup")), _names(b.get("never")),
                              iface if isinstance(iface, str) and iface else None, state))
    return out


def uplink_order(u: HoaUplinks | None, names: Iterable[str]) -> list[str]:
    """``names`` in the order the engine would try them for ``u``: preferred, unlisted (by name),
    backups; the ``never`` ones last (they are never tried)."""
    names = list(dict.fromkeys(names))
    if u is None:
        return sorted(names)
    pref = [n for n in u.preference if n in names and n not in u.never]
    back = [n for n in u.backup if n in names and n not in u.never and n not in pref]
    never = [n for n in u.never if n in names]
    rest = sorted(set(names) - set(pref) - set(back) - set(never))
    return pref + rest + back + never


def engine_rows(live: Sequence[tuple[str, str, bool, str]], u: HoaUplinks) -> list[OrderEntry]:
    """The dialog's rows for one HoA: what its lists name (preference as primary, backup, never; a name
    that is not an interface now stays, "not present"), then the node's other interfaces (``live``:
    ``(name, kind, usable, note)``), marked primary, since the engine allows them (:data:`UNLISTED`).
    ``saved`` is True for a listed row."""
    by_name: dict[str, tuple[str, str, bool, str]] = {}
    for row in live:
        by_name.setdefault(row[0], row)
    out: list[OrderEntry] = []
    listed: set[str] = set()
    for names, mark in ((u.preference, "primary"), (u.backup, "backup"), (u.never, "never")):
        for name in names:
            if name in listed:
                continue
            listed.add(name)
            if name in by_name:
                _name, kind, usable, note = by_name[name]
                out.append(OrderEntry(name, kind, bool(usable), note, True, mark, True))
            else:
                out.append(OrderEntry(name, "", False, _("not present"), False, mark, True))
    for name, (_name, kind, usable, note) in by_name.items():
        if name not in listed:
            now = _("usable now") if usable and not note else note or _("not usable now")
            out.append(OrderEntry(name, kind, bool(usable), f"{now}; {UNLISTED}", True, "primary", False))
    return out


def engine_lists(marked: Iterable[tuple[str, str]], listed: Iterable[str] = ()) -> tuple[
        tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``(preference, backup, never)`` for rows ``[(name, mark), ...]`` in the dialog's order.

    ``listed``: the names the engine's lists had. Primaries at the end of the primaries that
    were not listed are left out of ``preference``: unlisted, the engine still allows them
    right after the preferred ones, so an untouched dialog sends the engine's own lists back.
    """
    listed = set(listed)
    primaries: list[str] = []
    backup: list[str] = []
    never: list[str] = []
    for name, mark in marked:
        {"primary": primaries, "backup": backup, "never": never}.get(mark, primaries).append(name)
    while primaries and primaries[-1] not in listed:
        primaries.pop()
    return tuple(primaries), tuple(backup), tuple(never)


def engine_problems(hoa: str, marked: Sequence[tuple[str, str]],
                    lists: tuple[Sequence[str], Sequence[str], Sequence[str]] | None = None) -> list[str]:
    """Why the lists of ``hoa`` cannot be sent (empty: they can): an interface listed twice (two ranks for
    one interface: a tie), a name that is not an interface name, an interface both used and marked never,
    or no interface it may use. (The engine's lists are an order, not numbers: there is no gap to refuse,
    and no cap of ten as with mip6d.conf.)"""
    out = []
    if lists is not None:
        pref, backup, never = lists
        seen: set[str] = set()
        twice = sorted({n for n in (*pref, *backup) if n in seen or seen.add(n)})
        if twice:
            out.append(ngettext("{hoa}: {names} is listed twice: an interface has one place in the order.",
                                "{hoa}: {names} are listed twice: an interface has one place in the order.",
                                len(twice)).format(hoa=hoa, names=", ".join(twice)))
        bad = sorted({n for n in (*pref, *backup, *never) if not valid_interface_name(n)}, key=repr)
        if bad:
            out.append(ngettext("{hoa}: {names} is not an interface name (1 to 15 characters, no space, '/' or ':').",
                                "{hoa}: {names} are not an interface name (1 to 15 characters, no space, '/' or ':').",
                                len(bad)).format(hoa=hoa, names=", ".join(map(repr, bad[:5]))))
        both = sorted((set(pref) | set(backup)) & set(never))
        if both:
            out.append(ngettext("{hoa}: {names} is both used and marked never.",
                                "{hoa}: {names} are both used and marked never.", len(both)).format(
                                    hoa=hoa, names=", ".join(both)))
    if not any(m != "never" for _name, m in marked):
        out.append(_("{hoa}: no interface may be used (every one is marked never): the engine could not bind "
                     "this home address. Mark at least one as primary or backup only.").format(hoa=hoa))
    return out
