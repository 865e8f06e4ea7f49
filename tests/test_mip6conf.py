"""Tests for mhgui.core.mip6conf (grammar: /work/shared/domain/umip.md section 2)."""

from __future__ import annotations

import dataclasses
import difflib
import glob as globmod
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mhgui.core import mip6conf as mc
from mhgui.core.mip6conf import ConfError
from mhgui.core.model import HomeAddress

# The minimal MN example of umip.md section 2, verbatim.
MINIMAL_MN = """\
NodeConfig MN;
DebugLevel 0;
DoRouteOptimizationCN disabled;
DoRouteOptimizationMN disabled;
UseMnHaIPsec disabled;          # HA must match
InterfaceInitialInitDelay 2.0;
MnRouterProbes 1;
Interface "eth1"  { MnIfPreference 1; }
Interface "wlan0" { MnIfPreference 2; }
MnHomeLink "eth0" { HomeAgentAddress 2001:db8:1::1; HomeAddress 2001:db8:1::100/64; }
MnHomeLink "eth0" { HomeAgentAddress 2001:db8:2::1; HomeAddress 2001:db8:2::100/64; }
"""

# Comments everywhere, odd spacing, unknown options, every value kind.
COMMENTED = """\
# /etc/mip6d.conf -- mobile router, hand-edited
#   second header line with "quotes" and { braces } and ; semicolons

NodeConfig MN;   # trailing comment
DebugLevel	10 ;	# tab-separated
DebugLogFile "/var/log/mip6d # not a comment.log";
VTService "7777";               # unknown option (OAI fork): kept as is
FrobnicateLevel 3 fast { knob 1; dial "x"; }   # unknown block: kept
DoRouteOptimizationCN deny;
DoRouteOptimizationMN allow;
UseMnHaIPsec block;
KeyMngMobCapability false;
MnUseAllInterfaces enabled;
OptimisticHandoff true;
InitialBindackTimeoutFirstReg 1.5;
InitialBindackTimeoutReReg 1.0;
InitialSolicitTimer 3.0;
MnRouterProbeTimeout 0.5;
MnMaxHaBindingLife 262140;
MnMaxCnBindingLife 420;

Interface "eth1"
{
    # wired first
    MnIfPreference 1;   # best
    IfType MN;
}
Interface "wlan0" { Tunnel disabled; }   # no preference: default 10
Interface "wwan0";

MnHomeLink "eth0" {
    # first home address, mobile router with two mobile network prefixes
    HomeAgentAddress 2001:DB8:1:0::1;
    HomeAddress 2001:db8:1::100/64 (2001:db8:5::/48, 2001:db8:6::/48);
    IsMobRtr enabled;
    UseAltCoa true;
    MnRoPolicy 2001:db8:77::1 false;
    MnRoPolicy disabled;
}
MnHomeLink "eth0" {
  HomeAgentAddress ::;   # dynamic home agent discovery
  HomeAddress 2001:db8:2::100/64;
  HomePrefix 2001:db8:2::/56;
}
MnHomeLink "usb0" { HomeAddress 2001:db8:3:0:0:0:0:100/128; }

IPsecPolicySet {
    HomeAgentAddress 2001:db8:1::1;
    HomeAddress 2001:db8:1::100/64;
    IPsecPolicy HomeRegBinding UseESP 11 12;
    IPsecPolicy Mh UseESP;
}
CnBindingPolicySet {
    2001:db8:99::1 2001:db8:1::100 enabled;
    2001:db8:99::2 disabled;
}
# last line has no newline"""

ROUND_TRIP = {
    "minimal": MINIMAL_MN,
    "commented": COMMENTED,
    "crlf": MINIMAL_MN.replace("\n", "\r\n"),
    "empty": "",
    "only-comments": "# nothing\n\n   # here\n",
    "no-final-newline": "NodeConfig MN;",
    "unknown-only": 'Whatever 1 2 "three" / ( , ) = ;\nMore { a; b { c; } }\n',
}


def _conf(text: str, path: str = "/etc/mip6d.conf") -> mc.ConfFile:
    return mc.parse(text, path)


@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
def test_render_parse_is_identity(name: str) -> None:
    text = ROUND_TRIP[name]
    conf = mc.parse(text)
    assert mc.render(conf) == text
    assert "".join(t.text for t in mc.tokenize(text)) == text


def test_statement_tree_keeps_names_args_blocks_lines_and_offsets() -> None:
    conf = _conf(MINIMAL_MN)
    names = [s.name for s in conf.statements]
    assert names == [
        "NodeConfig", "DebugLevel", "DoRouteOptimizationCN", "DoRouteOptimizationMN", "UseMnHaIPsec",
        "InterfaceInitialInitDelay", "MnRouterProbes", "Interface", "Interface", "MnHomeLink", "MnHomeLink",
    ]  # fmt: skip
    assert [s.line for s in conf.statements] == list(range(1, 12))
    for st_ in conf.statements:
        src = MINIMAL_MN[st_.start : st_.end]
        assert src.startswith(st_.name)
        assert src.endswith(";") or src.endswith("}")
    iface = conf.statements[7]
    assert [t.text for t in iface.args] == ['"eth1"']
    assert iface.args[0].value == "eth1"
    assert iface.block is not None and [c.name for c in iface.block] == ["MnIfPreference"]
    pref = iface.block[0].args[0]
    assert (pref.text, pref.line, MINIMAL_MN[pref.start : pref.end]) == ("1", 8, "1")
    hoa = conf.statements[9].children("HomeAddress")[0]
    assert [t.text for t in hoa.args] == ["2001:db8:1::100", "/", "64"]
    assert conf.statements[0].block is None


def test_unknown_options_are_kept_with_their_blocks() -> None:
    conf = _conf(COMMENTED)
    vt = conf.find("VTService")
    assert len(vt) == 1 and vt[0].args[0].value == "7777" and vt[0].line == 7
    frob = conf.find("FrobnicateLevel")[0]
    assert [t.text for t in frob.args] == ["3", "fast"]
    assert frob.block is not None and [c.name for c in frob.block] == ["knob", "dial"]
    # The '#' inside the string is not a comment.
    assert conf.find("DebugLogFile")[0].args[0].value == "/var/log/mip6d # not a comment.log"


def test_home_addresses_of_the_minimal_mn_example() -> None:
    assert mc.home_addresses(_conf(MINIMAL_MN)) == [
        HomeAddress("2001:db8:1::100", 64, "2001:db8:1::1", "eth0", "2001:db8:1::/64", "/etc/mip6d.conf:10"),
        HomeAddress("2001:db8:2::100", 64, "2001:db8:2::1", "eth0", "2001:db8:2::/64", "/etc/mip6d.conf:11"),
    ]


def test_home_addresses_normalise_and_handle_dhaad_home_prefix_and_mnp() -> None:
    hoas = mc.home_addresses(_conf(COMMENTED))
    assert hoas == [
        # HomeAgentAddress 2001:DB8:1:0::1 normalised; MNPs do not change the HoA
        HomeAddress("2001:db8:1::100", 64, "2001:db8:1::1", "eth0", "2001:db8:1::/64", "/etc/mip6d.conf:31"),
        # HomeAgentAddress :: -> DHAAD; HomePrefix wins over the HoA's own /64
        HomeAddress("2001:db8:2::100", 64, None, "eth0", "2001:db8:2::/56", "/etc/mip6d.conf:40"),
        HomeAddress("2001:db8:3::100", 128, None, "usb0", "2001:db8:3::100/128", "/etc/mip6d.conf:45"),
    ]
    assert [h.network.compressed for h in hoas] == ["2001:db8:1::/64", "2001:db8:2::/56", "2001:db8:3::100/128"]


def test_interface_preferences_defaults_and_first_statement_wins() -> None:
    assert mc.interface_preferences(_conf(MINIMAL_MN)) == {"eth1": 1, "wlan0": 2}
    assert mc.interface_preferences(_conf(COMMENTED)) == {"eth1": 1, "wlan0": 10, "wwan0": 10}
    text = 'Interface "a" { MnIfPreference 3; MnIfPreference 4; }\nInterface "a" { MnIfPreference 7; }\n'
    assert mc.interface_preferences(_conf(text)) == {"a": 4}
    assert mc.interface_preferences(_conf("NodeConfig MN;\n")) == {}


def test_node_config_defaults_to_cn_and_last_wins() -> None:
    assert mc.node_config(_conf("")) == "CN"
    assert mc.node_config(_conf("DebugLevel 1;\n")) == "CN"
    assert mc.node_config(_conf(MINIMAL_MN)) == "MN"
    assert mc.node_config(_conf("NodeConfig MN;\nNodeConfig HA;\n")) == "HA"
    assert mc.use_all_interfaces(_conf(COMMENTED)) is True
    assert mc.use_all_interfaces(_conf(MINIMAL_MN)) is False


# --------------------------------------------------------------------------- includes


def _read(path: str) -> str:
    return Path(path).read_text()


def _glob(pattern: str) -> list[str]:
    return globmod.glob(pattern)


def test_load_follows_relative_glob_includes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    etc = tmp_path / "etc"
    (etc / "mip6d.d").mkdir(parents=True)
    main = etc / "mip6d.conf"
    main.write_text(
        "NodeConfig MN;\n"
        "# interfaces and home links live in mip6d.d\n"
        'include "mip6d.d/*.conf"\n'
        'Interface "wlan0" { MnIfPreference 2; }\n'
        'include "nothing-*.conf"\n'
    )
    (etc / "mip6d.d" / "20-home.conf").write_text(
        "# second file\n"
        'MnHomeLink "eth0" {\n'
        "    HomeAgentAddress 2001:db8:1::1;\n"
        "    HomeAddress 2001:db8:1::100/64;\n"
        "}\n"
    )
    (etc / "mip6d.d" / "10-ifaces.conf").write_text('Interface "eth1" { MnIfPreference 1; }\n')
    (etc / "mip6d.d" / "ignored.txt").write_text("this is not { valid")
    # Relative to the including file, not to the working directory.
    monkeypatch.chdir(tmp_path)

    loaded = mc.load(str(main), _read, _glob)
    d = str(etc / "mip6d.d")
    assert [p for p, _ in loaded.files] == [str(main), f"{d}/10-ifaces.conf", f"{d}/20-home.conf"]
    assert all(mc.render(c) == Path(p).read_text() for p, c in loaded.files)
    assert mc.interface_preferences(loaded) == {"eth1": 1, "wlan0": 2}
    assert mc.home_addresses(loaded) == [
        HomeAddress("2001:db8:1::100", 64, "2001:db8:1::1", "eth0", "2001:db8:1::/64", f"{d}/20-home.conf:2"),
    ]
    assert mc.node_config(loaded) == "MN"
    assert loaded.warnings == (f"{main}:5: no file matches include pattern 'nothing-*.conf'",)
    assert mc.interface_file(loaded, "eth1") == f"{d}/10-ifaces.conf"
    assert mc.interface_file(loaded, "wlan0") == str(main)
    assert mc.interface_file(loaded, "usb0") == str(main)
    # A bare ConfFile does not follow includes.
    assert mc.interface_preferences(loaded.main) == {"wlan0": 2}


def test_include_inside_a_block_is_parsed_as_block_contents(tmp_path: Path) -> None:
    (tmp_path / "hoa.conf").write_text("HomeAddress 2001:db8:7::100/64;\nHomeAgentAddress 2001:db8:7::1;\n")
    main = tmp_path / "mip6d.conf"
    main.write_text('MnHomeLink "eth0" {\n    include "hoa.conf"\n}\n')
    loaded = mc.load(str(main), _read, _glob)
    assert mc.home_addresses(loaded) == [
        HomeAddress("2001:db8:7::100", 64, "2001:db8:7::1", "eth0", "2001:db8:7::/64", f"{main}:1"),
    ]
    # The same file at top level is an error: HomeAddress belongs in a block.
    main.write_text('include "hoa.conf"\n')
    with pytest.raises(ConfError) as exc:
        mc.load(str(main), _read, _glob)
    assert (exc.value.path, exc.value.line) == (str(tmp_path / "hoa.conf"), 1)


def test_include_nesting_is_limited_to_five_levels(tmp_path: Path) -> None:
    for i in range(6):
        (tmp_path / f"l{i}.conf").write_text(f'DebugLevel {i};\ninclude "l{i + 1}.conf"\n')
    (tmp_path / "l6.conf").write_text("NodeConfig HA;\n")
    with pytest.raises(ConfError) as exc:
        mc.load(str(tmp_path / "l0.conf"), _read, _glob)
    assert (exc.value.path, exc.value.line) == (str(tmp_path / "l5.conf"), 2)
    assert "5 levels" in exc.value.message
    # Five levels are fine.
    (tmp_path / "l5.conf").write_text("NodeConfig HA;\n")
    loaded = mc.load(str(tmp_path / "l0.conf"), _read, _glob)
    assert len(loaded.files) == 6 and mc.node_config(loaded) == "HA"


def test_include_loop_raises_conf_error(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text('include "b.conf"\n')
    (tmp_path / "b.conf").write_text('NodeConfig MN;\ninclude "a.conf"\n')
    with pytest.raises(ConfError, match="include loop") as exc:
        mc.load(str(tmp_path / "a.conf"), _read, _glob)
    assert exc.value.path == str(tmp_path / "b.conf") and exc.value.line == 2


def test_wide_include_tree_is_walked_once_per_file(tmp_path: Path) -> None:
    """20 files per level, 5 levels deep: every file includes every file of the next level."""
    reads: list[str] = []

    def counting_read(p: str) -> str:
        reads.append(p)
        return _read(p)

    for level in range(5):
        for i in range(20):
            body = f'include "l{level + 1}-*.conf"\n' if level < 4 else "DebugLevel 0;\n"
            (tmp_path / f"l{level}-{i:02d}.conf").write_text(body)
    (tmp_path / "main.conf").write_text('NodeConfig MN;\ninclude "l0-*.conf"\n')
    globs: list[str] = []

    def counting_glob(pattern: str) -> list[str]:
        globs.append(pattern)
        return _glob(pattern)

    loaded = mc.load(str(tmp_path / "main.conf"), counting_read, counting_glob)
    assert len(loaded.files) == 101 and len(reads) == 101
    assert len(globs) <= 1 + 4 * 20  # one glob per include statement, not per path through the tree


def test_unreadable_include_is_a_conf_error_but_missing_main_file_is_oserror(tmp_path: Path) -> None:
    def glob_dangling(pattern: str) -> list[str]:
        return [str(tmp_path / "gone.conf")]

    main = tmp_path / "mip6d.conf"
    main.write_text('NodeConfig MN;\n\ninclude "gone.conf"\n')
    with pytest.raises(ConfError) as exc:
        mc.load(str(main), _read, glob_dangling)
    assert (exc.value.path, exc.value.line) == (str(main), 3)
    assert "cannot read included file" in str(exc.value)
    with pytest.raises(FileNotFoundError):
        mc.load(str(tmp_path / "absent.conf"), _read, _glob)


def test_load_uses_injected_functions_only() -> None:
    files = {"/cfg/main.conf": 'include "/abs/*.conf"\n', "/abs/x.conf": "NodeConfig HA;\n"}
    patterns: list[str] = []

    def fake_glob(pattern: str) -> list[str]:
        patterns.append(pattern)
        return ["/abs/x.conf"]

    loaded = mc.load("/cfg/main.conf", files.__getitem__, fake_glob)
    assert patterns == ["/abs/*.conf"]
    assert mc.node_config(loaded) == "HA"


# --------------------------------------------------------------------------- edits


def _changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(True), after.splitlines(True), n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_set_interface_preference_changes_exactly_one_token() -> None:
    conf = _conf(COMMENTED)
    new = mc.set_interface_preference(conf, "eth1", 7)
    before, after = mc.render(conf), mc.render(new)
    assert _changed_lines(before, after) == ["-    MnIfPreference 1;   # best\n", "+    MnIfPreference 7;   # best\n"]
    old_tokens = [t.text for t in conf.tokens]
    new_tokens = [t.text for t in new.tokens]
    assert len(old_tokens) == len(new_tokens)
    assert [(a, b) for a, b in zip(old_tokens, new_tokens) if a != b] == [("1", "7")]
    assert mc.interface_preferences(new)["eth1"] == 7
    assert mc.interface_preferences(new)["wlan0"] == 10


def test_set_interface_preference_same_value_keeps_file() -> None:
    conf = _conf(MINIMAL_MN)
    assert mc.render(mc.set_interface_preference(conf, "wlan0", 2)) == MINIMAL_MN


def test_set_interface_preference_adds_to_single_line_block() -> None:
    conf = _conf(COMMENTED)
    new = mc.set_interface_preference(conf, "wlan0", 3)
    assert _changed_lines(mc.render(conf), mc.render(new)) == [
        '-Interface "wlan0" { Tunnel disabled; }   # no preference: default 10\n',
        '+Interface "wlan0" { Tunnel disabled; MnIfPreference 3; }   # no preference: default 10\n',
    ]
    assert mc.interface_preferences(new) == {"eth1": 1, "wlan0": 3, "wwan0": 10}


def test_set_interface_preference_adds_to_multi_line_block() -> None:
    text = 'NodeConfig MN;\nInterface "eth1" {\n\tIfType MN;\n}\n'
    new = mc.set_interface_preference(_conf(text), "eth1", 4)
    assert mc.render(new) == 'NodeConfig MN;\nInterface "eth1" {\n\tIfType MN;\n\tMnIfPreference 4;\n}\n'


def test_set_interface_preference_turns_bare_statement_into_block() -> None:
    conf = _conf(COMMENTED)
    new = mc.set_interface_preference(conf, "wwan0", 0)
    assert _changed_lines(mc.render(conf), mc.render(new)) == [
        '-Interface "wwan0";\n',
        '+Interface "wwan0" { MnIfPreference 0; }\n',
    ]


def test_set_interface_preference_appends_after_last_interface() -> None:
    conf = _conf(MINIMAL_MN)
    new = mc.set_interface_preference(conf, "usb0", 5)
    lines = mc.render(new).splitlines()
    assert lines[8:11] == [
        'Interface "wlan0" { MnIfPreference 2; }',
        'Interface "usb0" { MnIfPreference 5; }',
        'MnHomeLink "eth0" { HomeAgentAddress 2001:db8:1::1; HomeAddress 2001:db8:1::100/64; }',
    ]
    assert _changed_lines(MINIMAL_MN, mc.render(new)) == ['+Interface "usb0" { MnIfPreference 5; }\n']
    assert mc.interface_preferences(new) == {"eth1": 1, "wlan0": 2, "usb0": 5}


def test_set_interface_preference_keeps_crlf_line_endings() -> None:
    text = 'NodeConfig MN;\r\nInterface "eth1" {\r\n  IfType MN;\r\n}\r\n'
    conf = _conf(text)
    added = mc.set_interface_preference(conf, "eth1", 2)
    assert mc.render(added) == 'NodeConfig MN;\r\nInterface "eth1" {\r\n  IfType MN;\r\n  MnIfPreference 2;\r\n}\r\n'
    appended = mc.set_interface_preference(conf, "wlan0", 3)
    assert mc.render(appended) == text + 'Interface "wlan0" { MnIfPreference 3; }\r\n'


def test_set_interface_preference_appends_at_end_without_interfaces() -> None:
    new = mc.set_interface_preference(_conf("NodeConfig MN;"), "eth1", 1)
    assert mc.render(new) == 'NodeConfig MN;\nInterface "eth1" { MnIfPreference 1; }\n'


def test_set_interface_preference_stays_outside_a_block_starting_on_the_same_line() -> None:
    text = 'Interface "a"; MnHomeLink "eth0" {\n HomeAddress 2001:db8::1/64;\n}\n'
    new = mc.set_interface_preference(_conf(text), "b", 6)
    assert mc.render(new) == 'Interface "a"; Interface "b" { MnIfPreference 6; } MnHomeLink "eth0" {\n HomeAddress 2001:db8::1/64;\n}\n'
    assert mc.interface_preferences(new) == {"a": 10, "b": 6}


@pytest.mark.parametrize("pref", [-1, 11, True, 1.0, "1"])
def test_set_interface_preference_validates_range(pref: object) -> None:
    with pytest.raises(ValueError, match="0..10"):
        mc.set_interface_preference(_conf(MINIMAL_MN), "eth1", pref)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", 'et"h', "a b", "x#y"])
def test_set_interface_preference_validates_name(name: str) -> None:
    with pytest.raises(ValueError, match="interface name"):
        mc.set_interface_preference(_conf(MINIMAL_MN), name, 1)


def test_replace_tokens_rejects_foreign_tokens_and_invalid_results() -> None:
    conf = _conf(MINIMAL_MN)
    other = _conf(MINIMAL_MN + "\n")
    with pytest.raises(ValueError, match="not from this file"):
        mc.replace_tokens(conf, {other.tokens[-1]: "x"})
    pref = conf.find("Interface")[0].block[0].args[0]  # type: ignore[index]
    with pytest.raises(ConfError, match="out of range"):
        mc.replace_tokens(conf, {pref: "12"})


# --------------------------------------------------------------------------- errors

MALFORMED = [
    ('NodeConfig MN;\nDebugLogFile "/tmp/x;\n', 2, "unterminated string"),
    ('DebugLogFile "abc', 1, "unterminated string"),
    ('NodeConfig MN;\nInterface "eth1" { MnIfPreference 1; }\n}\n', 3, "unbalanced '}'"),
    ('NodeConfig MN;\nInterface "eth1" {\n  MnIfPreference 1;\n', 2, "never closed"),
    ("NodeConfig MN\nDebugLevel 1;\n", 1, "missing ';' after 'MN'"),
    ("NodeConfig MN;\nDebugLevel 1", 2, "missing ';' after '1'"),
    ('Interface "eth1" {\n  MnIfPreference 1\n}\n', 2, "missing ';'"),
    ('MnHomeLink "eth0" {\n  HomeAddress 2001:db8:1::100/64;\n  Frobnicate 1;\n}\n', 3, "unknown token 'Frobnicate' in MnHomeLink"),
    ('MnHomeLink "eth0" {\n  HomeAgentAddress 2001:db8:1::g;\n  HomeAddress 2001:db8:1::100/64;\n}\n', 2, "invalid IPv6 address"),
    ('MnHomeLink "eth0" { HomeAddress 2001:db8:1::100:/64; }', 1, "invalid IPv6 address"),
    ('MnHomeLink "eth0" { HomeAddress 10.0.0.1/24; }', 1, "invalid IPv6 address"),
    ('MnHomeLink "eth0" {\n  HomeAddress 2001:db8:1::100/129;\n}', 2, "out of range (0..128)"),
    ('MnHomeLink "eth0" {\n  HomeAddress 2001:db8:1::100;\n}', 2, "missing '/' and a prefix length"),
    ('MnHomeLink "eth0" {\n  HomeAgentAddress 2001:db8:1::1;\n}', 1, "without HomeAddress"),
    ('MnHomeLink "eth0";', 1, "needs a { ... } block"),
    ('MnHomeLink "eth0" { HomeAddress 2001:db8:1::100/64 (2001:db8:5::/48; }', 1, "missing ',' or ')'"),
    ('\n\nInterface "eth1" { MnIfPreference 11; }\n', 3, "out of range (0..10)"),
    ('Interface "eth1" { MnIfPreference -1; }', 1, "expected an interface preference"),
    ('Interface "eth1" { }', 1, "empty Interface block"),
    ('Interface eth1;', 1, "expected a quoted string"),
    ("InterfaceInitialInitDelay 2;", 1, "decimal number with a dot"),
    ("DoRouteOptimizationCN maybe;", 1, "expected a boolean"),
    ("NodeConfig mn;", 1, "expected CN, HA or MN"),
    ("MnMaxCnBindingLife 421;", 1, "out of range (0..420)"),
    ("DebugLevel 99999999999999999999;", 1, "too large"),
    ("NodeConfig MN;;", 1, "empty statement"),
    ('include "x.conf";\n', 1, "include takes no ';'"),
    ("include x.conf\n", 1, "include needs a quoted file name"),
    ("HomeAddress 2001:db8:1::100/64;\n", 1, "only valid inside"),
    ("DebugLevel 1 { }\n", 1, "takes no { ... } block"),
    ('"eth0";\n', 1, "where an option name was expected"),
    ("a {" * 10 + "}" * 10, 1, "nested more than"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), MALFORMED)
def test_malformed_input_raises_conf_error_with_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ConfError) as exc:
        mc.parse(text, "/etc/mip6d.conf")
    err = exc.value
    assert isinstance(err, ValueError)
    assert (err.path, err.line) == ("/etc/mip6d.conf", line), str(err)
    assert fragment in err.message
    assert str(err) == f"/etc/mip6d.conf:{line}: {err.message}"
    assert len(str(err).splitlines()) == 1


def test_unknown_top_level_options_are_not_errors() -> None:
    text = 'LinkName "x";\nVTHostname "localhost";\nSomething 1.2.3 x-y { whatever; }\n'
    conf = mc.parse(text)
    assert [s.name for s in conf.statements] == ["LinkName", "VTHostname", "Something"]
    assert mc.render(conf) == text


# --------------------------------------------------------------------------- properties

_ALPHABET = st.sampled_from(
    list(' \t\n\r#";{}()/,=:.') + ["a", "0", "9", "f", "\u2028", "\x0b", "é"]
    + ["NodeConfig", "MN", "Interface", "MnIfPreference", "MnHomeLink", "HomeAddress", "HomeAgentAddress",
       "HomePrefix", "include", "2001:db8::1", "::", "64", "1.0", "enabled", '"eth0"', "IPsecPolicySet",
       "CnBindingPolicySet", "IPsecPolicy", "UseESP"]
)  # fmt: skip


def _parse_or_conf_error(text: str) -> None:
    try:
        conf = mc.parse(text, "f.conf")
    except ConfError as e:
        assert e.path == "f.conf" and e.line >= 1
        assert e.line <= text.count("\n") + 1
        assert len(str(e).splitlines()) == 1
        return
    assert mc.render(conf) == text
    # Queries on whatever parsed never fail either.
    mc.home_addresses(conf)
    mc.interface_preferences(conf)
    mc.node_config(conf)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_random_token_soup_only_raises_conf_error(text: str) -> None:
    _parse_or_conf_error(text)


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_random_text_only_raises_conf_error(text: str) -> None:
    _parse_or_conf_error(text)


@pytest.mark.parametrize("source", [MINIMAL_MN, COMMENTED])
def test_every_truncation_of_a_valid_file_parses_or_raises_conf_error(source: str) -> None:
    for n in range(len(source) + 1):
        _parse_or_conf_error(source[:n])


@settings(max_examples=300)
@given(st.data())
def test_random_edits_of_a_valid_file_parse_or_raise_conf_error(data: st.DataObject) -> None:
    text = COMMENTED
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 5))
        ins = data.draw(st.lists(_ALPHABET, max_size=3).map("".join))
        text = text[:pos] + ins + text[pos + cut :]
    _parse_or_conf_error(text)


@settings(max_examples=100)
@given(name=st.sampled_from(["eth1", "wlan0", "wwan0", "usb0"]), pref=st.integers(0, 10))
def test_set_interface_preference_only_touches_that_interface(name: str, pref: int) -> None:
    conf = _conf(COMMENTED)
    new = mc.set_interface_preference(conf, name, pref)
    before, after = mc.interface_preferences(conf), mc.interface_preferences(new)
    assert after[name] == pref
    assert {k: v for k, v in after.items() if k != name} == {k: v for k, v in before.items() if k != name}
    # Only origins (line numbers) may move, when a line is added.
    def strip(hoas: list[HomeAddress]) -> list[HomeAddress]:
        return [dataclasses.replace(h, origin="") for h in hoas]

    assert strip(mc.home_addresses(new)) == strip(mc.home_addresses(conf))
    changed = _changed_lines(mc.render(conf), mc.render(new))
    assert len(changed) <= 2


# --------------------------------------------------------------------------- issue 13: errors without file text (14a)

_SECRET = st.text("QJXZ", min_size=4, max_size=4).map(lambda s: "QJXZ" + s)


def _secret_error(text: str, secret: str) -> ConfError | None:
    try:
        mc.parse(text, "f.conf")
    except ConfError as e:
        assert secret[:4] not in e.redacted, e.redacted
        assert e.redacted.startswith(f"f.conf:{e.line}: ")
        assert "\x00" not in str(e) and "\x00" not in e.redacted
        return e
    return None


@settings(max_examples=400)
@given(data=st.data(), secret=_SECRET)
def test_redacted_error_never_holds_file_text(data: st.DataObject, secret: str) -> None:
    """A parse error's ``redacted`` line names file and line but no text of the file, wherever
    the text sits (a word, a number, an address, a statement name, a string)."""
    base = data.draw(st.sampled_from([MINIMAL_MN, COMMENTED, "CnBindingPolicySet {\n  2001:db8::1 enabled;\n}\n"]))
    text = base
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 3))
        ins = data.draw(st.lists(st.one_of(_ALPHABET, st.just(secret), st.just("2001:db8::" + secret[4:].lower()),
                                           st.just("9" + secret)), min_size=1, max_size=3).map("".join))
        text = text[:pos] + ins + text[pos + cut:]
    _secret_error(text, secret)


@pytest.mark.parametrize("text,quoted", [
    ("NodeConfig QJXZQQQQ;\n", "got 'QJXZQQQQ'"),
    ("QJXZQQQQ\n", "after 'QJXZQQQQ'"),
    ('Interface "e" { MnIfPreference 99999; }\n', "99999 is out of range"),
    ('MnHomeLink "e" { QJXZQQQQ 1; }\n', "'QJXZQQQQ'"),
    ("CnBindingPolicySet {\n  2001:db8::1 QJXZQQQQ;\n}\n", "2001:db8::1: expected a boolean"),
    ("CnBindingPolicySet {\n  2001:db8::1 2001:db8::2\n}\n", "2001:db8::2"),
])
def test_message_quotes_the_text_redacted_does_not(text: str, quoted: str) -> None:
    e = _secret_error(text, "QJXZQQQQ")
    assert e is not None
    assert quoted in str(e)  # the GUI, which may read the file, still shows the offending text
    hidden = "99999" if "99999" in quoted else "2001:db8::" if "2001" in quoted else "QJXZ"
    assert hidden not in e.redacted and mc.REDACTED in e.redacted


# --------------------------------------------------------------------------- issue 13: many preferences at once (14d)

_NAMES = ["eth0", "eth1", "wlan0", "wwan0", "usb0", "en1", "br-x"]
_PIECES = [
    'Interface "{n}";',
    'Interface "{n}" {{ MnIfPreference {k}; }}',
    'Interface "{n}" {{\n    IfType MN;\n}}',
    'Interface "{n}" {{\n\tMnIfPreference {k};   # keep\n  }}',
    'Interface "{n}" {{ Tunnel enabled; }}',
    'NodeConfig MN;',
    'MnHomeLink "{n}" {{\n  HomeAddress 2001:db8::1/64;\n}}',
    '# a comment with Interface "{n}";\n',
]


@st.composite
def _conf_with_interfaces(draw) -> str:
    pieces = draw(st.lists(st.sampled_from(_PIECES), max_size=7))
    seps = st.sampled_from(["\n", " ", "\n\n", "  \n\t"])
    text = ""
    for p in pieces:
        text += p.format(n=draw(st.sampled_from(_NAMES)), k=draw(st.integers(0, 10)))
        text += draw(seps)
    if draw(st.booleans()):
        text = text.rstrip(" \t\n")
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    return text


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(text=_conf_with_interfaces(),
       prefs=st.dictionaries(st.sampled_from(_NAMES + ["new0", "new1", "new2"]), st.integers(0, 10), max_size=10))
def test_set_interface_preferences_is_one_parse_and_equals_one_by_one(text: str, prefs: dict[str, int]) -> None:
    """All edits in one splice and one re-parse, with the result of applying them one at a time."""
    conf = mc.parse(text, "/etc/mip6d.conf")
    one_by_one = conf
    for name, pref in prefs.items():
        one_by_one = mc.set_interface_preference(one_by_one, name, pref)
    calls = []
    real = mc.parse

    def counting(*a, **kw):
        calls.append(a[1] if len(a) > 1 else kw.get("path"))
        return real(*a, **kw)

    mc.parse = counting
    try:
        batch = mc.set_interface_preferences(conf, prefs)
    finally:
        mc.parse = real
    assert len(calls) <= 1
    assert mc.render(batch) == mc.render(one_by_one)
    after = mc.interface_preferences(batch)
    assert after == {**mc.interface_preferences(conf), **prefs}


def test_set_interface_preferences_many_names_in_order() -> None:
    conf = mc.parse(MINIMAL_MN, "/etc/mip6d.conf")
    prefs = {"eth1": 2, "wlan0": 1, **{f"x{i}": 0 for i in range(64)}}
    new = mc.set_interface_preferences(conf, prefs)
    text = mc.render(new)
    assert mc.interface_preferences(new) == prefs
    added = [line for line in text.splitlines() if line.startswith('Interface "x')]
    assert added == [f'Interface "x{i}" {{ MnIfPreference 0; }}' for i in range(64)]
    assert text.index('Interface "wlan0" { MnIfPreference 1; }') < text.index('Interface "x0"') < text.index("MnHomeLink")
    with pytest.raises(ValueError):
        mc.set_interface_preferences(conf, {"eth1": 1, "bad name": 2})
    with pytest.raises(ValueError):
        mc.set_interface_preferences(conf, {"eth1": 11})
    assert mc.set_interface_preferences(conf, {}) is conf


def test_interface_files_one_pass(tmp_path: Path) -> None:
    (tmp_path / "i.conf").write_text('Interface "eth1" { MnIfPreference 2; }\n')
    main = tmp_path / "mip6d.conf"
    main.write_text(f'include "{tmp_path}/i.conf"\nInterface "eth1";\nInterface "wlan0";\n')
    loaded = mc.load(str(main), lambda p: Path(p).read_text(), globmod.glob)
    assert mc.interface_files(loaded) == {"eth1": str(tmp_path / "i.conf"), "wlan0": str(main)}
    # an already parsed main file is not read again
    reread = mc.load(str(main), lambda p: (_ for _ in ()).throw(AssertionError(p)) if p == str(main)
                     else Path(p).read_text(), globmod.glob, main=loaded.main)
    assert mc.interface_files(reread) == mc.interface_files(loaded)


# --------------------------------------------------------------------------- issue 13 item 8: ties and gaps


def _clean(prefs: dict[str, int]) -> bool:
    used = sorted(v for v in prefs.values() if v >= 1)
    return used == list(range(1, len(used) + 1))


@settings(max_examples=500)
@given(st.dictionaries(st.text("abcdefgh0123", min_size=1, max_size=5), st.integers(0, 10), max_size=14))
def test_preference_order_problem_refuses_exactly_ties_and_gaps(prefs: dict[str, int]) -> None:
    problem = mc.preference_order_problem(prefs)
    assert (problem is None) == _clean(prefs)
    if problem is None:
        return
    assert len(problem.splitlines()) == 1 and ("0 = unused" in problem or "set the others to 0" in problem)
    used = [v for v in prefs.values() if v >= 1]
    if len(used) <= mc.MAX_PREFERENCE:
        for value in set(used):
            tied = sorted(n for n, v in prefs.items() if v == value)
            if 1 < len(tied) <= 6:
                assert all(f'"{n}"' in problem for n in tied) and f"preference {value}" in problem
        if any(v not in used for v in range(1, len(used) + 1)):
            assert "no interface has preference" in problem


@settings(max_examples=200)
@given(st.data())
def test_preference_order_problem_accepts_any_clean_order(data: st.DataObject) -> None:
    names = data.draw(st.lists(st.text("abcdefgh0123", min_size=1, max_size=5), unique=True, max_size=16))
    used = data.draw(st.integers(0, min(len(names), mc.MAX_PREFERENCE)))
    ranks = data.draw(st.permutations(list(range(1, used + 1))))
    prefs = dict(zip(names, [*ranks, *[0] * (len(names) - used)]))
    assert mc.preference_order_problem(prefs) is None


@pytest.mark.parametrize("prefs,words", [
    ({"eth1": 2, "wlan0": 2}, ['"eth1" and "wlan0" both have preference 2', "no interface has preference 1"]),
    ({"eth1": 1, "wlan0": 3}, ['no interface has preference 2 ("wlan0" has 3)', "1 to 2"]),
    ({"eth1": 2}, ["give the interface in use preference 1"]),
    ({"a": 11}, ["outside 0..10"]),
    ({"a": True}, ["outside 0..10"]),
    ({f"e{i}": i % 10 + 1 for i in range(11)}, ["11 interfaces are in use", "set the others to 0"]),
])
def test_preference_order_problem_messages(prefs: dict[str, int], words: list[str]) -> None:
    problem = mc.preference_order_problem(prefs)
    assert problem is not None
    for w in words:
        assert w in problem, problem
