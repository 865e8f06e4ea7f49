"""The interface order the daemon uses now, for the preferences dialog (issue 13.8). Pure: no Qt, no I/O.

The dialog starts from the order saved in ``failover.toml``. mip6d.conf's ``MnIfPreference``
values can change without it: a rebind from the window or ``mhctl rebind`` puts an interface
first (:func:`mhgui.daemons.umip.rebind_preferences`), an administrator edits the file. Then the
saved order is not the one in use, and a dialog showing it would, once applied, undo the change
without saying so. :func:`order_in_use` gives the order to show: the saved one when the file's
values mean the same order, else the file's.

:func:`mnif_after` is the whole ``{interface: MnIfPreference}`` map the file has once an order
is applied (what :func:`mhgui.core.mip6conf.preference_order_problem` must find clean before
anything is written).
"""

from __future__ import annotations

from typing import Mapping

from ..i18n import N_, _
from .failover import Preferences, mnifpreference_values, valid_interface_name

__all__ = ["mnif_after", "order_in_use", "same_order"]

#: said above the list when the file's order is shown instead of the saved one
NOTE = N_("mip6d.conf ranks the interfaces differently from your saved order (a rebind, mhctl or an edit "
          "changed it): the list shows the order mip6d uses now.")


def _meaning(values: Mapping[str, int], names) -> tuple:
    """What UMIP makes of ``values`` for ``names``: the groups of equal preference, best first, and the unused
    (a name without a value is unused: UMIP does not use an interface mip6d.conf does not list)."""
    groups: dict[int, set[str]] = {}
    unused = set()
    for n in names:
        v = values.get(n, 0)
        if v > 0:
            groups.setdefault(v, set()).add(n)
        else:
            unused.add(n)
    return tuple(frozenset(groups[v]) for v in sorted(groups)), frozenset(unused)


def same_order(saved: Preferences, current: Mapping[str, int]) -> bool:
    """``saved`` gives the interfaces the same ranking as ``current`` (mip6d.conf's values) does."""
    names = set(saved.order) | set(current)
    return _meaning(mnifpreference_values(saved), names) == _meaning(current, names)


def order_in_use(saved: Preferences | None, current: Mapping[str, int] | None) -> tuple[Preferences | None, str]:
    """``(the order to show, a note)``: ``saved`` and "" when it means what ``current`` (mip6d.conf's
    ``MnIfPreference`` values, None when unknown) means, or when there is no saved order; else the order of
    ``current``: used interfaces by value (a tie by the saved position, then by name), then the unused ones
    (the saved order's first, as they were), marked never. A saved "backup only" mark stays where every
    used interface after it is a backup too (so the marks still give ``current``'s ranking); timings come
    from ``saved``. The note (:data:`NOTE`) says the file's order is shown."""
    if saved is None or not saved.order or not current:
        return saved, ""
    current = {n: v for n, v in current.items() if valid_interface_name(n)}
    if same_order(saved, current):
        return saved, ""
    pos = {n: i for i, n in enumerate(saved.order)}
    far = len(pos)
    used = sorted((n for n, v in current.items() if v > 0), key=lambda n: (current[n], pos.get(n, far), n))
    unused = [n for n in saved.order if current.get(n, 0) <= 0] + sorted(
        n for n, v in current.items() if v <= 0 and n not in pos)
    backup: set[str] = set()
    for n in reversed(used):  # the backups must stay the tail of the used ones
        if n not in saved.backup:
            break
        backup.add(n)
    return Preferences(order=tuple(used + unused), backup=frozenset(backup), never=frozenset(unused),
                       holdup=saved.holdup, churn_window=saved.churn_window,
                       require_router=saved.require_router), _(NOTE)


def mnif_after(new: Preferences, current: Mapping[str, int] | None) -> dict[str, int]:
    """Every ``MnIfPreference`` mip6d.conf has once ``new`` is applied over ``current`` (its values now; None:
    unknown): ``new``'s values, and 0 for an interface the file lists that ``new`` does not (as
    :func:`mhgui.core.prefsfile.mnif_changes` writes them)."""
    out = dict(current or {})
    after = mnifpreference_values(new)
    for n in out:
        if n not in after:
            out[n] = 0
    out.update(after)
    return out
