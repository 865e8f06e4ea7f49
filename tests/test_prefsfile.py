"""failover.toml: parsing, rendering, marks, what a change means for the daemon (mhgui.core.prefsfile)."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings, strategies as st

from mhgui.core.analysis import analyse
from mhgui.core.capabilities import DaemonCapabilities
from mhgui.core.failover import Preferences
from mhgui.core.model import Address, Interface, InterfaceKind as K
from mhgui.core.prefsfile import (
    FailoverSettings, OrderEntry, PrefsError, app_side_changes, entries_to_prefs, live_interface_rows, marks_of,
    merge_interfaces, mnif_changes, parse_prefs, prefs_from_mnif, render_prefs, restart_needed,
)
from mhgui.core.state import NetlinkSnapshot, StateStore

UMIP = DaemonCapabilities(name="umip", connected=True)
REBINDS = DaemonCapabilities(name="other", connected=True, runtime_rebind=True)

GOOD = """\
holdup = 12
notifications = false
churn_window = 3.5
require_router = false

[[interface]]
name = "eth0"
mark = "primary"

[[interface]]
name = "wwan0"
mark = "backup"

[[interface]]
name = "wlan0"
mark = "never"

[[interface]]
name = "usb0"
"""


def prefs(*marked: tuple[str, str], holdup: float = 5.0) -> Preferences:
    return entries_to_prefs(marked, holdup=holdup)


# --------------------------------------------------------------------------- parsing and rendering
def test_a_good_file_reads_every_key_and_mark():
    r = parse_prefs(GOOD, "/x/failover.toml")
    assert r.problems == ()
    s = r.settings
    assert s.prefs.order == ("eth0", "wwan0", "wlan0", "usb0")
    assert s.prefs.backup == {"wwan0"} and s.prefs.never == {"wlan0"}
    assert s.prefs.primaries == ("eth0", "usb0")  # a missing mark is primary
    assert (s.prefs.holdup, s.prefs.churn_window, s.prefs.require_router) == (12.0, 3.5, False)
    assert s.notifications is False
    assert marks_of(s.prefs) == [("eth0", "primary"), ("wwan0", "backup"), ("wlan0", "never"), ("usb0", "primary")]


def test_empty_file_is_the_defaults():
    r = parse_prefs("", "f")
    assert r.problems == ()
    assert r.settings == FailoverSettings()
    assert r.settings.prefs.holdup == 5 and r.settings.notifications is True and r.settings.prefs.order == ()


def test_render_then_parse_gives_the_same_settings_and_valid_toml():
    s = parse_prefs(GOOD).settings
    text = render_prefs(s)
    assert text.startswith("# mhgui failover preferences")
    tomllib.loads(text)
    again = parse_prefs(text)
    assert again.problems == ()
    assert again.settings == s
    assert render_prefs(again.settings) == text  # stable


def test_unknown_keys_are_reported_and_kept():
    text = GOOD.replace('name = "wwan0"', 'name = "wwan0"\nmetric = 7') + '\n[future]\nlevel = 3\n'
    text = 'colour = "blue"\n' + text
    r = parse_prefs(text, "f")
    msgs = {p.key: p for p in r.problems}
    assert set(msgs) == {"colour", "future", "interface[1].metric"}
    assert all(not p.lossy for p in r.problems)
    assert not r.lossy
    assert msgs["colour"].line == 1
    assert msgs["future"].line == text.split("\n").index("[future]") + 1
    assert msgs["interface[1].metric"].line == text.split("\n").index("metric = 7") + 1
    assert "unknown key 'metric'" in str(msgs["interface[1].metric"]) and "kept" in str(msgs["interface[1].metric"])
    out = render_prefs(r.settings)
    data = tomllib.loads(out)
    assert data["colour"] == "blue" and data["future"] == {"level": 3}
    assert data["interface"][1] == {"name": "wwan0", "mark": "backup", "metric": 7}
    assert parse_prefs(out).settings == r.settings


def test_unknown_keys_of_a_forgotten_interface_go_with_it():
    s = parse_prefs('[[interface]]\nname = "a"\nx = 1\n[[interface]]\nname = "b"\ny = 2\n').settings
    s2 = s.with_prefs(prefs(("b", "primary")))
    assert s2.interface_extra == {"b": {"y": 2}}
    assert tomllib.loads(render_prefs(s2))["interface"] == [{"name": "b", "mark": "primary", "y": 2}]


def test_invalid_toml_names_the_line_and_uses_the_defaults():
    text = 'holdup = 5\nnotifications = true\n[[interface]]\nname = "eth0\n'
    r = parse_prefs(text, "/c/failover.toml")
    assert len(r.problems) == 1 and r.lossy
    p = r.problems[0]
    assert p.line == 4
    assert str(p).startswith("/c/failover.toml:4: not valid TOML")
    assert r.settings == FailoverSettings()
    with pytest.raises(PrefsError) as e:
        parse_prefs(text, "/c/failover.toml", strict=True)
    assert e.value.problem.line == 4


@pytest.mark.parametrize("line, key, words, field, value", [
    ('holdup = "5"', "holdup", "must be a number of seconds, not a string", "holdup", 5.0),
    ("holdup = 601", "holdup", "from 0 to 600 seconds, not 601", "holdup", 5.0),
    ("holdup = -1", "holdup", "from 0 to 600", "holdup", 5.0),
    ("holdup = nan", "holdup", "from 0 to 600", "holdup", 5.0),
    ("holdup = true", "holdup", "not a boolean", "holdup", 5.0),
    ("churn_window = inf", "churn_window", "from 0 to 600", "churn_window", 2.0),
    ('notifications = "yes"', "notifications", "true or false, not a string", "notifications", True),
    ("require_router = 1", "require_router", "true or false, not an integer", "require_router", True),
])
def test_a_bad_value_is_reported_with_line_and_key_and_the_default_is_used(line, key, words, field, value):
    text = f"# comment\n\n{line}\n"
    r = parse_prefs(text, "f.toml")
    assert [p.key for p in r.problems] == [key]
    p = r.problems[0]
    assert p.lossy and p.line == 3 and words in p.message, str(p)
    assert str(p).startswith("f.toml:3: ")
    s = r.settings
    got = s.notifications if field == "notifications" else getattr(s.prefs, field)
    assert got == value


def test_holdup_limits_are_accepted():
    assert parse_prefs("holdup = 0").settings.prefs.holdup == 0
    assert parse_prefs("holdup = 600").settings.prefs.holdup == 600
    assert parse_prefs("holdup = 2.5").settings.prefs.holdup == 2.5


def test_bad_interface_entries_are_skipped_with_their_lines_and_the_rest_is_kept():
    text = """\
[[interface]]
name = "eth0"

[[interface]]
mark = "backup"

[[interface]]
name = "has space"

[[interface]]
name = "eth0"
mark = "never"

[[interface]]
name = "wlan0"
mark = "nevr"

[[interface]]
name = 7

[[interface]]
name = "wwan0"
mark = "backup"
"""
    r = parse_prefs(text, "f")
    got = [(p.key, p.line) for p in r.problems]
    assert got == [("interface[1].name", 4), ("interface[2].name", 8), ("interface[3].name", 11),
                   ("interface[4].mark", 16), ("interface[5].name", 19)]
    msgs = [p.message for p in r.problems]
    assert "has no name" in msgs[0]
    assert "'has space' is not an interface name" in msgs[1]
    assert "eth0 is listed twice" in msgs[2]
    assert "unknown mark 'nevr'" in msgs[3] and "never is used" in msgs[3]
    assert "an integer is not an interface name" in msgs[4]
    assert r.lossy
    p = r.settings.prefs
    assert p.order == ("eth0", "wlan0", "wwan0")
    assert p.never == {"wlan0"}  # an unknown mark is read the safe way
    assert p.backup == {"wwan0"}


def test_interface_that_is_not_an_array_of_tables():
    r = parse_prefs('interface = "eth0"\n', "f")
    assert [(p.key, p.line) for p in r.problems] == [("interface", 1)]
    assert "array of tables" in r.problems[0].message
    r = parse_prefs('interface = ["eth0"]\n', "f")
    assert [(p.key, p.line) for p in r.problems] == [("interface[0]", 1)]


def test_problems_in_the_inline_form_the_writer_uses_have_lines():
    text = 'holdup = 1\ninterface = [\n    { name = "a", mark = "primary" },\n    { name = "b", mark = 3 },\n]\n'
    r = parse_prefs(text, "f")
    assert [(p.key, p.line) for p in r.problems] == [("interface[1].mark", 4)]


@settings(max_examples=150, deadline=None)
@given(
    names=st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789_-.@", min_size=1, max_size=15)
                   .filter(lambda n: n not in (".", "..")), unique=True, max_size=12),
    data=st.data(),
    holdup=st.one_of(st.integers(0, 600), st.floats(0, 600, allow_nan=False)),
    notifications=st.booleans(),
)
def test_any_settings_round_trip(names, data, holdup, notifications):
    marks = data.draw(st.lists(st.sampled_from(["primary", "backup", "never"]), min_size=len(names),
                               max_size=len(names)))
    s = FailoverSettings(entries_to_prefs(zip(names, marks), holdup=holdup), notifications)
    r = parse_prefs(render_prefs(s))
    assert r.problems == ()
    assert r.settings == s


# --------------------------------------------------------------------------- what a change means
def test_changing_the_order_changes_mnifpreference_and_needs_a_restart_with_umip():
    old = prefs(("eth0", "primary"), ("wlan0", "primary"))
    new = prefs(("wlan0", "primary"), ("eth0", "primary"))
    assert mnif_changes(old, new) == {"wlan0": 1, "eth0": 2}
    assert restart_needed(old, new, UMIP) is True
    assert restart_needed(old, new, None) is True  # unknown daemon: taken as UMIP
    assert restart_needed(old, new, REBINDS) is False  # rebinds at run time


def test_app_side_settings_alone_need_no_restart():
    old = prefs(("eth0", "primary"), ("wlan0", "backup"))
    new = prefs(("eth0", "primary"), ("wlan0", "backup"), holdup=30)
    assert mnif_changes(old, new) == {}
    assert restart_needed(old, new, UMIP) is False
    a = FailoverSettings(old, True)
    b = FailoverSettings(new, False)
    assert app_side_changes(a, b) == ["holdup", "notifications"]
    assert app_side_changes(a, a) == []


def test_a_backup_moved_above_a_primary_keeps_the_values():
    old = prefs(("eth0", "primary"), ("wwan0", "backup"))
    new = prefs(("wwan0", "backup"), ("eth0", "primary"))
    assert mnif_changes(old, new) == {}
    assert not restart_needed(old, new, UMIP)


def test_marks_change_values():
    old = prefs(("eth0", "primary"), ("wlan0", "primary"), ("wwan0", "primary"))
    assert mnif_changes(old, prefs(("eth0", "primary"), ("wlan0", "never"), ("wwan0", "primary"))) == \
        {"wlan0": 0, "wwan0": 2}
    assert mnif_changes(old, prefs(("eth0", "backup"), ("wlan0", "primary"), ("wwan0", "primary"))) == \
        {"eth0": 3, "wlan0": 1, "wwan0": 2}


def test_a_never_interface_is_the_same_as_one_mip6d_conf_does_not_list():
    old = prefs(("eth0", "primary"))
    new = prefs(("eth0", "primary"), ("usb0", "never"))
    assert mnif_changes(old, new) == {}
    assert mnif_changes(None, new) == {"eth0": 1}


def test_a_forgotten_interface_gets_zero():
    old = prefs(("eth0", "primary"), ("usb0", "primary"))
    assert mnif_changes(old, prefs(("eth0", "primary"))) == {"usb0": 0}


def test_the_daemons_current_values_win_over_the_saved_file():
    old = prefs(("eth0", "primary"), ("wlan0", "primary"))
    new = prefs(("eth0", "primary"), ("wlan0", "primary"), holdup=9)
    # the saved file agrees with new, but mip6d.conf says otherwise
    assert mnif_changes(old, new, current={"eth0": 2, "wlan0": 1}) == {"eth0": 1, "wlan0": 2}
    assert restart_needed(old, new, UMIP, current={"eth0": 2, "wlan0": 1})
    assert not restart_needed(old, new, UMIP, current={"eth0": 1, "wlan0": 2, "lo": 0})
    # an interface mip6d.conf uses that the list does not name is taken out (the policy never uses it)
    assert mnif_changes(old, new, current={"eth0": 1, "wlan0": 2, "tap9": 3}) == {"tap9": 0}


def test_prefs_from_mnif_orders_by_value():
    p = prefs_from_mnif({"wlan0": 2, "eth0": 1, "usb0": 0, "wwan0": 2})
    assert marks_of(p) == [("eth0", "primary"), ("wlan0", "primary"), ("wwan0", "primary"), ("usb0", "never")]


def test_entries_to_prefs_refuses_bad_marks_and_names():
    with pytest.raises(ValueError, match="unknown mark"):
        entries_to_prefs([("eth0", "sometimes")])
    with pytest.raises(ValueError, match="twice"):
        entries_to_prefs([("eth0", "primary"), ("eth0", "never")])


# --------------------------------------------------------------------------- the dialog's rows
LIVE = [("eth0", "ethernet", True, ""), ("wlan0", "wifi", False, "no carrier"), ("wwan0", "wwan", True, "")]


def test_merge_keeps_the_saved_order_and_absent_interfaces_and_appends_new_ones_as_never():
    saved = prefs(("wlan0", "primary"), ("usb0", "backup"), ("eth0", "primary"))
    rows = merge_interfaces(LIVE, saved)
    assert rows == [
        OrderEntry("wlan0", "wifi", False, "no carrier", True, "primary", True),
        OrderEntry("usb0", "", False, "not present", False, "backup", True),
        OrderEntry("eth0", "ethernet", True, "", True, "primary", True),
        OrderEntry("wwan0", "wwan", True, "new (not in the saved list)", True, "never", False),
    ]


def test_merge_without_a_saved_order_proposes_the_live_order_or_the_daemons():
    rows = merge_interfaces(LIVE, None)
    assert [(r.name, r.mark) for r in rows] == [("eth0", "primary"), ("wlan0", "primary"), ("wwan0", "primary")]
    assert merge_interfaces(LIVE, prefs()) == rows  # an empty saved order is no order
    rows = merge_interfaces(LIVE, None, {"wwan0": 1, "eth0": 2, "tap0": 0})
    assert [(r.name, r.mark, r.present) for r in rows] == [
        ("wwan0", "primary", True), ("eth0", "primary", True), ("tap0", "never", False), ("wlan0", "never", True)]


def test_live_interface_rows_from_the_node_state():
    store = StateStore()
    store.apply(NetlinkSnapshot(
        (Interface(2, "eth0", K.ETHERNET, admin_up=True, oper_up=True, carrier=True, operstate="up"),
         Interface(3, "wlan0", K.WIFI, admin_up=True, oper_up=False, carrier=False, operstate="down"),
         Interface(4, "wwan0", K.WWAN, admin_up=True, oper_up=True, carrier=True, operstate="up"),
         Interface(5, "ip6tnl1", K.TUNNEL, admin_up=True, oper_up=True, carrier=True, operstate="up")),
        (Address(2, "2001:db8:a::2", 64), Address(4, "2001:db8:c::4", 64)),
        ((2, "fe80::1"),)))
    an = analyse(store.state, 0.0)
    assert live_interface_rows(store.state, an) == [
        ("eth0", "ethernet", True, ""), ("wlan0", "wifi", False, "no carrier"),
        ("wwan0", "wwan", False, "no default router")]
    assert live_interface_rows(store.state, an, require_router=False)[2] == ("wwan0", "wwan", True, "")
