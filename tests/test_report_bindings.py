"""The binding table in ``mhctl status`` (issue 15.9): the daemon's bindings under its name, or why there
are none; never a line that only says where the table would come from ("Binding table: from umip").

Property-based over binding tables as the drivers give them (:meth:`Binding.to_json`); end to end with a
running daemon in tests/test_cli_umip.py.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mhgui.core.bindings import Binding, BindingState
from mhgui.core.report import binding_table_lines

ADDRS = st.sampled_from(["2001:db8:1::100", "2001:db8:1::101", "2001:db8:a::5", "2001:db8:b::5", "192.0.2.7"])
BINDINGS = st.lists(st.builds(
    Binding, hoa=ADDRS, coa=ADDRS, peer=st.one_of(st.none(), ADDRS), bid=st.one_of(st.none(), st.integers(1, 0xFFFF)),
    lifetime=st.one_of(st.none(), st.integers(0, 0xFFFF * 4)),
    lifetime_remaining=st.one_of(st.none(), st.integers(-100, 0xFFFF * 4)), seq=st.one_of(st.none(), st.integers(0, 0xFFFF)),
    state=st.sampled_from(list(BindingState)), interface=st.one_of(st.none(), st.sampled_from(["upA", "wlan0"]))),
    max_size=6)
DAEMONS = st.sampled_from(["umip", "engine"])


@settings(max_examples=200, deadline=None)
@given(BINDINGS, DAEMONS)
def test_a_connected_daemon_shows_its_table(bindings, name):
    rows = [b.to_json(None) for b in bindings]
    lines = binding_table_lines({"name": name, "connected": True}, rows)
    assert lines[0].startswith(f"Binding table ({name}):")
    if not rows:
        assert lines == [f"Binding table ({name}): no bindings"]
        return
    assert len(lines) == 1 + len(rows)
    for line, b in zip(lines[1:], rows):
        assert line.startswith(f"  {b['hoa']} → {b['coa']}")
        assert b["state"] in line and f"via {b['interface'] or '?'}" in line
        assert (f"BID {b['bid']}" in line) == (b["bid"] is not None)


@settings(max_examples=50, deadline=None)
@given(BINDINGS, DAEMONS, st.one_of(st.none(), st.text(min_size=1, max_size=40)))
def test_no_daemon_says_why(bindings, name, error):
    lines = binding_table_lines({"name": name, "connected": False, "error": error},
                                [b.to_json(None) for b in bindings])
    assert len(lines) == 1 and lines[0].startswith("Binding table: no mobility daemon connected")
    if error:
        assert lines[0].endswith(f"({name}: {error})")
