"""The node's answer as data (:func:`mhgui.core.headline.node_headline`, issue 15.1): its level, its
sentence and the one action that fixes what is wrong. Pure: no Qt, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "ACTIONS",
    "ACTION_CONFIGURE",
    "ACTION_PREFERENCES",
    "ACTION_REBIND",
    "ACTION_RESTART_DAEMON",
    "ACTION_TRY_LAB",
    "LEVELS",
    "Action",
    "DaemonLike",
    "Headline",
]

#: restart (or start) the mobility daemon: the engine's unit or mip6d, through the privileged helper
ACTION_RESTART_DAEMON = "restart-daemon"
#: the first-run dialog: connect to a home agent through the engine's ConfigureHomeAgent
ACTION_CONFIGURE = "configure-home-agent"
#: the preferences dialog (uplink order)
ACTION_PREFERENCES = "open-preferences"
#: explain the lab (``mhctl lab up``), for a machine with nothing to connect to
ACTION_TRY_LAB = "try-lab"
#: rebind ``args = (hoa, interface)`` at once
ACTION_REBIND = "rebind"
ACTIONS = (ACTION_RESTART_DAEMON, ACTION_CONFIGURE, ACTION_PREFERENCES, ACTION_TRY_LAB, ACTION_REBIND)

#: ``ok``: connected and healthy; ``info``: nothing wrong (not a mobile node yet, at home, starting);
#: ``warning``: working, but not as it should (waiting, loss, part of the home addresses); ``error``: broken
LEVELS = ("ok", "info", "warning", "error")


@dataclass(frozen=True, slots=True)
class Action:
    """What fixes it: ``id`` one of :data:`ACTIONS`, ``label`` the button's text (translated), ``args``
    what the action needs (for :data:`ACTION_REBIND`: ``(hoa, interface)``)."""

    id: str
    label: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Headline:
    """The node's answer. ``level``: one of :data:`LEVELS`; ``text``: one sentence (translated);
    ``action``: the one action that fixes it, or None; ``interface``: the uplink carrying the node
    (None: none, or several); ``mobile``: the node has home addresses (a Mobile IPv6 node); ``detail``:
    the longer why (e.g. the daemon's own error sentence), for a tooltip, "" when none."""

    level: str
    text: str
    action: Action | None = None
    interface: str | None = None
    mobile: bool = False
    detail: str = ""


class DaemonLike(Protocol):
    name: str
    reachable: bool
    state: str
    error: str | None
