"""Load-sharing weights of mhgui's mobility engine, in the preferences dialog (RFC 5648 + RFC 6089).

With several care-of addresses at once (``multiple_care_of = true`` in the engine's mn.toml, shown by
``GetStatus``/``GetFlowBindings``), the engine can spread new flows over its uplinks by weight, each
flow staying on one uplink (:mod:`mhgui.engine.mn_flows`, ``set_weights``). :class:`WeightsEditor`
shows one spin box per uplink, 0 (not used for sharing) to :data:`WEIGHT_MAX`, the range the engine's
control API accepts (:func:`mhgui.engine.mn_dbus._check_weights`: an unsigned integer 0..1000 per
interface, at most 64 interfaces); all 0 turns load sharing off.

The values start from what the engine reports (``GetFlowBindings``' ``weights``, read by
:meth:`~mhgui.daemons.engine.EngineDriver.flow_settings`); uplinks the engine has now come first (its
``GetUplinks`` order), then names that have a weight but are not uplinks now (their weight is kept by
the engine for when they come back). Applying sends
:meth:`~mhgui.daemons.engine.EngineDriver.set_load_sharing` (D-Bus ``SetLoadSharing(a{su})``, action
``io.github.mhgui.MHGui.engine-preferences``) in a task, never blocking the GUI: the "Apply weights"
button, or the dialog's own Apply (:meth:`WeightsEditor.apply_pending`). A refusal is shown in words
under the spin boxes: polkit's or the bus policy's (:func:`mhgui.helper.client.polkit_refusal`, with
the ``mhctl flow-bindings share`` command an administrator can run), the engine's sentence for an
invalid value, or why the call could not be made.

:func:`wants_weights` says whether a driver gets this section: the engine, connected, with several
care-of addresses.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSpinBox,
                               QVBoxLayout, QWidget)

from ..i18n import _
from . import colours

__all__ = ["WEIGHT_MAX", "WeightsEditor", "weights_refusal", "wants_weights"]

#: the largest weight the engine takes (mn_dbus._check_weights and MnFlows.set_weights: 0..1000)
WEIGHT_MAX = 1000
#: the most interfaces one SetLoadSharing may name (mn_dbus.MAX_NAMES)
MAX_UPLINKS = 64
#: pixels the dialog may grow to for this section: the window must fit a 1366x720 screen (with its title bar)
FIT_HEIGHT = 680


def wants_weights(driver: Any) -> bool:
    """Whether the dialog shows load-sharing weights for ``driver``: the engine (``name == "engine"``),
    connected, with several care-of addresses (``multiple_care_of``, hence flow bindings)."""
    if driver is None or getattr(driver, "name", None) != "engine":
        return False
    caps = getattr(driver, "capabilities", None)
    return bool(getattr(caps, "flow_bindings", False))


def _command(weights: Mapping[str, int]) -> str:
    shown = " ".join(f"{k}={v}" for k, v in weights.items() if v) or "off"
    return f"sudo mhctl flow-bindings share {shown}"


def weights_refusal(e: BaseException, weights: Mapping[str, int]) -> str:
    """The sentence shown when the engine did not take ``weights`` (``e``: EngineCallError, CapabilityError,
    or anything else the call raised)."""
    name = getattr(e, "error_name", "") or ""
    text = str(e) or type(e).__name__
    if name.endswith((".NotAuthorized", ".AccessDenied")):
        from ..helper.client import polkit_refusal
        return _("Weights not applied: {why}").format(why=polkit_refusal(
            _("Changing the load-sharing weights"), _command(weights), bus_policy=name.endswith(".AccessDenied")))
    if name.endswith(".InvalidArgs"):
        return _("Weights not applied: the mobility engine refused them: {why}").format(why=text)
    return _("Weights not applied: they could not be sent to the mobility engine: {why}").format(why=text)


class WeightsEditor(QGroupBox):
    """Per-uplink load-sharing weights of the engine (module docstring). ``driver``: the engine's
    :class:`~mhgui.daemons.engine.EngineDriver` (or anything with ``uplinks()``, ``flow_settings()`` and
    ``async set_load_sharing(weights)``)."""

    #: the weights the engine took ({name: weight}, 0s left out; {} = off)
    applied = Signal(object)

    def __init__(self, driver: Any, parent: QWidget | None = None) -> None:
        super().__init__(_("Load sharing"), parent)
        self.setObjectName("load-sharing")
        # never squeezed below what it needs (the dialog's list gives way instead; it stays within 1366x720)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.driver = driver
        self._task: asyncio.Task | None = None
        self._busy = False
        #: what the engine has, as last read or applied
        self.initial: dict[str, int] = {}
        self.spins: dict[str, QSpinBox] = {}
        #: the last refusal shown ("" when none)
        self.error = ""

        root = QVBoxLayout(self)
        intro = QLabel(_("New flows are spread over the uplinks by these weights, each flow staying on one "
                         "uplink (0: not used for sharing; all 0: off). The engine uses them at once."))
        intro.setWordWrap(True)
        root.addWidget(intro)
        self.form = QFormLayout()
        root.addLayout(self.form)
        self.summary = QLabel()
        self.summary.setObjectName("weights-summary")
        self.summary.setWordWrap(True)
        colours.set_tone(self.summary, "muted")
        row = QHBoxLayout()
        row.addWidget(self.summary, 1)
        self.apply_button = QPushButton(_("Apply &weights"))
        self.apply_button.setObjectName("apply-weights")
        self.apply_button.setAccessibleName(_("Apply the load-sharing weights"))
        self.apply_button.clicked.connect(self._on_apply)
        row.addWidget(self.apply_button)
        root.addLayout(row)
        self.error_label = QLabel()
        self.error_label.setObjectName("weights-error")
        self.error_label.setWordWrap(True)
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        colours.set_tone(self.error_label, "error")
        self.error_label.setVisible(False)
        root.addWidget(self.error_label)
        self.reload()

    def showEvent(self, event) -> None:
        """The dialog it is in grows to fit it (the dialog's own default size predates this section), within
        the screen's available height."""
        super().showEvent(event)
        win = self.window()
        want = min(win.sizeHint().height(), FIT_HEIGHT)
        screen = win.screen()
        if screen is not None:
            want = min(want, screen.availableGeometry().height() - 40)
        if win is not self and win.height() < want:
            win.resize(win.width(), want)

    # ---- reading
    def reload(self) -> None:
        """(Re)build the spin boxes from the driver's uplinks and weights as last read."""
        settings = self.driver.flow_settings() if hasattr(self.driver, "flow_settings") else {}
        weights = {str(k): int(v) for k, v in (settings.get("weights") or {}).items()
                   if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= WEIGHT_MAX}
        names: list[str] = []
        for u in self.driver.uplinks() if hasattr(self.driver, "uplinks") else ():
            n = u.get("name") if isinstance(u, dict) else None
            if isinstance(n, str) and n and n not in names:
                names.append(n)
        present = set(names)
        names += [n for n in sorted(weights) if n not in present]
        names = names[:MAX_UPLINKS]
        self.initial = {n: weights.get(n, 0) for n in names}
        while self.form.rowCount():
            self.form.removeRow(0)
        self.spins = {}
        for n in names:
            spin = QSpinBox()
            spin.setObjectName(f"weight-{n}")
            spin.setRange(0, WEIGHT_MAX)
            spin.setValue(self.initial[n])
            spin.setSpecialValueText(_("0 (not shared)"))
            spin.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            spin.setAccessibleName(_("Load-sharing weight of {uplink}").format(uplink=n))
            spin.setToolTip(_("Weight of {uplink}: 0 to {max}; new flows go to the uplinks in proportion to "
                              "their weights").format(uplink=n, max=WEIGHT_MAX))
            spin.valueChanged.connect(self._update)
            label = QLabel(n if n in present else _("{uplink} (not an uplink now)").format(uplink=n))
            label.setBuddy(spin)
            self.form.addRow(label, spin)
            self.spins[n] = spin
        self._update()

    def values(self) -> dict[str, int]:
        """``{uplink: weight}`` as edited, every uplink shown (0s included)."""
        return {n: s.value() for n, s in self.spins.items()}

    def weights(self) -> dict[str, int]:
        """What applying sends: the non-zero weights ({} = load sharing off)."""
        return {n: v for n, v in self.values().items() if v}

    def changed(self) -> bool:
        return self.values() != self.initial

    @property
    def busy(self) -> bool:
        return self._busy

    def _update(self, *_args) -> None:
        w = self.weights()
        if not self.spins:
            text = _("The mobility engine reports no uplink now.")
        elif not w:
            text = _("Load sharing is off: every new flow follows its home address.")
        elif len(w) == 1:
            text = _("Only {uplink} has a weight: new flows all go there.").format(uplink=next(iter(w)))
        else:
            total = sum(w.values())
            text = _("New flows: {shares}.").format(shares=", ".join(
                _("{uplink} {percent} %").format(uplink=n, percent=round(100 * v / total)) for n, v in w.items()))
        if self.changed():  # (a sentence of its own: the summary ends with its full stop)
            text += " " + _("Not applied yet.")
        self.summary.setText(text)
        self.apply_button.setEnabled(not self._busy and self.changed())
        for s in self.spins.values():
            s.setEnabled(not self._busy)

    # ---- applying
    def _on_apply(self) -> None:
        if self._busy or not self.changed():
            return
        self._task = asyncio.ensure_future(self._send(self._begin()))

    def _begin(self) -> dict[str, int]:
        """Busy from now (the controls say so at once); the weights to send."""
        self._busy = True
        self.apply_button.setText(_("Applying…"))
        self._update()
        return self.weights()

    async def apply(self) -> bool:
        """Send the weights (``set_load_sharing``); True when the engine took them. A refusal is shown in
        :attr:`error_label` (and kept in :attr:`error`); the spin boxes keep the edited values."""
        if self._busy:
            return False
        return await self._send(self._begin())

    async def _send(self, weights: dict[str, int]) -> bool:
        error = ""
        try:
            await self.driver.set_load_sharing(weights)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the engine's refusal, polkit's, the bus's: a sentence for the user
            error = weights_refusal(e, weights)
        finally:
            self._busy = False
            self.apply_button.setText(_("Apply &weights"))
        self.error = error
        self.error_label.setText(error)
        self.error_label.setVisible(bool(error))
        if not error:
            self.initial = self.values()
            self.applied.emit(dict(weights))
        self._update()
        return not error

    async def apply_pending(self) -> bool:
        """The dialog's Apply: send the weights when they were changed and not applied; True when nothing was
        pending or the engine took them."""
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if not self.changed():
            return True
        return await self.apply()
