"""Desktop notifications, decided: what to say and when. Pure: no Qt, no I/O; time from an injected clock.

A :class:`Notice` is one event worth telling the user (link lost, failover
done with its measured time, failover failed, daemon lost). The
:class:`NoticeCoalescer` turns a stream of notices into few
:class:`Notification` s:

- **coalescing**: a notice is held until the stream has been quiet for
  ``quiet`` seconds, or ``max_delay`` seconds after the first held notice,
  whichever comes first; everything held then makes one notification (ten
  events in one second make one notification, summarised);
- **rate limit**: at most ``rate_limit`` notifications per ``rate_window``
  seconds; beyond that, notices are held (never dropped) and told in one
  notification as soon as the window allows;
- **replacing**: a notification that follows the previous one within
  ``replace_within`` seconds replaces it on the desktop (the notifier passes
  the previous id as ``replaces_id``), so a flapping link updates one bubble
  instead of stacking many.

The caller calls :meth:`NoticeCoalescer.add`, then :meth:`NoticeCoalescer.poll`
at :attr:`NoticeCoalescer.next_deadline` (and may call it any time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..i18n import _, ngettext

__all__ = [
    "DAEMON_BACK",
    "DAEMON_LOST",
    "FAILOVER_DONE",
    "FAILOVER_FAILED",
    "KINDS",
    "LINK_LOST",
    "Notice",
    "NoticeCoalescer",
    "Notification",
    "daemon_back",
    "daemon_lost",
    "failover_done",
    "failover_failed",
    "link_lost",
]

LINK_LOST = "link-lost"
FAILOVER_DONE = "failover-done"
FAILOVER_FAILED = "failover-failed"
DAEMON_LOST = "daemon-lost"
DAEMON_BACK = "daemon-back"
KINDS = (LINK_LOST, FAILOVER_DONE, FAILOVER_FAILED, DAEMON_LOST, DAEMON_BACK)

#: urgency per kind (org.freedesktop.Notifications: 0 low, 1 normal, 2 critical)
URGENCY = {LINK_LOST: 1, FAILOVER_DONE: 1, FAILOVER_FAILED: 2, DAEMON_LOST: 2, DAEMON_BACK: 1}
#: the tray state whose icon goes with the kind (mhgui.core.trayview.STATES)
ICON_STATE = {LINK_LOST: "backup", FAILOVER_DONE: "ok", FAILOVER_FAILED: "no-coa", DAEMON_LOST: "no-daemon",
              DAEMON_BACK: "ok"}

#: most lines of a summarised body
MAX_BODY_LINES = 6


@dataclass(frozen=True, slots=True)
class Notice:
    """One event for the user. ``title``: one line; ``body``: details; ``ms``: a measured time (failover done)."""

    kind: str
    title: str
    body: str = ""
    ms: float | None = None
    icon_state: str | None = None
    #: buttons the notification offers: ``(key, label)``; the key is a headline action id
    #: (:data:`mhgui.core.headline.ACTIONS`), e.g. "restart-daemon" for a lost daemon (issue 15.7)
    actions: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown notice kind {self.kind!r}")
        if self.icon_state is None:
            object.__setattr__(self, "icon_state", ICON_STATE[self.kind])


def link_lost(interface: str, reason: str = "") -> Notice:
    """The link of ``interface`` went (``reason``: e.g. "no carrier", "care-of address removed")."""
    return Notice(LINK_LOST, _("Link lost: {interface}").format(interface=interface), reason)


def failover_done(from_interface: str | None, to_interface: str, ms: float | None, hoas: tuple[str, ...] = (),
                  *, on_backup: bool = False, late_ms: float | None = None) -> Notice:
    """Traffic moved to ``to_interface``; ``ms``: from the link event to the acknowledged binding (or the decision).

    ``ms`` None: the daemon moved before the link event reached mhgui (``late_ms`` later), so there is
    no start to time it from (the kernel batches carrier notifications, up to 1 s).
    """
    src = f"{from_interface} → " if from_interface else ""
    body = _("{hoas} now through {interface}").format(hoas=", ".join(hoas), interface=to_interface) if hoas else ""
    if ms is None:
        first = (_("the daemon moved first; the kernel told mhgui of the link loss {ms} ms later").format(
                     ms=f"{late_ms:.0f}") if late_ms is not None
                 else _("the daemon moved first; the kernel told mhgui of the link loss"))
        body = "\n".join(x for x in (body, first) if x)
        return Notice(FAILOVER_DONE, _("Failover done: {move}").format(move=f"{src}{to_interface}"), body,
                      icon_state="backup" if on_backup else "ok")
    return Notice(FAILOVER_DONE, _("Failover done: {move} in {ms} ms").format(move=f"{src}{to_interface}",
                                                                              ms=f"{ms:.0f}"), body, ms=ms,
                  icon_state="backup" if on_backup else "ok")


def failover_failed(from_interface: str | None, reason: str) -> Notice:
    """No failover was possible (no usable interface left, or the daemon did not confirm)."""
    return Notice(FAILOVER_FAILED, _("Failover failed: {interface} lost").format(interface=from_interface)
                  if from_interface else _("Failover failed"), reason)


def daemon_lost(name: str, reason: str = "", *, restart: bool = True) -> Notice:
    """The mobility daemon stopped answering; ``restart``: offer to restart it (a "Restart" button, action
    key ``restart-daemon``, issue 15.7)."""
    return Notice(DAEMON_LOST, _("Mobility daemon lost: {name}").format(name=name), reason,
                  actions=(("restart-daemon", _("Restart")),) if restart else ())


def daemon_back(name: str, gone: float) -> Notice:
    """The mobility daemon answers again, after ``gone`` seconds (issue 15.7: "lost" is followed by "back")."""
    return Notice(DAEMON_BACK, _("Mobility daemon back: {name}").format(name=name),
                  _("it answers again after {seconds} s").format(seconds=f"{gone:.0f}"))


@dataclass(frozen=True, slots=True)
class Notification:
    """What the notifier shows: one or several notices summarised.

    ``replace``: this replaces the previous notification on the desktop;
    ``notices``: the notices it tells; ``urgency``: 0/1/2;
    ``icon_state``: the tray state whose icon to show (that of the last notice).
    """

    title: str
    body: str
    urgency: int
    icon_state: str
    replace: bool
    notices: tuple[Notice, ...]

    @property
    def actions(self) -> tuple[tuple[str, str], ...]:
        """The buttons: those of the last notice (the newest event is what a button acts on)."""
        return self.notices[-1].actions if self.notices else ()

    @property
    def count(self) -> int:
        return len(self.notices)


def summarise(notices: list[Notice], replace: bool) -> Notification:
    """One notification for ``notices`` (oldest first)."""
    last = notices[-1]
    urgency = max(URGENCY[n.kind] for n in notices)
    if len(notices) == 1:
        return Notification(last.title, last.body, urgency, last.icon_state, replace, (last,))
    more = len(notices) - 1
    title = ngettext("{title} (and {n} more event)", "{title} (and {n} more events)", more).format(
        title=last.title, n=more)
    lines = [n.title + (f" — {n.body}" if n.body else "") for n in notices]
    if len(lines) > MAX_BODY_LINES:
        hidden = len(lines) - (MAX_BODY_LINES - 1)
        lines = lines[:1] + [_("… {n} more …").format(n=hidden)] + lines[-(MAX_BODY_LINES - 2):]
    return Notification(title, "\n".join(lines), urgency, last.icon_state, replace, tuple(notices))


@dataclass
class NoticeCoalescer:
    """Coalesces and rate-limits notices (module docstring). ``clock()``: monotonic seconds."""

    clock: Callable[[], float]
    quiet: float = 0.3
    max_delay: float = 1.0
    rate_limit: int = 4
    rate_window: float = 60.0
    replace_within: float = 10.0
    _held: list[Notice] = field(default_factory=list)
    _first_at: float | None = None
    _last_at: float | None = None
    _sent: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("quiet", "max_delay", "rate_window", "replace_within"):
            v = getattr(self, name)
            if not 0 <= v < float("inf"):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, not {v!r}")
        if self.rate_limit < 1:
            raise ValueError("rate_limit must be at least 1")

    @property
    def pending(self) -> int:
        """Notices held, not yet told."""
        return len(self._held)

    @property
    def next_deadline(self) -> float | None:
        """When :meth:`poll` will have something to give, or None when nothing is held."""
        if not self._held:
            return None
        due = min(self._first_at + self.max_delay, self._last_at + self.quiet)
        recent = [t for t in self._sent if t > self._sent_horizon(due)] if self._sent else []
        if len(recent) >= self.rate_limit:
            # the window allows one more when the oldest counted notification leaves it
            due = max(due, recent[-self.rate_limit] + self.rate_window)
        return due

    def _sent_horizon(self, t: float) -> float:
        return t - self.rate_window

    def add(self, notice: Notice) -> None:
        """Hold ``notice``; it is told at the next :meth:`poll` due."""
        now = self.clock()
        if not self._held:
            self._first_at = now
        self._held.append(notice)
        self._last_at = now

    def poll(self) -> Notification | None:
        """The notification due now, or None (nothing held, or not yet: quiet period, burst or rate limit)."""
        due = self.next_deadline
        now = self.clock()
        if due is None or now < due:
            return None
        self._sent = [t for t in self._sent if t > now - max(self.rate_window, self.replace_within)]
        replace = bool(self._sent) and now - self._sent[-1] < self.replace_within
        n = summarise(self._held, replace)
        self._held = []
        self._first_at = self._last_at = None
        self._sent.append(now)
        return n

    def clear(self) -> None:
        """Forget held notices (notifications switched off)."""
        self._held = []
        self._first_at = self._last_at = None
