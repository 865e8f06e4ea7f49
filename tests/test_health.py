"""The health core (mhgui.core.health): rates from counters, wraps and resets, bounds, probes, timeline, CSV."""

from __future__ import annotations

import csv
import io
import math

import pytest

from mhgui.core.bindings import Binding, BindingState
from mhgui.core.failover import FailoverEntry
from mhgui.core.health import (
    CSV_COLUMNS, Health, LinkCounters, TimelineEvent, csv_text, event_of_failover, events_of_bindings,
    events_of_changes, format_ms, format_rate,
)
from mhgui.core.model import AddressKey, Interface, InterfaceKind
from mhgui.core.state import Change
from mhgui.failover_service import DaemonBack, DaemonLost, Decided, EntryChanged, FailoverDone, FailoverFailed, LinkLost


def lc(ifindex=2, rx=0, tx=0, rxp=0, txp=0, name="eth0", width=64):
    return LinkCounters(ifindex, name, rx, tx, rxp, txp, width)


def parse(text: str) -> list[dict]:
    assert "\r\n" in text  # RFC 4180 line ends
    return list(csv.DictReader(io.StringIO(text, newline="")))


# --------------------------------------------------------------------------- rates
def test_rates_in_bits_per_second_from_two_readings():
    h = Health()
    assert h.add_counters(10.0, [lc(rx=1000, tx=500, rxp=10, txp=5)]) == []  # a baseline only
    pts = h.add_counters(12.0, [lc(rx=1000 + 250_000, tx=500 + 1_000, rxp=10 + 200, txp=5 + 8)])
    assert len(pts) == 1
    p = pts[0]
    assert p.rx_bps == 250_000 * 8 / 2.0 and p.tx_bps == 1_000 * 8 / 2.0
    assert p.rx_pps == 100.0 and p.tx_pps == 4.0
    assert p.gap  # the first point of a series starts a segment
    p2 = h.add_counters(13.0, [lc(rx=1000 + 250_000, tx=500 + 1_000, rxp=210, txp=13)])[0]
    assert (p2.rx_bps, p2.tx_bps, p2.gap) == (0.0, 0.0, False)
    assert list(h.interfaces[2].points) == [p, p2]


def test_each_interface_is_keyed_by_ifindex_and_a_rename_keeps_the_series():
    h = Health()
    h.add_counters(1.0, [lc(2, 0, name="eth0"), lc(3, 0, name="wlan0")])
    h.add_counters(2.0, [lc(2, 100, name="uplink0"), lc(3, 300, name="wlan0")])
    assert {i: (s.name, s.latest().rx_bps) for i, s in h.interfaces.items()} == {2: ("uplink0", 800.0),
                                                                                   3: ("wlan0", 2400.0)}


def test_a_counter_going_backwards_is_a_reset_not_a_huge_rate():
    h = Health()
    h.add_counters(1.0, [lc(rx=10_000_000, tx=10)])
    h.add_counters(2.0, [lc(rx=10_000_100, tx=20)])
    assert h.add_counters(3.0, [lc(rx=50, tx=5)]) == []  # driver reset: a new baseline
    s = h.interfaces[2]
    assert s.resets == 1
    p = h.add_counters(4.0, [lc(rx=150, tx=5)])[0]
    assert p.rx_bps == 800.0 and p.gap  # a new segment


def test_32_bit_counters_wrap_modulo_2_to_the_32():
    h = Health()
    top = (1 << 32) - 1000
    h.add_counters(1.0, [lc(rx=top, tx=0, width=32)])
    p = h.add_counters(2.0, [lc(rx=24, tx=0, width=32)])[0]
    assert p.rx_bps == (1000 + 24) * 8
    assert h.interfaces[2].wraps == 1 and h.interfaces[2].resets == 0


def test_64_bit_counter_at_the_top_is_not_taken_for_a_wrap():
    h = Health()
    h.add_counters(1.0, [lc(rx=(1 << 64) - 10)])
    assert h.add_counters(2.0, [lc(rx=5)]) == []
    assert h.interfaces[2].resets == 1


def test_a_pause_longer_than_max_gap_starts_a_new_segment():
    h = Health(max_gap=5.0)
    h.add_counters(1.0, [lc(rx=0)])
    h.add_counters(2.0, [lc(rx=1000)])
    assert h.add_counters(60.0, [lc(rx=2_000_000)]) == []  # no average over the minute the window was hidden
    p = h.add_counters(61.0, [lc(rx=2_000_125)])[0]
    assert p.rx_bps == 1000.0 and p.gap
    h.pause()
    assert h.add_counters(62.0, [lc(rx=3_000_000)]) == []


def test_a_reading_at_the_same_or_an_earlier_time_is_ignored():
    h = Health()
    h.add_counters(5.0, [lc(rx=0)])
    assert h.add_counters(5.0, [lc(rx=100)]) == []
    assert h.add_counters(4.0, [lc(rx=200)]) == []
    p = h.add_counters(6.0, [lc(rx=100)])[0]
    assert p.rx_bps == 800.0  # against the reading at 5.0


@pytest.mark.parametrize("bad", [
    LinkCounters(2, "x", -1, 0), LinkCounters(2, "x", 1.5, 0), LinkCounters(2, "x", True, 0),
    LinkCounters(2, "x", 1 << 64, 0), LinkCounters(0, "x", 1, 1), LinkCounters(-3, "x", 1, 1),
    LinkCounters(2, "x", 1, 1, width=16), LinkCounters("2", "x", 1, 1), LinkCounters(2, "x", None, 1),
    {"ifindex": 2, "rx_bytes": 1}, None, "eth0",
])
def test_hostile_readings_are_counted_and_skipped(bad):
    h = Health()
    h.add_counters(1.0, [bad, lc(3, 0)])
    h.add_counters(2.0, [bad, lc(3, 1000)])
    assert h.rejected == 2
    assert list(h.interfaces) == [3] and h.interfaces[3].latest().rx_bps == 8000.0


def test_hostile_times_and_names():
    h = Health()
    assert h.add_counters(math.nan, [lc()]) == [] and h.rejected == 1
    h.add_counters(1.0, [lc(name="=cmd|' /C calc'!A0\x1b[31m\n")])
    assert "\x1b" not in h.interfaces[2].name and "\n" not in h.interfaces[2].name


def test_memory_is_bounded_by_points_age_series_and_events():
    h = Health(keep=600.0, max_points=600, max_events=50, max_series=8)
    for i in range(2000):
        h.add_counters(float(i), [lc(k, rx=i * 1000) for k in range(1, 20)])
        h.record(TimelineEvent(float(i), "link", "link-up", "eth0", "up"))
    assert len(h.interfaces) == 8  # the first 8 of 19
    for s in h.interfaces.values():
        assert len(s.points) == 600 and s.points[0].t >= 2000 - 1 - 600
    assert len(h.events) == 50 and h.events[-1].t == 1999.0
    h.prune(5000.0)  # everything is older than `keep` now
    assert h.interfaces == {} and h.events == []


def test_forget_interface_and_a_new_nic_on_the_same_ifindex_starts_anew():
    h = Health()
    h.add_counters(1.0, [lc(rx=5_000_000)])
    h.add_counters(2.0, [lc(rx=5_000_100)])
    h.forget_interface(2)
    assert 2 not in h.interfaces
    assert h.add_counters(3.0, [lc(rx=10, name="veth9")]) == []
    assert h.interfaces[2].resets == 0


# --------------------------------------------------------------------------- probes
UP0 = {"name": "up0", "ifindex": 2, "carrier": True, "coa6": "2001:db8:a1::2", "coa4": None, "family": 6,
       "reachable": True, "rtt_ms": 1.02, "srtt_ms": 0.77, "loss": 0.0, "probe_interval_ms": 250.0,
       "probes_sent": 8, "probes_answered": 8}


def test_probe_series_and_reachability_events():
    h = Health()
    assert h.add_uplinks(1.0, [UP0, dict(UP0, name="up1", ifindex=3, rtt_ms=2.5)]) == []
    assert {k: (u.name, u.latest().rtt_ms) for k, u in h.uplinks.items()} == {2: ("up0", 1.02), 3: ("up1", 2.5)}
    ev = h.add_uplinks(2.0, [dict(UP0, reachable=False, rtt_ms=None, loss=0.15, probes_sent=12)])
    assert [(e.category, e.kind, e.subject, e.severity) for e in ev] == [("probe", "unreachable", "up0", "bad")]
    assert h.events == ev
    assert h.uplinks[2].latest().loss == 0.15 and h.uplinks[2].latest().rtt_ms is None
    ev = h.add_uplinks(3.0, [UP0])
    assert [(e.kind, e.severity) for e in ev] == [("reachable", "good")]
    assert "up0" in ev[0].text


def test_an_uplink_unreachable_from_the_start_is_an_event_unknown_is_not():
    h = Health()
    assert h.add_uplinks(1.0, [dict(UP0, reachable=None)]) == []
    assert [e.kind for e in h.add_uplinks(2.0, [dict(UP0, reachable=False)])] == ["unreachable"]


@pytest.mark.parametrize("item,field,want", [
    (dict(UP0, rtt_ms="1.5"), "rtt_ms", None), (dict(UP0, rtt_ms=math.nan), "rtt_ms", None),
    (dict(UP0, rtt_ms=-4.0), "rtt_ms", None), (dict(UP0, rtt_ms=True), "rtt_ms", None),
    (dict(UP0, loss=1.5), "loss", None), (dict(UP0, loss=-0.1), "loss", None),
    (dict(UP0, reachable="yes"), "reachable", None), (dict(UP0, probes_answered=9), "answered", None),
    (dict(UP0, probes_sent=-1), "sent", None), (dict(UP0, srtt_ms=math.inf), "srtt_ms", None),
])
def test_hostile_probe_fields_become_unknown(item, field, want):
    h = Health()
    h.add_uplinks(1.0, [item])
    assert getattr(h.uplinks[2].latest(), field) == want


@pytest.mark.parametrize("answer", [None, "[]", {"name": "up0"}, 42, [None, 3, "up0", {"rtt_ms": 1.0}]])
def test_malformed_getuplinks_answers_do_nothing(answer):
    h = Health()
    assert h.add_uplinks(1.0, answer) == []
    assert h.uplinks == {} and h.rejected >= 1


def test_an_uplink_without_ifindex_is_keyed_by_name_and_names_are_cleaned():
    h = Health()
    h.add_uplinks(1.0, [{"name": "wwan\x000", "reachable": True}, {"ifindex": 7}])
    assert set(h.uplinks) == {"wwan\ufffd0", 7} and h.uplinks[7].name == "if7"


# --------------------------------------------------------------------------- timeline
def iface(ifindex, name, up=True):
    return Interface(ifindex=ifindex, name=name, kind=InterfaceKind.ETHERNET, admin_up=up, oper_up=up, carrier=up,
                     operstate="up" if up else "down")


def test_events_of_store_changes():
    up, down = iface(2, "up0"), iface(2, "up0", up=False)
    key = AddressKey(2, "2001:db8:a1::2", 64)
    changes = [Change("link-down", 2, before=up, after=down), Change("address-removed", 2, key, before=None),
               Change("link-changed", 2, before=up, after=iface(2, "wan0")), Change("router-added", 2, after="fe80::1"),
               Change("link-changed", 2, before=up, after=up), Change("home-addresses-changed"),
               Change("source-lost", detail="netlink: resyncing")]
    ev = events_of_changes(7.0, changes, {2: "up0"})
    assert [(e.category, e.kind, e.severity) for e in ev] == [
        ("link", "link-down", "bad"), ("address", "address-removed", "warning"), ("link", "link-renamed", "warning"),
        ("router", "router-added", "info"), ("daemon", "source-lost", "bad")]
    assert all(e.t == 7.0 for e in ev)
    assert "up0" in ev[0].text and "2001:db8:a1::2/64" in ev[1].text and "up0" in ev[1].text
    assert "wan0" in ev[2].text


def test_events_of_bindings_registration_move_state_and_removal():
    b0 = Binding("2001:db8:10::42", "2001:db8:a1::2", state=BindingState.WAITING_ACK, interface="up0")
    b1 = Binding("2001:db8:10::42", "2001:db8:a1::2", state=BindingState.REGISTERED, interface="up0")
    b2 = Binding("2001:db8:10::42", "192.0.2.2", state=BindingState.REGISTERED, interface="up1")
    assert [e.kind for e in events_of_bindings(1.0, (), (b0,))] == ["binding-added"]
    ev = events_of_bindings(2.0, (b0,), (b1,))
    assert [(e.kind, e.severity) for e in ev] == [("binding-state", "good")] and "registered" in ev[0].text
    ev = events_of_bindings(3.0, (b1,), (b2,))
    assert [e.kind for e in ev] == ["binding-moved"] and "up0" in ev[0].text and "up1" in ev[0].text
    assert events_of_bindings(4.0, (b2,), (b2,)) == []
    assert [e.kind for e in events_of_bindings(5.0, (b2,), ())] == ["binding-removed"]


def test_failover_events_and_an_entry_updated_in_place():
    e = FailoverEntry(1, "app", "up0", "up1", "link-down", trigger_time=10.0, decision_time=10.01)
    h = Health()
    h.record(event_of_failover(EntryChanged(e)))
    e.bu_time, e.ack_time = 10.02, 10.05
    h.record(event_of_failover(EntryChanged(e)))
    assert len(h.events) == 1 and "50 ms" in h.events[0].text and "up0" in h.events[0].text
    assert h.events[0].severity == "warning"  # leaving up0 because its link went down
    back = FailoverEntry(2, "app", "up1", "up0", "recovered", trigger_time=20.0, decision_time=20.0)
    assert event_of_failover(EntryChanged(back)).severity == "good"
    back.reason = "recovered failed"
    assert event_of_failover(EntryChanged(back)).severity == "bad"
    done = event_of_failover(FailoverDone(e, 0.05, "daemon"))
    assert (done.kind, done.t, done.severity) == ("failover-done", 10.05, "good")
    for ev, kind in ((LinkLost("up0", "carrier", 9.9), "link-lost"), (FailoverFailed(None, "no uplink", 11.0),
                     "failover-failed"), (DaemonLost("gone", 12.0), "daemon-lost"), (DaemonBack(3.0, 15.0), "daemon-back")):
        assert event_of_failover(ev).kind == kind
    assert event_of_failover(Decided(())) is None
    assert event_of_failover(object()) is None


def test_events_stay_in_time_order_and_between_selects_a_range():
    h = Health()
    for t in (5.0, 1.0, 3.0, 3.0, 9.0):
        h.record(TimelineEvent(t, "link", "link-up", "x", f"at {t}"))
    assert [e.t for e in h.events] == [1.0, 3.0, 3.0, 5.0, 9.0]
    assert [e.t for e in h.events_between(2.0, 5.0)] == [3.0, 3.0, 5.0]
    h.record("not an event")
    h.record(TimelineEvent(math.nan, "link", "x", "x", "x"))
    assert h.rejected == 2 and len(h.events) == 5


# --------------------------------------------------------------------------- CSV and formats
def test_csv_parses_and_holds_every_sample_and_event():
    h = Health()
    h.add_counters(100.0, [lc(rx=0, tx=0)])
    h.add_counters(101.0, [lc(rx=1250, tx=125, rxp=10, txp=1)])
    h.add_uplinks(101.0, [UP0])
    h.record(TimelineEvent(100.5, "link", "link-down", "up0", 'up0 went down, "again"\nsecond line', "bad"))
    text = csv_text(h, wall_offset=1_700_000_000.0)
    rows = parse(text)
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    by = {(r["record"], r["metric"]): r for r in rows}
    assert by[("throughput", "rx")]["value"] == "10000.0" and by[("throughput", "rx")]["unit"] == "bit/s"
    assert by[("throughput", "tx")]["value"] == "1000.0" and by[("throughput", "rx")]["ifindex"] == "2"
    assert by[("probe", "rtt")]["value"] == "1.02" and by[("probe", "reachable")]["value"] == "true"
    ev = by[("event", "link/link-down")]
    assert ev["detail"] == 'up0 went down, "again"\nsecond line' and ev["value"] == "bad"
    assert ev["time_utc"] == "2023-11-14T22:15:00.500+00:00" and ev["t_s"] == "100.500"
    assert [float(r["t_s"]) for r in rows] == sorted(float(r["t_s"]) for r in rows)
    assert len(rows) == 4 + 6 + 1


def test_csv_range_and_formula_injection():
    h = Health()
    h.record(TimelineEvent(1.0, "link", "link-up", "=HYPERLINK(\"http://x\")", "+1 @SUM(A1)", "good"))
    h.record(TimelineEvent(5.0, "link", "link-up", "eth0", "-2", "good"))
    rows = parse(csv_text(h, wall_offset=0.0, t0=0.0, t1=2.0))
    assert len(rows) == 1
    assert rows[0]["subject"].startswith("'=") and rows[0]["detail"].startswith("'+")


def test_csv_of_nothing_is_the_header():
    assert csv_text(Health(), wall_offset=0.0) == ",".join(CSV_COLUMNS) + "\r\n"


@pytest.mark.parametrize("bps,text", [(None, "–"), (0, "0 bit/s"), (999, "999 bit/s"), (1500, "1.5 kbit/s"),
                                      (12_345_678, "12.3 Mbit/s"), (2.5e9, "2.5 Gbit/s"), (math.nan, "–")])
def test_format_rate(bps, text):
    assert format_rate(bps) == text


def test_format_ms():
    assert (format_ms(None), format_ms(1.234), format_ms(250.0), format_ms(1500.0)) == ("–", "1.23 ms", "250 ms",
                                                                                         "1500 ms")


def test_loss_is_shown_with_its_window_not_with_the_totals():
    """The engine's loss is over its last settled probes (mhgui.engine.probes.HISTORY): the value says so; the
    totals since it started go to the tooltip (issue 15, a new user read "100 % (463/484)")."""
    from mhgui.core.health import LOSS_WINDOW, ProbePoint, loss_text
    from mhgui.engine.probes import HISTORY
    assert LOSS_WINDOW == HISTORY == 20
    value, tip = loss_text(ProbePoint(1.0, False, None, None, 1.0, 484, 463), "up1")
    assert value == "100 % of the last 20" and "463/484" not in value
    assert "100 % of the last 20 probes" in tip and "463 of 484 answered since the engine started" in tip
    assert loss_text(ProbePoint(1.0, True, 3.0, 3.0, 0.0, 3, 3), "up0")[0] == "0 % of the last 3"  # just started
    value, tip = loss_text(ProbePoint(1.0, None, None, None, None, None, None), "up0")
    assert value == "–" and "no loss figure" in tip
