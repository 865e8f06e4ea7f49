"""The "Node" tab: the node as a picture, live (issue 15.2; draft-montavont-mobileip-multihoming-pb-statement-04
Figure 1, extended to the home agent).

:func:`node_page` builds the page for a :class:`~mhgui.ui.window.MainWindow`: a :class:`NodeCanvas` (custom
paint, in a scroll area for pictures larger than the page) fed by :func:`mhgui.core.nodepicture.build_picture`
from the window's :class:`~mhgui.ui.window.LiveController` (``refreshed``, ``bindings_changed``,
``daemon_changed``); nothing is laid out again when the picture did not change, nor while the page is hidden.

Moving: a home address or a flow binding dragged onto an interface (or a HoA from the Home addresses table,
a connection from the Flows tab) asks what the window already does: ``window.rebinder.request(hoa, ifname)``
for a HoA; for a flow binding, ``window.move_flow(flow_id, ifname)`` with a listed connection it binds, else
the window's :class:`~mhgui.ui.flowbinder.FlowBinder` with the binding's own selector. The keyboard does the
same: arrows and Tab go from node to node, Enter, Space, M or the menu key open "Move to…".

Colours: :func:`state_colours` (one per :data:`~mhgui.core.nodepicture.STATES`) from the palette, each at a
contrast of at least 4.5:1 (WCAG 2.1) against the palette's Base, on which the picture is drawn; line
styles differ too (solid, dashed, dotted...), so colour is never the only cue.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QByteArray, QEvent, QMimeData, QPoint, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import (
    QAccessible, QAccessibleEvent, QColor, QDrag, QFont, QFontMetricsF, QPainter, QPainterPath, QPalette, QPen,
)
from PySide6.QtWidgets import QApplication, QMenu, QScrollArea, QToolTip, QVBoxLayout, QWidget

from ..core.analysis import analyse
from ..core.moves import MoveOutcome, flow_match_key, match_key, target_problem
from ..core.nodepicture import (
    STATES, Layout, Picture, build_picture, curve, layout, legend_word, state_word, uplink_words,
)
from ..i18n import _
from .flows_model import FLOW_MIME
from .models import HOA_MIME

__all__ = ["FLOW_BINDING_MIME", "NodeCanvas", "NodePage", "contrast_ratio", "node_page", "state_colours"]

#: a flow binding dragged in the picture: "HOA FID"
FLOW_BINDING_MIME = "application/x-mhgui-flow-binding"
MIN_CONTRAST = 4.5

_HUES = {"registered": (130, 0.75), "waiting": (32, 0.95), "refused": (2, 0.85), "backup": (212, 0.8),
         "down": (0, 0.0)}
_PEN = {"registered": (Qt.PenStyle.SolidLine, 2.5), "waiting": (Qt.PenStyle.DashLine, 2.0),
        "refused": (Qt.PenStyle.SolidLine, 2.0), "down": (Qt.PenStyle.DotLine, 2.0),
        "backup": (Qt.PenStyle.DashDotLine, 2.0), "idle": (Qt.PenStyle.SolidLine, 1.0)}


def _luminance(c: QColor) -> float:
    def lin(v: float) -> float:
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    return 0.2126 * lin(c.redF()) + 0.7152 * lin(c.greenF()) + 0.0722 * lin(c.blueF())


def contrast_ratio(a: QColor, b: QColor) -> float:
    """WCAG 2.1 contrast ratio of two colours, 1.0 .. 21.0."""
    la, lb = _luminance(a), _luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def _fit(c: QColor, base: QColor, target: float = MIN_CONTRAST + 0.1) -> QColor:
    """``c`` made darker (on a light base) or lighter (on a dark one) until it reaches ``target`` against
    ``base``; its hue and saturation kept."""
    if contrast_ratio(c, base) >= target:
        return c
    h, s, light = c.hslHueF(), c.hslSaturationF(), c.lightnessF()
    up = _luminance(base) < 0.18  # about where black and white contrast equally
    for _i in range(100):
        light = min(1.0, light + 0.01) if up else max(0.0, light - 0.01)
        out = QColor.fromHslF(max(0.0, h), s, light)
        if contrast_ratio(out, base) >= target or light in (0.0, 1.0):
            return out
    return out


def state_colours(palette: QPalette) -> dict[str, QColor]:
    """``{state: QColor}`` for every state of :data:`~mhgui.core.nodepicture.STATES`, each at a contrast of at
    least 4.5:1 against ``palette``'s Base (the picture's background): green registered, amber waiting, red
    refused, blue backup, grey down, and idle from the palette's Text half-way to Base (all adjusted in
    lightness until they reach the contrast; the palette's Text when even that cannot)."""
    base = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.Base)
    text = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.Text)
    out = {}
    dark = _luminance(base) < 0.18
    for st in STATES:
        if st == "idle":
            c = QColor.fromRgbF((text.redF() + base.redF()) / 2, (text.greenF() + base.greenF()) / 2,
                                (text.blueF() + base.blueF()) / 2)
        else:
            hue, sat = _HUES[st]
            c = QColor.fromHslF(hue / 360.0, sat, 0.62 if dark else 0.42)
        c = _fit(c, base)
        out[st] = c if contrast_ratio(c, base) >= MIN_CONTRAST else QColor(text)
    return out


class NodeCanvas(QWidget):
    """Paints a :class:`~mhgui.core.nodepicture.Picture`; the page (its ``owner``) does what is asked.

    ``focused``: the node id the keyboard is on; ``drop_target``: the interface under a drag.
    """

    def __init__(self, owner: "NodePage") -> None:
        super().__init__()
        self.owner = owner
        self.picture: Picture | None = None
        self.lay: Layout | None = None
        self.focused: str | None = None
        self.drop_target: str | None = None
        self.pfont = QFont(self.font())  # the font of the picture: see compute()
        self._press: tuple[QPointF, str] | None = None
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(True)
        self.setMouseTracking(False)
        self.setAccessibleName(_("Node picture"))
        self.setAutoFillBackground(False)

    # ---- geometry
    def metrics(self) -> QFontMetricsF:
        return QFontMetricsF(self.pfont)

    def compute(self, width: float, height: float) -> tuple[Layout, QFont] | None:
        """The layout for ``width`` × ``height`` and the font it was made with: the widget's font, else one
        point smaller when only that fits (a low page), else the widget's font with the size it needs."""
        if self.picture is None:
            return None
        base = QFont(self.font())
        tries = [base]
        if base.pointSizeF() > 8:
            small = QFont(base)
            small.setPointSizeF(base.pointSizeF() - 1)
            tries.append(small)
        first = None
        for f in tries:
            fm = QFontMetricsF(f)
            lay = layout(self.picture, width, height, fm.horizontalAdvance, math.ceil(fm.height()))
            if lay.width <= width and lay.height <= height:
                return lay, f
            first = first or (lay, f)
        return first

    def set_picture(self, pic: Picture) -> None:
        self.picture = pic
        if self.focused not in pic.nodes:
            self.focused = None
        self.relayout()

    def relayout(self) -> None:
        got = self.compute(self.width(), self.height())
        self.lay, self.pfont = got if got is not None else (None, QFont(self.font()))
        self.update()

    def resizeEvent(self, ev) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(ev)
        self.relayout()

    def order(self) -> list[str]:
        """Node ids in keyboard order: column by column, top to bottom."""
        return [i for c in self.picture.columns for i in c] if self.picture is not None else []

    # ---- paint
    def paintEvent(self, ev) -> None:  # noqa: N802
        p = QPainter(self)
        pal = self.palette()
        p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
        lay, pic = self.lay, self.picture
        if lay is None or pic is None:
            return
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        colours = state_colours(pal)
        text = pal.color(QPalette.ColorRole.Text)
        fm = self.metrics()
        bold = QFont(self.pfont)
        bold.setBold(True)
        p.setFont(bold)
        bfm = QFontMetricsF(bold)
        p.setPen(text)
        for title, r in lay.headers:
            p.drawText(QRectF(r.x, r.y, r.w, r.h), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                       bfm.elidedText(title, Qt.TextElideMode.ElideRight, r.w))
        p.setFont(self.pfont)
        rank = {s: n for n, s in enumerate(reversed(STATES))}  # idle first, registered on top
        for e, (x1, y1), (x2, y2) in sorted(lay.lines, key=lambda t: rank.get(t[0].state, 0)):
            style, width = _PEN.get(e.state, _PEN["idle"])
            pen = QPen(colours.get(e.state, text), width, style)
            pen.setCapStyle(Qt.PenCapStyle.FlatCap)
            p.setPen(pen)
            path = QPainterPath(QPointF(x1, y1))
            c1, c2 = curve(lay, (x1, y1), (x2, y2))
            path.cubicTo(QPointF(*c1), QPointF(*c2), QPointF(x2, y2))
            p.drawPath(path)
        highlight = pal.color(QPalette.ColorRole.Highlight)
        for nid, r in lay.boxes.items():
            n = pic.nodes[nid]
            c = colours.get(n.state, text)
            rect = QRectF(r.x + 0.5, r.y + 0.5, r.w - 1, r.h - 1)
            fill = pal.color(QPalette.ColorRole.Base)
            if nid == self.drop_target:
                fill = QColor(highlight)
                fill.setAlphaF(0.25)
            p.setBrush(fill)
            p.setPen(QPen(c, 1.5, _PEN.get(n.state, _PEN["idle"])[0] if n.kind != "note" else Qt.PenStyle.DotLine))
            p.drawRoundedRect(rect, 3, 3)
            m = lay.marks.get(nid)
            if m is not None and n.kind not in ("note", "more"):
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(c)
                mr = QRectF(m.x, m.y, m.w, m.h)
                if n.state in ("registered", "refused", "down"):
                    p.drawEllipse(mr)
                else:  # waiting, backup, idle: a ring
                    p.setPen(QPen(c, 2))
                    p.setBrush(Qt.BrushStyle.NoBrush)
                    p.drawEllipse(mr.adjusted(1, 1, -1, -1))
            lr = lay.labels[nid]
            p.setPen(text)
            # addresses keep their start: the prefix tells them apart (one interface identifier, several prefixes)
            mode = Qt.TextElideMode.ElideRight
            p.drawText(QRectF(lr.x, lr.y, lr.w, lr.h), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                       fm.elidedText(n.label, mode, lr.w))
            if nid == self.focused and self.hasFocus():
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.setPen(QPen(highlight, 2))
                p.drawRoundedRect(rect.adjusted(1, 1, -1, -1), 3, 3)
        for st, sample, tr in lay.legend:
            style, width = _PEN[st]
            p.setPen(QPen(colours[st], width, style))
            y = sample.y + sample.h / 2
            p.drawLine(QPointF(sample.x, y), QPointF(sample.x + sample.w, y))
            p.setPen(text)
            p.drawText(QRectF(tr.x, tr.y, tr.w, tr.h), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                       fm.elidedText(legend_word(st), Qt.TextElideMode.ElideRight, tr.w))
        p.end()

    # ---- tooltips
    def event(self, ev) -> bool:
        if ev.type() == QEvent.Type.ToolTip and self.lay is not None:
            pos = ev.pos()
            nid = self.lay.node_at(pos.x(), pos.y())
            text = self.owner.tooltip(nid) if nid else self._legend_tip(pos)
            if text:
                QToolTip.showText(ev.globalPos(), text, self)
            else:
                QToolTip.hideText()
                ev.ignore()
            return True
        return super().event(ev)

    def _legend_tip(self, pos) -> str | None:
        for st, sample, tr in self.lay.legend:
            if sample.x <= pos.x() <= tr.right and sample.y <= pos.y() <= sample.bottom:
                return state_word(st)
        return None

    # ---- mouse and drag
    def mousePressEvent(self, ev) -> None:  # noqa: N802
        nid = self.lay.node_at(ev.position().x(), ev.position().y()) if self.lay else None
        if nid is not None:
            self.set_focused(nid)
            if ev.button() == Qt.MouseButton.LeftButton and self.picture.nodes[nid].movable:
                self._press = (ev.position(), nid)
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev) -> None:  # noqa: N802
        if self._press is not None and (ev.buttons() & Qt.MouseButton.LeftButton):
            start, nid = self._press
            if (ev.position() - start).manhattanLength() >= QApplication.startDragDistance():
                self._press = None
                md = self.owner.mime_for(nid)
                if md is not None:
                    drag = QDrag(self)
                    drag.setMimeData(md)
                    drag.exec(Qt.DropAction.MoveAction)
        super().mouseMoveEvent(ev)

    def mouseReleaseEvent(self, ev) -> None:  # noqa: N802
        self._press = None
        super().mouseReleaseEvent(ev)

    @staticmethod
    def accepts(md: QMimeData) -> bool:
        return any(md.hasFormat(f) for f in (HOA_MIME, FLOW_MIME, FLOW_BINDING_MIME))

    def _interface_at(self, pos) -> str | None:
        nid = self.lay.node_at(pos.x(), pos.y()) if self.lay else None
        return nid if nid is not None and self.picture.nodes[nid].kind == "interface" else None

    def dragEnterEvent(self, ev) -> None:  # noqa: N802
        if self.accepts(ev.mimeData()):
            ev.acceptProposedAction()
        else:
            ev.ignore()

    def dragMoveEvent(self, ev) -> None:  # noqa: N802
        target = self._interface_at(ev.position()) if self.accepts(ev.mimeData()) else None
        if target != self.drop_target:
            self.drop_target = target
            self.update()
        if target is not None:
            ev.acceptProposedAction()
        else:
            ev.ignore()

    def dragLeaveEvent(self, ev) -> None:  # noqa: N802
        self.drop_target = None
        self.update()

    def dropEvent(self, ev) -> None:  # noqa: N802
        target = self._interface_at(ev.position())
        self.drop_target = None
        self.update()
        if target is None or not self.accepts(ev.mimeData()):
            ev.ignore()
            return
        if self.owner.drop(ev.mimeData(), self.picture.nodes[target].ifname) is False:
            ev.ignore()  # forged data: refused, so that the application it came from deletes nothing
            return
        ev.acceptProposedAction()

    # ---- keyboard
    def set_focused(self, nid: str | None) -> None:
        if nid == self.focused:
            return
        self.focused = nid
        self.update()
        self.owner.focus_changed(nid)

    def focusInEvent(self, ev) -> None:  # noqa: N802
        super().focusInEvent(ev)
        if self.focused is None:
            movable = [i for i in self.order() if self.picture.nodes[i].movable]
            order = self.order()
            if movable or order:
                self.set_focused((movable or order)[0])
        self.update()

    def focusOutEvent(self, ev) -> None:  # noqa: N802
        super().focusOutEvent(ev)
        self.update()

    def focusNextPrevChild(self, forward: bool) -> bool:  # noqa: N802
        """Tab and Shift+Tab go from one movable node (home address, flow binding) to the next; past the
        last one, on to the next widget."""
        movable = [i for i in self.order() if self.picture is not None and self.picture.nodes[i].movable]
        if movable:
            k = movable.index(self.focused) if self.focused in movable else (-1 if forward else len(movable))
            k += 1 if forward else -1
            if 0 <= k < len(movable):
                self.set_focused(movable[k])
                return True
        return super().focusNextPrevChild(forward)

    def keyPressEvent(self, ev) -> None:  # noqa: N802
        key = ev.key()
        pic, lay = self.picture, self.lay
        if pic is None or lay is None or not self.order():
            return super().keyPressEvent(ev)
        cur = self.focused if self.focused in pic.nodes else self.order()[0]
        col = pic.nodes[cur].column
        ids = pic.columns[col]
        k = ids.index(cur)
        rows = lay.orientation == "rows"  # Figure 1's way: arrows follow what is drawn
        along = (Qt.Key.Key_Left, Qt.Key.Key_Right) if rows else (Qt.Key.Key_Up, Qt.Key.Key_Down)
        across = (Qt.Key.Key_Up, Qt.Key.Key_Down) if rows else (Qt.Key.Key_Left, Qt.Key.Key_Right)
        if key in along:
            k = max(0, min(len(ids) - 1, k + (1 if key == along[1] else -1)))
            self.set_focused(ids[k])
        elif key in (Qt.Key.Key_Home, Qt.Key.Key_End):
            self.set_focused(ids[0 if key == Qt.Key.Key_Home else -1])
        elif key in across:
            step = 1 if key == across[1] else -1
            c = col + step
            while 0 <= c < len(pic.columns) and not pic.columns[c]:
                c += step
            if 0 <= c < len(pic.columns):
                here = lay.boxes[cur]
                pos = (lambda r: r.x + r.w / 2) if rows else (lambda r: r.y + r.h / 2)
                self.set_focused(min(pic.columns[c], key=lambda i: abs(pos(lay.boxes[i]) - pos(here))))
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space, Qt.Key.Key_M):
            self.owner.open_menu(cur, self._global_of(cur))
        else:
            return super().keyPressEvent(ev)
        ev.accept()

    def _global_of(self, nid: str) -> QPoint:
        r = self.lay.boxes[nid]
        return self.mapToGlobal(QPoint(int(r.x + r.w / 2), int(r.bottom)))

    def contextMenuEvent(self, ev) -> None:  # noqa: N802
        if ev.reason() == ev.Reason.Keyboard or self.lay is None:
            nid = self.focused
        else:
            nid = self.lay.node_at(ev.pos().x(), ev.pos().y())
        if nid is not None:
            self.set_focused(nid)
            self.owner.open_menu(nid, ev.globalPos() if ev.reason() != ev.Reason.Keyboard else self._global_of(nid))
            ev.accept()


class NodePage(QWidget):
    """The Node tab: the canvas in a scroll area, fed by the window's controller.

    ``rebuilds``: how many times a new picture was laid out (an unchanged picture is not);
    ``last_menu``: the last "Move to…" menu opened.
    """

    def __init__(self, window) -> None:
        super().__init__()
        self.win = window
        self.controller = window.controller
        self.rebuilds = 0
        self.last_menu: QMenu | None = None
        self._dirty = True
        self.canvas = NodeCanvas(self)
        self.scroll = QScrollArea(self)
        self.scroll.setWidget(self.canvas)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setFocusProxy(self.canvas)
        self.setFocusProxy(self.canvas)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.scroll)
        self.setAccessibleName(_("Node"))
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        c = self.controller
        c.refreshed.connect(self.schedule)
        c.bindings_changed.connect(self.schedule)
        c.daemon_changed.connect(self.schedule)
        window.flowbinder.progress.connect(self._flow_progress)

    # ---- live
    def schedule(self, *_args) -> None:
        self._dirty = True
        if not self._timer.isActive():
            self._timer.start(0)

    def showEvent(self, ev) -> None:  # noqa: N802
        super().showEvent(ev)
        if self._dirty:
            self.refresh()

    def resizeEvent(self, ev) -> None:  # noqa: N802
        super().resizeEvent(ev)
        self._fit()

    def inputs(self) -> dict:
        """What the picture is made of, read from the controller and its daemon driver (empty when a driver
        cannot say: a picture without it, never an error)."""
        c = self.controller
        d = c.daemon
        out = dict(bindings=(), uplinks=(), engine_bindings=(), flow_bindings=(), daemon=None, connected=False)
        if d is None:
            return out
        for key, fn in (("bindings", "bindings"), ("uplinks", "uplinks"), ("engine_bindings", "raw_bindings"),
                        ("flow_bindings", "flow_bindings")):
            try:
                got = getattr(d, fn, None)
                out[key] = tuple(got()) if callable(got) else ()
            except Exception:  # noqa: BLE001 - a driver that cannot say leaves that part out
                out[key] = ()
        out["daemon"] = getattr(d, "name", None)
        out["connected"] = c._caps().connected
        return out

    def make_picture(self) -> Picture:
        c = self.controller
        return build_picture(c.store.state, c.analysis, **self.inputs())

    def refresh(self) -> None:
        """Build the picture again; lay it out and repaint only when it changed (and only while shown)."""
        if not self.isVisible():
            self._dirty = True
            return
        self._dirty = False
        pic = self.make_picture()
        if pic == self.canvas.picture:
            return
        self.rebuilds += 1
        self.canvas.set_picture(pic)
        self._fit()
        self._describe()

    def _fit(self) -> None:
        """The canvas takes the scroll area's room, more (and scrolls) only when the picture needs it."""
        vp = self.scroll.viewport().size()
        got = self.canvas.compute(vp.width(), vp.height())
        if got is None:
            return
        lay = got[0]
        w = math.ceil(lay.width) if lay.width > vp.width() else 0
        h = math.ceil(lay.height) if lay.height > vp.height() else 0
        if (w, h) != (self.canvas.minimumWidth(), self.canvas.minimumHeight()):
            self.canvas.setMinimumSize(w, h)

    def _describe(self) -> None:
        pic = self.canvas.picture
        if pic is None:
            return
        desc = pic.summary
        nid = self.canvas.focused
        if nid in pic.nodes:
            desc = "; ".join(pic.nodes[nid].details) + ". " + desc
        self.canvas.setAccessibleDescription(desc)
        try:
            QAccessible.updateAccessibility(QAccessibleEvent(self.canvas, QAccessible.Event.DescriptionChanged))
        except (RuntimeError, TypeError):  # no accessibility bridge
            pass

    def focus_changed(self, nid: str | None) -> None:
        self._describe()

    # ---- what the canvas asks
    def tooltip(self, nid: str) -> str | None:
        pic = self.canvas.picture
        n = pic.nodes.get(nid) if pic is not None else None
        if n is None:
            return None
        lines = list(n.details)
        if n.kind == "interface":
            ups = {u.get("name"): u for u in self.inputs()["uplinks"] if isinstance(u, dict)}
            words = uplink_words(ups.get(n.ifname))
            if words:
                lines.append(words)
        for e in pic.edges_of(nid):
            other = pic.nodes[e.target if e.source == nid else e.source]
            lines.append(_("→ {what}: {state}").format(what=other.label, state=state_word(e.state)))
        return "\n".join(lines[:24])

    def mime_for(self, nid: str) -> QMimeData | None:
        n = self.canvas.picture.nodes.get(nid) if self.canvas.picture else None
        if n is None or not n.movable:
            return None
        md = QMimeData()
        if n.kind == "hoa":
            md.setData(HOA_MIME, QByteArray(n.hoa.encode()))
        elif n.kind == "flow":
            md.setData(FLOW_BINDING_MIME, QByteArray(f"{n.hoa} {n.fid}".encode()))
        else:
            return None
        return md

    def drop(self, md: QMimeData, ifname: str) -> bool | None:
        """A HoA, a connection (Flows tab) or a flow binding dropped onto interface ``ifname``; False when the
        data is none of this node's (then said in the status bar)."""
        # the data may come from another application (a forged MIME type): only this node's own HoAs and
        # flow bindings are moved, anything else is said and dropped
        if md.hasFormat(HOA_MIME):
            hoa = self._own_hoa(bytes(md.data(HOA_MIME))[:256].decode(errors="replace"))
            if hoa is None:
                self._say(_("That is no home address of this node: nothing was moved."), False)
                return False
            if self._refused(f"hoa:{hoa}", hoa, ifname):
                return False
            self.move_hoa(hoa, ifname)
        elif md.hasFormat(FLOW_MIME):
            self.win.move_flow(bytes(md.data(FLOW_MIME))[:512].decode(errors="replace"), ifname)
        elif md.hasFormat(FLOW_BINDING_MIME):
            hoa, _sep, fid = bytes(md.data(FLOW_BINDING_MIME))[:256].decode(errors="replace").partition(" ")
            hoa = self._own_hoa(hoa)
            if hoa is None or not (fid.isascii() and fid.isdigit() and len(fid) <= 9):
                self._say(_("That is no flow binding of this node: nothing was moved."), False)
                return False
            if self._refused(f"flow:{hoa}:{int(fid)}", _("flow binding {fid}").format(fid=int(fid)), ifname):
                return False
            self.move_flow_binding(hoa, int(fid), ifname)

    def _refused(self, nid: str, what: str, ifname: str) -> bool:
        """True (and said) when "Move to…" of node ``nid`` greys ``ifname`` out: a drop does what the menu does."""
        if self.canvas.picture is None or nid not in self.canvas.picture.nodes or self.controller.daemon is None:
            return False  # (without a daemon the rebinder says so itself)
        why = dict(self.choices(nid)).get(ifname)
        if why is not None:
            self._say(_("{what} cannot be moved to {iface} ({why}): nothing was moved.").format(
                what=what, iface=ifname, why=why), False)
        return why is not None

    def _own_hoa(self, text: str) -> str | None:
        """``text`` as one of the picture's home addresses (compressed form), else None."""
        import ipaddress
        try:
            hoa = ipaddress.ip_address(text.strip()).compressed
        except ValueError:
            return None
        pic = self.canvas.picture
        return hoa if pic is not None and f"hoa:{hoa}" in pic.nodes else None

    def move_hoa(self, hoa: str, ifname: str) -> None:
        self.win.rebinder.request(hoa, ifname)

    def _flow_binding(self, hoa: str, fid: int) -> dict | None:
        return next((f for f in self.inputs()["flow_bindings"] if isinstance(f, dict) and f.get("hoa") == hoa
                     and f.get("fid") == fid), None)

    def move_flow_binding(self, hoa: str, fid: int, ifname: str) -> None:
        """Move flow binding ``fid`` of ``hoa``: through a listed connection it binds (the window's own path,
        which says what it means first), else with the binding's own selector (RFC 6089: the FID changes
        its BIDs)."""
        fb = self._flow_binding(hoa, fid)
        key = match_key(fb.get("match")) if fb is not None else None
        if key is None:
            self._say(_("Flow binding {fid} of {hoa} is gone or has no selector: nothing was moved.").format(
                fid=fid, hoa=hoa), False)
            return
        m = self.controller.flows
        for flow_id in m.ids():
            f = m.flow(flow_id)
            if f is not None and flow_match_key(f) == key:
                self.win.move_flow(flow_id, ifname)
                return
        from ..engine.flowspec import selector_from_json
        try:
            sel = selector_from_json(fb["match"])
        except (ValueError, TypeError) as e:
            self._say(_("Flow binding {fid} cannot be moved: {why}").format(fid=fid, why=e), False)
            return
        out = MoveOutcome("flow-binding", _("Flow binding {fid} moves to {iface}.").format(fid=fid, iface=ifname),
                          ifname, hoa=hoa, interfaces=(ifname,), selector=sel)
        self.win.flowbinder.request(out)

    def _say(self, text: str, ok) -> None:
        self.win.statusBar().showMessage(text, 15000)

    def _flow_progress(self, text: str, ok) -> None:
        if self.isVisible():
            self._say(text, ok)

    # ---- "Move to…"
    def choices(self, nid: str) -> list[tuple[str, str | None]]:
        """``[(interface name, why not or None)]`` for moving node ``nid`` (a HoA or a flow binding)."""
        pic = self.canvas.picture
        n = pic.nodes[nid]
        st = self.controller.store.state
        an = self.controller.analysis or analyse(st, self.controller.clock())
        in_use = self.controller.in_use() if n.kind == "hoa" else {}
        fb = self._flow_binding(n.hoa, n.fid) if n.kind == "flow" else None
        # where it is now (the HoA's uplink in use, the flow binding's interfaces): "(in use)", greyed out
        on = [i.name for i in st.interfaces.values()
              if n.kind == "hoa" and in_use.get(n.hoa) is not None and in_use[n.hoa].ifindex == i.ifindex]
        if fb is not None:
            bt = fb.get("bound_to")  # the engine's JSON: a list of names, unless it is malformed
            on = [x for x in bt if isinstance(x, str)] if isinstance(bt, list) else []
        out = []
        for itf in pic.interfaces():
            why = target_problem(st, an, itf.ifname, on)
            if self.controller.daemon is None:
                why = _("no mobility daemon")
            out.append((itf.ifname, why))
        return out

    def open_menu(self, nid: str, where: QPoint) -> QMenu | None:
        pic = self.canvas.picture
        n = pic.nodes.get(nid) if pic is not None else None
        if n is None:
            return None
        menu = QMenu(self)
        if not n.movable:
            for line in n.details[:6]:
                menu.addAction(line).setEnabled(False)
        else:
            what = n.hoa if n.kind == "hoa" else _("flow binding {fid}").format(fid=n.fid)
            menu.addAction(_("Move {what} to…").format(what=what)).setEnabled(False)
            sub = menu
            for name, why in self.choices(nid):
                act = sub.addAction(name if why is None else f"{name} ({why})")
                act.setEnabled(why is None)
                if n.kind == "hoa":
                    act.triggered.connect(lambda _=False, h=n.hoa, i=name: self.move_hoa(h, i))
                else:
                    act.triggered.connect(lambda _=False, h=n.hoa, f=n.fid, i=name: self.move_flow_binding(h, f, i))
        self.last_menu = menu
        self.win.show_menu(menu, where)
        return menu


def node_page(window) -> QWidget:
    """The Node tab's page for ``window`` (a :class:`~mhgui.ui.window.MainWindow`), kept as ``window.node_page``."""
    page = NodePage(window)
    window.node_page = page
    return page
