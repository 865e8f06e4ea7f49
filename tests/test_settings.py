"""Tests for mhgui.core.settings (the app's TOML settings) and merging with mip6d.conf."""

from __future__ import annotations

import ipaddress

import pytest
import tomli_w
from hypothesis import given, settings as hsettings
from hypothesis import strategies as st

from mhgui.core import mip6conf
from mhgui.core.model import HomeAddress
from mhgui.core.settings import (
    Settings,
    SettingsError,
    merge_home_addresses,
    parse_settings,
)

FULL = """\
# mhgui settings
allow_ula = true
mip6d_conf = "/etc/mip6d.conf"

[[home_address]]
address = "2001:DB8:1:0::100/64"
home_agent = "2001:db8:1:0:0:0:0:1"
home_link = "eth0"

[[home_address]]
address = "2001:db8:2::100/64"
home_agent = "::"
home_prefix = "2001:db8:2::5/56"
"""


def test_parse_full_example_normalises_addresses() -> None:
    s = parse_settings(FULL, "settings.toml")
    assert s == Settings(
        home_addresses=[
            HomeAddress("2001:db8:1::100", 64, "2001:db8:1::1", "eth0", None, "settings"),
            HomeAddress("2001:db8:2::100", 64, None, None, "2001:db8:2::/56", "settings"),
        ],
        allow_ula=True,
        mip6d_conf="/etc/mip6d.conf",
    )


def test_empty_file_gives_defaults() -> None:
    s = parse_settings("", "s.toml")
    assert s == Settings()
    assert (s.home_addresses, s.allow_ula, s.mip6d_conf) == ([], False, None)


def _toml(s: Settings) -> str:
    """A settings file for ``s`` as a user (or any TOML writer) would write it: tomli-w, not mhgui, writes
    it (mhgui never writes settings.toml)."""
    doc: dict = {"allow_ula": s.allow_ula}
    if s.mip6d_conf is not None:
        doc["mip6d_conf"] = s.mip6d_conf
    hoas = []
    for h in s.home_addresses:
        t = {"address": f"{h.address}/{h.prefixlen}"}
        t.update({k: v for k, v in (("home_agent", h.home_agent), ("home_prefix", h.home_prefix),
                                    ("home_link", h.home_link)) if v is not None})
        hoas.append(t)
    if hoas:
        doc["home_address"] = hoas
    return tomli_w.dumps(doc)


_addresses = st.tuples(
    st.integers(1, 2**128 - 1).map(lambda n: ipaddress.IPv6Address(n).compressed),
    st.integers(0, 128),
)
_ifnames = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='/:"#'), min_size=1, max_size=15).filter(lambda s: s not in (".", ".."))


@st.composite
def _settings(draw: st.DrawFn) -> Settings:
    hoas = []
    seen = set()
    for addr, plen in draw(st.lists(_addresses, max_size=4)):
        if addr in seen:
            continue
        seen.add(addr)
        hoas.append(
            HomeAddress(
                addr,
                plen,
                draw(st.none() | st.sampled_from(["2001:db8::1", "fe80::1", "2001:db8:ffff::"])),
                draw(st.none() | _ifnames),
                draw(st.none() | st.sampled_from(["2001:db8::/32", "2001:db8:1::/48", "::/0"])),
            )
        )
    conf = draw(st.none() | st.text(min_size=1).filter(lambda s: "\0" not in s))
    return Settings(hoas, draw(st.booleans()), conf)


@hsettings(max_examples=200)
@given(_settings())
def test_parse_reads_back_every_settings_file(s: Settings) -> None:
    """Any settings (odd strings in paths and names included) written as TOML read back equal."""
    assert parse_settings(_toml(s), "s.toml") == s


BAD = [
    ("allow_ula = \"yes\"\n", 1, "allow_ula must be true or false, not a string"),
    ("\nallow_ula = 1\n", 2, "allow_ula must be true or false, not an integer"),
    ("mip6d_conf = 3\n", 1, "mip6d_conf must be a string"),
    ('mip6d_conf = ""\n', 1, "non-empty"),
    ("colour = \"blue\"\n", 1, "unknown setting 'colour'"),
    ('[home_address]\naddress = "2001:db8::1/64"\n', 1, "array of tables"),
    ('[[home_address]]\nhome_agent = "2001:db8::1"\n', 1, "missing 'address'"),
    ('[[home_address]]\naddress = "2001:db8::1"\n', 2, "needs a prefix length"),
    ('[[home_address]]\naddress = "10.0.0.1/24"\n', 2, "invalid address"),
    ('[[home_address]]\naddress = "::/64"\n', 2, "invalid address"),
    ('[[home_address]]\naddress = 5\n', 2, "address must be a string, not an integer"),
    ('[[home_address]]\naddress = "2001:db8::1/64"\n\n[[home_address]]\naddress = "2001:db8::1/64"\nhome_agent = "2001:db8::9"\nhome_agnet = "x"\n',
     7, "home_address #2: unknown key 'home_agnet'"),
    ('[[home_address]]\naddress = "2001:db8::1/64"\nhome_agent = "2001:db8::zz"\n', 3, "invalid home_agent"),
    ('[[home_address]]\naddress = "2001:db8::1/64"\nhome_prefix = "2001:db8::"\n', 3, "invalid home_prefix"),
    ('[[home_address]]\naddress = "2001:db8::1/64"\nhome_link = "eth 0"\n', 3, "invalid interface name"),
    ('[[home_address]]\naddress = "2001:db8::1/64"\nhome_link = "averyveryverylongname"\n', 3, "invalid interface name"),
    ('[[home_address]]\naddress = "2001:db8::1/64"\n[[home_address]]\naddress = "2001:DB8::1/48"\n', 4, "already listed in home_address #1"),
    ("allow_ula = true\nmip6d_conf = \n", 2, "invalid TOML"),
    ("allow_ula = true\n[[home_address]\n", 2, "invalid TOML"),
    ('allow_ula = true\nallow_ula = false\n', 2, "invalid TOML"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), BAD)
def test_bad_settings_raise_settings_error(text: str, line: int | None, fragment: str) -> None:
    with pytest.raises(SettingsError) as exc:
        parse_settings(text, "/home/u/.config/mhgui/settings.toml")
    err = exc.value
    assert isinstance(err, ValueError)
    assert err.line == line, str(err)
    assert fragment in err.message, str(err)
    where = err.path if line is None else f"{err.path}:{line}"
    assert str(err) == f"{where}: {err.message}"
    assert len(str(err).splitlines()) == 1


def test_toml_error_message_keeps_column_but_not_line() -> None:
    with pytest.raises(SettingsError) as exc:
        parse_settings("allow_ula = tru\n", "s.toml")
    assert exc.value.line == 1
    assert "(column" in exc.value.message and "at line" not in exc.value.message


# --------------------------------------------------------------------------- merging

DAEMON = mip6conf.home_addresses(
    mip6conf.parse(
        "NodeConfig MN;\n"
        'MnHomeLink "eth0" { HomeAgentAddress 2001:db8:1::1; HomeAddress 2001:db8:1::100/64; }\n'
        'MnHomeLink "eth0" { HomeAgentAddress ::; HomeAddress 2001:db8:2::100/64; }\n',
        "/etc/mip6d.conf",
    )
)


def _hoa(addr: str, plen: int = 64, ha: str | None = None, link: str | None = None, prefix: str | None = None) -> HomeAddress:
    return HomeAddress(addr, plen, ha, link, prefix, "settings")


def test_merge_daemon_wins_with_note() -> None:
    merged, notes = merge_home_addresses(DAEMON, [_hoa("2001:db8:1::100", ha="2001:db8:1::2")])
    assert merged == DAEMON
    assert notes == [
        "2001:db8:1::100: mip6d.conf (/etc/mip6d.conf:2) overrides the app settings (home agent 2001:db8:1::2 ignored)"
    ]


def test_merge_keeps_settings_only_addresses_after_the_daemons() -> None:
    extra = _hoa("2001:db8:9::100", ha="2001:db8:9::1", link="wlan0")
    merged, notes = merge_home_addresses(DAEMON, [extra])
    assert merged == [*DAEMON, extra]
    assert notes == []


def test_merge_agreeing_duplicates_silently() -> None:
    same = [
        _hoa("2001:db8:1::100", ha="2001:db8:1::1", link="eth0", prefix="2001:db8:1::/64"),
        _hoa("2001:db8:2::100"),  # unset home agent / prefix never conflict
    ]
    merged, notes = merge_home_addresses(DAEMON, same)
    assert merged == DAEMON
    assert notes == []


def test_merge_reports_prefix_link_and_dhaad_conflicts() -> None:
    merged, notes = merge_home_addresses(
        DAEMON,
        [
            _hoa("2001:db8:1::100", plen=48),
            _hoa("2001:db8:2::100", ha="2001:db8:2::1", link="wlan0", prefix="2001:db8:2::/56"),
        ],
    )
    assert merged == DAEMON
    assert notes == [
        "2001:db8:1::100: mip6d.conf (/etc/mip6d.conf:2) overrides the app settings (prefix length /48 ignored)",
        "2001:db8:2::100: mip6d.conf (/etc/mip6d.conf:3) overrides the app settings "
        "(home agent 2001:db8:2::1, home prefix 2001:db8:2::/56, home link wlan0 ignored)",
    ]


def test_merge_duplicates_within_one_source_keep_the_first() -> None:
    a = _hoa("2001:db8:9::1", ha="2001:db8:9::a")
    b = _hoa("2001:db8:9::1", ha="2001:db8:9::b")
    merged, notes = merge_home_addresses([], [a, b, a])
    assert merged == [a]
    assert notes == ["2001:db8:9::1: listed twice in the app settings; the first entry is used (home agent 2001:db8:9::b ignored)"]
