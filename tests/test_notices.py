"""The notification coalescer and rate limiter (mhgui.core.notices), with a fake clock."""

from __future__ import annotations

import pytest

from mhgui.core.notices import (DAEMON_LOST, FAILOVER_DONE, Notice, NoticeCoalescer, daemon_lost, failover_done,
                                failover_failed, link_lost)


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def run_until(c: NoticeCoalescer, clock: Clock, end: float) -> list:
    """Poll at every deadline up to ``end`` (as the notifier's timer does)."""
    out = []
    while c.next_deadline is not None and c.next_deadline <= end:
        clock.t = max(clock.t, c.next_deadline)
        n = c.poll()
        assert n is not None, "poll at next_deadline gave nothing"
        out.append((clock.t, n))
    clock.t = max(clock.t, end)
    return out


def test_kinds_and_texts():
    assert link_lost("eth0", "no carrier").title == "Link lost: eth0"
    f = failover_done("eth0", "wlan0", 183.4, ("2001:db8:1::100",), on_backup=True)
    assert f.kind == FAILOVER_DONE and f.ms == 183.4
    assert f.title == "Failover done: eth0 → wlan0 in 183 ms" and f.icon_state == "backup"
    assert failover_failed("eth0", "no usable interface").icon_state == "no-coa"
    assert daemon_lost("mip6d").kind == DAEMON_LOST and daemon_lost("mip6d").icon_state == "no-daemon"
    with pytest.raises(ValueError):
        Notice("nonsense", "x")


def test_single_notice_waits_for_quiet_then_is_told():
    clock = Clock()
    c = NoticeCoalescer(clock, quiet=0.3, max_delay=1.0)
    c.add(link_lost("eth0"))
    assert c.poll() is None
    assert c.next_deadline == pytest.approx(100.3)
    clock.t = 100.29
    assert c.poll() is None
    clock.t = 100.3
    n = c.poll()
    assert n.title == "Link lost: eth0" and n.count == 1 and not n.replace
    assert c.poll() is None and c.next_deadline is None


def test_ten_events_in_one_second_make_one_notification():
    clock = Clock()
    c = NoticeCoalescer(clock, quiet=0.3, max_delay=1.0)
    for i in range(10):
        clock.t = 100.0 + i * 0.1  # 0.0 .. 0.9: never quiet for 0.3 s
        assert c.poll() is None
        c.add(link_lost(f"eth{i}") if i % 2 == 0 else failover_done(f"eth{i-1}", "wlan0", 100 + i))
    sent = run_until(c, clock, 105.0)
    assert len(sent) == 1
    at, n = sent[0]
    assert at == pytest.approx(101.0)  # max_delay after the first
    assert n.count == 10
    assert n.title == "Failover done: eth8 → wlan0 in 109 ms (and 9 more events)"
    lines = n.body.splitlines()
    assert len(lines) == 6 and lines[0] == "Link lost: eth0" and "more" in lines[1]
    assert lines[-1].startswith("Failover done: eth8")
    assert n.urgency == 1 and n.icon_state == "ok"


def test_urgency_is_the_highest_and_icon_the_last():
    clock = Clock()
    c = NoticeCoalescer(clock)
    c.add(daemon_lost("mip6d"))
    c.add(link_lost("eth0"))
    (_, n), = run_until(c, clock, 102)
    assert n.urgency == 2 and n.icon_state == "backup"


def test_rate_limit_holds_and_summarises_never_drops():
    clock = Clock()
    c = NoticeCoalescer(clock, quiet=0.1, max_delay=0.5, rate_limit=3, rate_window=60.0, replace_within=5.0)
    sent = []
    for i in range(20):  # one event every 2 s for 40 s
        sent += run_until(c, clock, 100.0 + 2 * i)
        c.add(link_lost(f"if{i}"))
    sent += run_until(c, clock, 300.0)
    times = [t for t, _ in sent]
    # three in the first minute, then the held ones in one at the window's end
    assert len(sent) == 4
    assert times[:3] == pytest.approx([100.1, 102.1, 104.1])
    assert times[3] == pytest.approx(160.1)
    assert sum(n.count for _, n in sent) == 20
    assert sent[3][1].count == 17
    for a, b in zip(times, times[3:]):
        assert b - a >= 60.0 - 1e-9


def test_replace_within_window():
    clock = Clock()
    c = NoticeCoalescer(clock, quiet=0.1, max_delay=0.5, replace_within=10.0)
    c.add(link_lost("eth0"))
    (_, first), = run_until(c, clock, 101)
    clock.t = 105
    c.add(failover_done("eth0", "wlan0", 150))
    (_, second), = run_until(c, clock, 106)
    clock.t = 200
    c.add(link_lost("wlan0"))
    (_, third), = run_until(c, clock, 201)
    assert (first.replace, second.replace, third.replace) == (False, True, False)


def test_clear_and_validation():
    clock = Clock()
    c = NoticeCoalescer(clock)
    c.add(link_lost("eth0"))
    c.clear()
    assert c.next_deadline is None and c.pending == 0
    clock.t += 10
    assert c.poll() is None
    with pytest.raises(ValueError):
        NoticeCoalescer(clock, rate_limit=0)
    with pytest.raises(ValueError):
        NoticeCoalescer(clock, quiet=-1)
