"""Which NIC each interface name designates over time: renames, and a name taken by another NIC. Pure.

The kernel keys a network interface by its ifindex; a name is a label that can move
(``ip link set eth0 name eth9``, a udev rule, a USB dongle plugged while another one holds
the name). Everything mhgui keeps per interface is keyed by ifindex, but two inputs name
interfaces: UMIP's ``mip6d.conf`` (``Interface "eth0"``, ``MnHomeLink "eth0"``; umip.md
section 2) and the mobility engine's ``mn.toml`` (each home address's ``preference`` /
``backup`` / ``never`` lists), and the user's failover order. When the NIC a name designated
is renamed and another NIC takes the name, such a configuration silently applies to the other
NIC (mip6d looks its interfaces up by name when they appear and at its next start).

:class:`NameTracker` is fed the store's :class:`~mhgui.core.state.Change` lists and says:

- :class:`Renamed`: NIC ``ifindex`` was called ``old`` and is now ``new``;
- :class:`NameTaken`: ``name`` now designates NIC ``ifindex`` while the NIC it designated
  before (``previous``) still exists, under ``previous_now``;
- :meth:`NameTracker.moved`: for a name, whether it still designates the NIC it designated
  first (:class:`NameMove`), so that a configuration naming it can be flagged
  (:meth:`NameTracker.config_problems`).

A NIC that goes away frees its name: the next NIC with that name designates it normally
(a replugged USB modem gets a new ifindex and the same name, and is the same device).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Union

from ..i18n import _

__all__ = ["NameMove", "NameTaken", "NameTracker", "Renamed", "describe_move"]


@dataclass(frozen=True, slots=True)
class Renamed:
    """NIC ``ifindex`` was renamed from ``old`` to ``new``."""

    ifindex: int
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class NameTaken:
    """``name`` now designates NIC ``ifindex``; the NIC it designated before, ``previous``, still
    exists and is now called ``previous_now``."""

    name: str
    ifindex: int
    previous: int
    previous_now: str


NameEvent = Union[Renamed, NameTaken]


@dataclass(frozen=True, slots=True)
class NameMove:
    """``name`` no longer designates the NIC it designated first (``original``, now called
    ``original_now``); ``holder``: the ifindex of the NIC that has the name now, None when none has."""

    name: str
    original: int
    original_now: str
    holder: int | None


def describe_move(m: NameMove, where: str) -> str:
    """One sentence for the user: ``where`` names the configuration (e.g. ``mip6d.conf``)."""
    if m.holder is None:
        return _("{where} names {name}, but that NIC (ifindex {ifindex}) was renamed {new}: "
                 "no interface is called {name} now, so the configuration no longer reaches it.").format(
                     where=where, name=m.name, ifindex=m.original, new=m.original_now)
    return _("{where} names {name}, but {name} is now another NIC (ifindex {holder}); the NIC it named "
             "(ifindex {ifindex}) was renamed {new}: the configuration now applies to the other NIC.").format(
                 where=where, name=m.name, holder=m.holder, ifindex=m.original, new=m.original_now)


class NameTracker:
    """Follows names and NICs (module docstring). ``interfaces``: ``{ifindex: Interface}`` at the start."""

    def __init__(self, interfaces: Mapping[int, object] | None = None) -> None:
        self._name_of: dict[int, str] = {}
        #: name -> the NIC (ifindex) it designated first, while that NIC exists
        self._origin: dict[str, int] = {}
        for ifindex in sorted(interfaces or {}):
            self._see(ifindex, getattr(interfaces[ifindex], "name", None), [])

    def name_of(self, ifindex: int) -> str | None:
        return self._name_of.get(ifindex)

    def ifindex_of(self, name: str) -> int | None:
        """The NIC called ``name`` now, or None."""
        for i, n in self._name_of.items():
            if n == name:
                return i
        return None

    def observe(self, changes: Iterable[object]) -> list[NameEvent]:
        """Take one batch of :class:`~mhgui.core.state.Change`; returns what happened to names, in order."""
        out: list[NameEvent] = []
        for c in changes:
            kind = getattr(c, "kind", "")
            if kind == "link-removed":
                self._gone(c.ifindex)
            elif kind.startswith("link-") and c.ifindex is not None:
                self._see(c.ifindex, getattr(c.after, "name", None), out)
        return out

    def _gone(self, ifindex: int) -> None:
        self._name_of.pop(ifindex, None)
        for name in [n for n, i in self._origin.items() if i == ifindex]:
            # a NIC gone frees its name: the one that has it now (or the next one to take it) is the one meant
            holder = self.ifindex_of(name)
            if holder is None:
                del self._origin[name]
            else:
                self._origin[name] = holder

    def _see(self, ifindex: int, name: str | None, out: list[NameEvent]) -> None:
        if not isinstance(name, str) or not name:
            return
        old = self._name_of.get(ifindex)
        if old == name:
            return
        if old is not None:
            out.append(Renamed(ifindex, old, name))
        self._name_of[ifindex] = name
        origin = self._origin.get(name)
        if origin is None or origin not in self._name_of:
            self._origin[name] = ifindex
        elif origin != ifindex:
            out.append(NameTaken(name, ifindex, origin, self._name_of[origin]))

    def moved(self, name: str) -> NameMove | None:
        """Whether ``name`` still designates the NIC it designated first; None when it does (or was never seen)."""
        origin = self._origin.get(name)
        if origin is None:
            return None
        now = self._name_of.get(origin)
        if now is None or now == name:
            return None
        return NameMove(name, origin, now, self.ifindex_of(name))

    def config_problems(self, names: Mapping[str, str]) -> list[str]:
        """Sentences for the names of a configuration (``{name: where it is named}``) that no longer
        designate the NIC they designated: renamed away, and maybe taken by another NIC."""
        out = []
        for name in sorted(names):
            m = self.moved(name)
            if m is not None:
                out.append(describe_move(m, names[name]))
        return out
