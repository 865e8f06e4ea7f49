"""The preferences dialog's load-sharing weights (mhgui.ui.weights_editor), with mhgui's mobility engine.

Two halves:

- pytest-qt against the real control API (:func:`mhgui.engine.mn_dbus.serve`) serving tests/enginebus.py's
  stand-in daemon (with several care-of addresses) on a private system bus with the engine's real D-Bus
  policy and dbusmock polkitd: the section is there only with ``multiple_care_of``; one spin box per
  uplink, 0..the engine's maximum; "Apply weights" and the dialog's own Apply send ``SetLoadSharing``
  without blocking the loop; polkit's refusal is said in words, with the command an administrator can run.
- the real engine in ``mhctl lab up --prefix g1a --multiple-care-of``: the editor shows the lab's uplinks,
  what it applies is what ``GetFlowBindings`` reports, and its maximum is exactly what the engine takes
  (one more is refused with InvalidArgs, shown in words).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from enginebus import StandInDaemon  # noqa: E402 (skips without root or tools)

from mhgui.daemons.base import STATE_CONNECTED  # noqa: E402
from mhgui.daemons.engine import EngineCallError, EngineDriver  # noqa: E402
from mhgui.engine.mn_dbus import ACTION_PREFERENCES, serve  # noqa: E402
from mhgui.ui.preferences import PreferencesDialog  # noqa: E402
from mhgui.ui.weights_editor import WEIGHT_MAX, WeightsEditor, wants_weights, weights_refusal  # noqa: E402
from waiting import until  # noqa: E402

LIVE = [("eth0", "ethernet", True, ""), ("wlan0", "wifi", True, ""), ("wwan0", "wwan", True, ""),
        ("usb0", "ethernet", False, "no usable care-of address")]


def run(loop, coro, timeout: float = 20.0):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


class SharingDaemon(StandInDaemon):
    """The stand-in with several care-of addresses: weights kept as the engine's MnFlows keeps them."""

    def __init__(self, mcoa: bool = True) -> None:
        super().__init__()
        self.core.mcoa = mcoa
        self.core.weights = {"wlan0": 3, "gone0": 2}  # gone0: a weight for an uplink not there now

    def set_weights(self, weights: dict[str, int]) -> None:
        self.calls.append(("set_weights", dict(weights)))
        self.core.weights = {n: w for n, w in weights.items() if w}
        self.emit("flows", {"weights": dict(self.core.weights)})


def _engine(engine_stack, qloop, mcoa: bool):
    engine_stack.reset()
    daemon = SharingDaemon(mcoa)
    daemon.service = run(qloop, serve(daemon, engine_stack.address))
    drv = EngineDriver(bus_address=engine_stack.address, backoff_initial=0.05, backoff_max=0.2)

    async def connect():
        await drv.start()
        await until(lambda: drv.status.state == STATE_CONNECTED and len(drv.raw_bindings()) == 3,
                    "the driver to connect")
    run(qloop, connect())
    return daemon, drv


@pytest.fixture
def engine(engine_stack, qloop):
    daemon, drv = _engine(engine_stack, qloop, True)
    try:
        yield daemon, drv
    finally:
        run(qloop, drv.stop())
        run(qloop, daemon.service.close())


def test_no_weights_without_several_care_of_addresses(engine_stack, qloop, qtbot):
    daemon, drv = _engine(engine_stack, qloop, False)
    try:
        assert not wants_weights(drv) and not wants_weights(None)
        assert not wants_weights(SimpleNamespace(name="umip", capabilities=SimpleNamespace(flow_bindings=True)))
        d = PreferencesDialog(LIVE, None, capabilities=drv.capabilities, driver=drv)
        qtbot.addWidget(d)
        assert d.weights is None and d.findChild(WeightsEditor) is None
    finally:
        run(qloop, drv.stop())
        run(qloop, daemon.service.close())


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen, a shown dialog
def test_spin_boxes_apply_and_polkit_refusal(engine, engine_stack, qloop, qtbot):
    daemon, drv = engine
    d = PreferencesDialog(LIVE, None, capabilities=drv.capabilities, driver=drv)
    qtbot.addWidget(d)
    w = d.weights
    d.show()
    qtbot.waitExposed(d)
    # shown whole: the dialog grew to fit the section (not its spin boxes squeezed), within 1366x720
    assert all(s.height() >= s.sizeHint().height() for s in w.spins.values())
    assert d.height() <= 720 - 40 and d.width() <= 1366
    assert isinstance(w, WeightsEditor) and d.findChild(WeightsEditor, "load-sharing") is w
    # the engine's uplinks in its order, then the name that only has a weight; the engine's values
    assert list(w.spins) == ["eth0", "wlan0", "wwan0", "usb0", "gone0"]
    assert w.values() == {"eth0": 0, "wlan0": 3, "wwan0": 0, "usb0": 0, "gone0": 2}
    for name, spin in w.spins.items():
        assert (spin.minimum(), spin.maximum()) == (0, WEIGHT_MAX) == (0, 1000)
        assert spin.accessibleName() and name in spin.accessibleName()
    assert w.apply_button.accessibleName() and not w.apply_button.isEnabled()  # nothing changed yet
    assert "not an uplink now" in w.form.labelForField(w.spins["gone0"]).text()

    # polkit says no: the sentence says so and what an administrator can run; nothing changed
    engine_stack.allow()
    w.spins["eth0"].setValue(1)
    # one sentence after the other, not "…17 %. (not applied yet)" (issue 15 n1.12)
    assert w.apply_button.isEnabled() and w.summary.text().endswith(" %. Not applied yet."), w.summary.text()
    qtbot.mouseClick(w.apply_button, pytest.importorskip("PySide6.QtCore").Qt.MouseButton.LeftButton)
    assert w.busy and not w.apply_button.isEnabled()  # the click returned at once: the call runs in a task
    run(qloop, until(lambda: not w.busy, "the refusal"))
    assert not w.error_label.isHidden(), w.error_label.text()
    said = w.error_label.text()
    assert "refused by your system's policy (polkit)" in said and "load-sharing weights" in said, said
    assert "sudo mhctl flow-bindings share eth0=1 wlan0=3 gone0=2" in said, said
    assert not any(c[0] == "set_weights" for c in daemon.calls)
    assert w.values()["eth0"] == 1 and w.changed()  # the edit is kept for another try

    # allowed: the engine takes them; what GetFlowBindings says afterwards is what was sent
    engine_stack.allow(ACTION_PREFERENCES)
    got: list = []
    w.applied.connect(got.append)
    assert run(qloop, w.apply())
    assert daemon.calls[-1] == ("set_weights", {"eth0": 1, "wlan0": 3, "gone0": 2})
    assert drv.flow_settings()["weights"] == {"eth0": 1, "wlan0": 3, "gone0": 2}
    assert got == [{"eth0": 1, "wlan0": 3, "gone0": 2}] and w.error_label.isHidden() and not w.changed()
    assert w.summary.text().startswith("New flows: eth0 17 %, wlan0 50 %, gone0 33 %"), w.summary.text()

    # the dialog's own Apply sends weights still pending (all 0: load sharing off), then closes
    for s in w.spins.values():
        s.setValue(0)
    assert "off" in w.summary.text()
    assert run(qloop, d.apply())
    assert daemon.calls[-1] == ("set_weights", {}) and drv.flow_settings()["weights"] == {}


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # offscreen, a shown dialog
def test_the_dialog_fits_720_with_a_title_bar_and_margin(engine, qtbot):
    """With the load-sharing weights (five uplinks) the dialog is at most 640 px tall at its default size
    (720 less a title bar and a margin); the weights are one click away, not squeezed."""
    _daemon, drv = engine
    d = PreferencesDialog(LIVE, None, capabilities=drv.capabilities, driver=drv)
    qtbot.addWidget(d)
    d.show()
    qtbot.waitExposed(d)
    assert d.height() <= 640 and d.minimumSizeHint().height() <= 640, d.size()
    assert d.view.height() >= d.view.sizeHintForRow(0) * 4  # the uplinks list still shows its rows
    d.pages.setCurrentIndex(1)  # the "Load sharing" tab
    qtbot.waitUntil(d.weights.isVisible)
    assert all(s.isVisible() and s.height() >= s.sizeHint().height() for s in d.weights.spins.values())
    assert d.height() <= 640


def test_refusal_words():
    inval = EngineCallError("io.github.mhgui.MHGui.MobileNode1.Error.InvalidArgs", "weight of up0: 0..1000, not 1001")
    assert weights_refusal(inval, {"up0": 1001}) == ("Weights not applied: the mobility engine refused them: "
                                                      "weight of up0: 0..1000, not 1001")
    denied = EngineCallError("org.freedesktop.DBus.Error.AccessDenied", "rejected send message")
    assert "system bus policy" in weights_refusal(denied, {})
    assert "share off" in weights_refusal(denied, {})
    assert weights_refusal(TimeoutError(), {}).endswith("could not be sent to the mobility engine: TimeoutError")


# --------------------------------------------------------------------------- the real engine in a lab
LAB_PREFIX = "g1a"


@pytest.fixture(scope="module")
def lab():
    from enginelab import why_not
    from mhgui.lab import Lab
    if why_not() is not None:
        pytest.skip(why_not())
    if Lab.is_up(LAB_PREFIX):
        Lab.down(LAB_PREFIX)
    try:
        yield Lab.up(LAB_PREFIX, mcoa=True)
    finally:
        Lab.down(LAB_PREFIX)


@pytest.mark.netns
def test_real_engine_takes_what_the_editor_offers(lab, qloop, qtbot):
    from enginelab import dbus_json
    drv = EngineDriver(bus_address=lab.bus_address, backoff_initial=0.05, backoff_max=0.5)

    async def connect():
        await drv.start()
        await until(lambda: drv.status.state == STATE_CONNECTED and {"up0", "up1"} <= {u["name"] for u in drv.uplinks()},
                    "the driver to connect to the lab's engine", timeout=30)
    run(qloop, connect(), timeout=40)
    try:
        assert wants_weights(drv)
        w = WeightsEditor(drv)
        qtbot.addWidget(w)
        assert {"up0", "up1"} <= set(w.spins)
        w.spins["up0"].setValue(1)
        w.spins["up1"].setValue(WEIGHT_MAX)  # the largest the spin box offers
        assert run(qloop, w.apply()), w.error
        assert dbus_json(lab.bus_address, "GetFlowBindings")["weights"] == {"up0": 1, "up1": WEIGHT_MAX}
        # one more than the spin box offers is refused by the engine itself, and said in words
        with pytest.raises(EngineCallError) as refused:
            run(qloop, drv.set_load_sharing({"up0": WEIGHT_MAX + 1}))
        assert refused.value.error_name.endswith(".InvalidArgs")
        assert weights_refusal(refused.value, {"up0": WEIGHT_MAX + 1}).startswith(
            "Weights not applied: the mobility engine refused them: ")
        # a new editor starts from what the engine has; all 0 turns sharing off
        w2 = WeightsEditor(drv)
        qtbot.addWidget(w2)
        assert (w2.values()["up0"], w2.values()["up1"]) == (1, WEIGHT_MAX)
        for s in w2.spins.values():
            s.setValue(0)
        assert run(qloop, w2.apply()), w2.error
        assert dbus_json(lab.bus_address, "GetFlowBindings")["weights"] == {}
    finally:
        run(qloop, drv.stop())
