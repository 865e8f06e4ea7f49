"""The backup path in the node's answer (issue 15, a new user's n1.2): with several care-of addresses every
uplink carries a registration; one that died (no carrier, or the home agent does not answer through it) is
said — in the window, the tray and `mhctl status` alike — not a green "home agent reachable" alone. And the
engine's loss figure (over its last probes) is not said as the path's loss now."""

from __future__ import annotations

import time

import pytest

from mhgui.core.analysis import analyse
from mhgui.core.headline import node_headline
from mhgui.core.trayview import build_tray_view
from netns import lab_why_not
from test_headline import ENGINE, HOA, mobile, probe, reg

MAIN, BACKUP = ("2001:db8:a1::2", 1), ("2001:db8:b1::3", 2)


def two_paths(second=True):
    out = [reg(HOA, MAIN[0], bid=1)]
    if second:
        out.append(reg(HOA, BACKUP[0], bid=2))
    return tuple(out)


def answer(bindings, uplinks):
    st = mobile()
    an = analyse(st, 0.0)
    h = node_headline(st, an, bindings=bindings, uplinks=uplinks, daemon=ENGINE)
    return h, build_tray_view(st, an, answer=h)


def test_a_dead_backup_is_said_and_is_a_warning():
    h, _v = answer(two_paths(), [probe("eth0", 2), probe("wlan0", 3)])
    assert h.level == "ok" and h.text == "Connected via eth0 (CoA 2001:db8:a1::2), home agent reachable, 23 ms"
    # the home agent does not answer through the backup (a black hole): its binding may still be listed
    h, v = answer(two_paths(), [probe("eth0", 2), probe("wlan0", 3, reachable=False)])
    assert h.level == "warning" and h.text.endswith("home agent reachable, 23 ms; backup wlan0 down"), h.text
    assert v.tooltip.splitlines()[0] == f"mhgui — {h.text}"  # the tray says the same
    # no carrier: the engine dropped its registration and has no verdict (reachable None)
    h, _v = answer(two_paths(second=False), [probe("eth0", 2), {**probe("wlan0", 3, reachable=None), "carrier": False}])
    assert h.level == "warning" and h.text.endswith("; backup wlan0 down"), h.text


def test_one_care_of_address_has_no_backup_to_lose():
    """Without BIDs (one CoA per home address) another uplink is no registered path: nothing said of it."""
    h, _v = answer((reg(HOA, MAIN[0]),), [probe("eth0", 2), probe("wlan0", 3, reachable=False)])
    assert h.level == "ok" and "backup" not in h.text


def test_the_main_path_down_is_not_also_a_backup_down():
    h, _v = answer(two_paths(), [probe("eth0", 2, reachable=False), probe("wlan0", 3, reachable=False)])
    assert h.level == "error" and "backup" not in h.text, h.text


def test_the_loss_figure_is_said_as_of_the_last_probes():
    h, _v = answer(two_paths(), [probe("eth0", 2, srtt=1.0, loss=0.45), probe("wlan0", 3)])
    assert h.level == "warning" and h.text.endswith("home agent reachable, 1 ms, 45 % of the last probes lost")


# --------------------------------------------------------------------------- the lab: up1 cut, blackholed
LAB_PREFIX = "q2a"


@pytest.mark.netns
@pytest.mark.skipif(lab_why_not() is not None, reason=lab_why_not() or "")
def test_in_the_lab_mhctl_status_says_the_backup_is_down():
    from mhgui.lab import Lab

    def node_line() -> str:
        run = Lab.exec_in_mn(LAB_PREFIX, ["mhctl", "status", "--no-networkmanager"], capture_output=True,
                             text=True, timeout=60, env={"LANGUAGE": "C"})
        assert run.returncode == 0, run.stderr
        return next(line for line in run.stdout.splitlines() if line.startswith("Node: "))

    def until(pred, what: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = node_line()
            if pred(line):
                return line
            assert time.monotonic() < deadline, f"{what}: {line}"
            time.sleep(0.3)

    if Lab.is_up(LAB_PREFIX):
        Lab.down(LAB_PREFIX)
    Lab.up(LAB_PREFIX, mcoa=True)
    try:
        until(lambda s: s.startswith("Node: Connected via up0") and "backup" not in s, "both paths up")
        Lab.cut(LAB_PREFIX, "up1")  # no carrier
        line = until(lambda s: "backup" in s, "up1 cut")
        assert line.startswith("Node: Connected via up0") and line.endswith("; backup up1 down"), line
        Lab.restore(LAB_PREFIX, "up1")
        until(lambda s: "backup" not in s, "up1 restored")
        Lab.blackhole(LAB_PREFIX, "up1")  # carrier up, the home agent unreachable through it
        line = until(lambda s: "backup" in s, "up1 blackholed")
        assert line.endswith("; backup up1 down"), line
    finally:
        Lab.down(LAB_PREFIX)
