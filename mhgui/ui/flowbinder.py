"""Moves one connection for the window: an RFC 6089 flow binding at the home agent, confirmed, reported.

:class:`FlowBinder` takes a :class:`~mhgui.core.moves.MoveOutcome` of action ``flow-binding`` (one interface:
the connection moves; several: a copy goes on each) and asks the daemon (the engine's driver:
``bind_flow``/``move_flow``); ``progress(text, ok)`` says what happens (ok None while running, True when the
home agent confirmed, False when refused, with the reason), ``finished(outcome, result)`` gives the
:class:`~mhgui.daemons.base.FlowBindingResult` (None when the driver raised). A connection that is already
bound gets its binding changed, not a second one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # asyncio and the flows' modules load after the window's first frame (issue 14)
    import asyncio

    from ..core.moves import MoveOutcome

from PySide6.QtCore import QObject, Signal

from ..i18n import _

__all__ = ["FlowBinder"]

log = logging.getLogger(__name__)


class FlowBinder(QObject):
    progress = Signal(str, object)
    finished = Signal(object, object)

    def __init__(self, controller, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.last_result = None
        self._tasks: set[asyncio.Task] = set()

    def request(self, out: MoveOutcome) -> None:
        """Bind (or rebind) the outcome's flow to its interfaces; the answer comes through the signals."""
        import asyncio  # (asyncio loads after the window's first frame, issue 14)
        task = asyncio.get_event_loop().create_task(self._bind(out))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def existing_fid(self, out: MoveOutcome) -> int | None:
        """The FID of a flow binding the daemon already has for this very selector, or None."""
        from ..core.moves import bound_flows, match_key
        from ..engine.flowspec import selector_to_json
        daemon = self.controller.daemon
        if daemon is None or out.selector is None:
            return None
        f = bound_flows(daemon.flow_bindings()).get(match_key(selector_to_json(out.selector)))
        return f.get("fid") if f is not None and f.get("hoa") == out.hoa else None

    async def _bind(self, out: MoveOutcome) -> None:
        daemon = self.controller.daemon
        where = _(" and ").join(out.interfaces)
        if daemon is None or not hasattr(daemon, "bind_flow"):
            self.progress.emit(_("Not moved: the mobility daemon cannot bind one connection."), False)
            self.finished.emit(out, None)
            return
        self.progress.emit(_("Asking the home agent to send this connection through {interfaces}…").format(
            interfaces=where), None)
        try:
            fid = self.existing_fid(out)
            if fid is not None:
                r = await daemon.move_flow(out.hoa, fid, out.interfaces)
            else:
                r = await daemon.bind_flow(out.hoa, out.selector, out.interfaces)
        except Exception as e:  # noqa: BLE001 - said in words, logged with its trace
            log.exception("flow binding failed")
            self.last_result = None
            self.progress.emit(_("Not moved: {why}").format(why=e), False)
            self.finished.emit(out, None)
            return
        self.last_result = r
        if r.confirmed:
            what = _("Moved, the connection continues") if len(out.interfaces) == 1 else \
                _("Sent on {interfaces}, the connection continues").format(interfaces=where)
            self.progress.emit(_("{what}: confirmed by the home agent in {ms} ms (flow binding "
                                 "{fid}; the other connections stay where they are).").format(
                                     what=what, ms=f"{r.elapsed_ms:.0f}", fid=r.fid), True)
        else:
            self.progress.emit(_("Not moved: {why}").format(why=r.reason), False)
        self.finished.emit(out, r)
