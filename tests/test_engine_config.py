"""Engine configuration files (mhgui/engine/config.py): mn.toml, ha.toml, key files."""

from __future__ import annotations

import ipaddress
import os
import re
import string
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mhgui.engine import config as ec

MN_EXAMPLE = """\
[node]
identity = "mn1@example.org"
spi = 256
key_file = "{key}"
[home_agent]
addresses = ["2001:db8:f0::10", "203.0.113.10"]
address = "2001:db8:10::1"
port = 4191
[[home_address]]
address = "2001:db8:10::42/64"
preference = ["up0", "up1"]
backup = ["up2"]
never = []
default_route = true
[probe]
interval_ms = 250
misses = 3
metered_interval_ms = 5000
keepalive_s = 20
[tunnel]
name = "mhmn0"
table = 4191
mtu = 0
lifetime = 600
"""

HA_EXAMPLE = """\
[home_agent]
listen = ["::"]
port = 4191
address = "2001:db8:10::1"
home_prefix = "2001:db8:10::/64"
tun = "mhha0"
max_lifetime = 600
skew = 7
state_dir = "/var/lib/mhgui-ha"
home_link = ""
log_rate_s = 60
[[node]]
identity = "mn1@example.org"
home_addresses = ["2001:db8:10::42"]
[[node.key]]
spi = 256
file = "{key1}"
[[node.key]]
spi = 257
file = "{key2}"
[[node]]
identity = "mn2@example.org"
home_addresses = ["2001:db8:10::43", "2001:db8:10::44"]
[[node.key]]
spi = 300
file = "{key3}"
"""


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    out = {}
    for i in (1, 2, 3):
        p = tmp_path / "keys" / f"mn{i}.key"
        ec.write_key_file(str(p), bytes([i]) * 32)
        out[f"key{i}"] = str(p)
    return out


def _write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _mn(tmp_path: Path, text: str | None = None) -> str:
    return _write(tmp_path, "mn.toml", text if text is not None else MN_EXAMPLE.format(key="/etc/mhgui/keys/mn1.key"))


def _ha(tmp_path: Path, keys: dict[str, str], text: str = HA_EXAMPLE) -> str:
    return _write(tmp_path, "ha.toml", text.format(**keys))


# ---------------------------------------------------------------------------------------------- mn.toml
def test_mn_example_loads(tmp_path):
    cfg = ec.load_mn_config(_mn(tmp_path))
    assert cfg.identity == "mn1@example.org" and cfg.spi == 256 and cfg.key_file == "/etc/mhgui/keys/mn1.key"
    assert cfg.home_agent == ec.HomeAgentRef(("2001:db8:f0::10", "203.0.113.10"), "2001:db8:10::1", 4191)
    assert cfg.home_addresses == (ec.HomeAddressConfig("2001:db8:10::42", 64, ("up0", "up1"), ("up2",), (), True),)
    assert cfg.probe == ec.ProbeConfig(250, 3, 5000, 20)
    assert cfg.tunnel == ec.TunnelConfig("mhmn0", 4191, 0, 600)


def test_mn_minimal_uses_defaults(tmp_path):
    text = ('[node]\nidentity = "a"\nspi = 4000000000\nkey_file = "/k"\n'
            '[home_agent]\naddresses = ["203.0.113.1"]\naddress = "2001:db8::1"\n'
            '[[home_address]]\naddress = "2001:DB8:0:0::42/48"\n')
    cfg = ec.load_mn_config(_mn(tmp_path, text))
    assert cfg.probe == ec.ProbeConfig() and cfg.tunnel == ec.TunnelConfig() and cfg.home_agent.port == 4191
    assert cfg.home_addresses[0] == ec.HomeAddressConfig("2001:db8::42", 48)


MN_INVALID = [
    # (replace this, with this, the key the message must name, a word of the reason)
    ('identity = "mn1@example.org"', 'identity = ""', "node.identity", "NAI"),
    ('identity = "mn1@example.org"', 'identity = "mn 1"', "node.identity", "NAI"),
    ('identity = "mn1@example.org"', f'identity = "{"a" * 254}"', "node.identity", "253"),
    ("spi = 256", "spi = 255", "node.spi", "256"),
    ("spi = 256", "spi = 4294967296", "node.spi", "4294967295"),
    ("spi = 256", 'spi = "256"', "node.spi", "integer"),
    ("spi = 256", "spi = true", "node.spi", "integer"),
    ('key_file = "/etc/mhgui/keys/mn1.key"', 'key_file = "keys/mn1.key"', "node.key_file", "absolute"),
    ('addresses = ["2001:db8:f0::10", "203.0.113.10"]', "addresses = []", "home_agent.addresses", "at least"),
    ('addresses = ["2001:db8:f0::10", "203.0.113.10"]', 'addresses = ["ha.example.org"]',
     "home_agent.addresses[0]", "IP address"),
    ('addresses = ["2001:db8:f0::10", "203.0.113.10"]', 'addresses = ["2001:db8::1", "2001:db8::2"]',
     "home_agent.addresses[1]", "one per family"),
    ('addresses = ["2001:db8:f0::10", "203.0.113.10"]', 'addresses = ["ff02::1"]', "home_agent.addresses[0]",
     "unicast"),
    ('address = "2001:db8:10::1"', 'address = "203.0.113.1"', "home_agent.address", "IPv6"),
    ("port = 4191", "port = 0", "home_agent.port", "1..65535"),
    ('address = "2001:db8:10::42/64"', 'address = "2001:db8:10::42"', "home_address[0].address", "prefix length"),
    ('address = "2001:db8:10::42/64"', 'address = "fe80::42/64"', "home_address[0].address", "unicast"),
    ('address = "2001:db8:10::42/64"', 'address = "ff0e::42/64"', "home_address[0].address", "unicast"),
    ('address = "2001:db8:10::42/64"', 'address = "::ffff:1.2.3.4/120"', "home_address[0].address", "global"),
    ('address = "2001:db8:10::42/64"', 'address = "2001:db8:10::42/8"', "home_address[0].address", "16..128"),
    ('address = "2001:db8:10::42/64"', 'address = "2001:db8:10::/64"', "home_address[0].address", "anycast"),
    ('address = "2001:db8:10::42/64"', 'address = "2001:db8:10::42/200"', "home_address[0].address", "IPv6"),
    ('never = []', 'never = ["up1"]', "home_address[0].never", "also in"),
    ('never = []', 'never = ["up2"]', "home_address[0].never", "also in"),
    ('backup = ["up2"]', 'backup = ["up0"]', "home_address[0].backup", "also in"),
    ('preference = ["up0", "up1"]', 'preference = ["up0", "up0"]', "home_address[0].preference[1]", "twice"),
    ('preference = ["up0", "up1"]', 'preference = ["up0", "eth0:1"]', "home_address[0].preference[1]",
     "interface"),
    ('preference = ["up0", "up1"]', 'preference = ["a/b"]', "home_address[0].preference[0]", "interface"),
    ('preference = ["up0", "up1"]', 'preference = ["sixteen-chars-xx"]', "home_address[0].preference[0]",
     "interface"),
    ('preference = ["up0", "up1"]', 'preference = ["up 0"]', "home_address[0].preference[0]", "interface"),
    ('preference = ["up0", "up1"]', 'preference = [""]', "home_address[0].preference[0]", "interface"),
    ('preference = ["up0", "up1"]', 'preference = "up0"', "home_address[0].preference", "list"),
    ('preference = ["up0", "up1"]', 'preference = [1]', "home_address[0].preference[0]", "string"),
    ("default_route = true", "default_route = 1", "home_address[0].default_route", "true or false"),
    ("interval_ms = 250", "interval_ms = 49", "probe.interval_ms", "50..60000"),
    ("misses = 3", "misses = 21", "probe.misses", "1..20"),
    ("keepalive_s = 20", "keepalive_s = 30", "probe.keepalive_s", "5..25"),
    ("keepalive_s = 20", "keepalive_s = 20.5", "probe.keepalive_s", "integer"),
    ('name = "mhmn0"', 'name = "mh/mn0"', "tunnel.name", "interface"),
    ("table = 4191", "table = 254", "tunnel.table", "main"),
    ("table = 4191", "table = 0", "tunnel.table", "1..2147483647"),
    ("table = 4191", "table = 2147483648", "tunnel.table", "1..2147483647"),
    ("mtu = 0", "mtu = 1000", "tunnel.mtu", "1280"),
    ("lifetime = 600", "lifetime = 3", "tunnel.lifetime", "4..262140"),
    ("lifetime = 600", "lifetime = 262141", "tunnel.lifetime", "4..262140"),
    # unknown keys and sections: misspellings are errors naming the key
    ("keepalive_s = 20", "keepalive = 20", "probe.keepalive", "keepalive_s"),
    ("default_route = true", "default_rout = true", "home_address[0].default_rout", "default_route"),
    ("[tunnel]", "[tunel]", "tunel", "unknown"),
    ("lifetime = 600", "lifetime = 600\nbogus = 1", "tunnel.bogus", "unknown key"),
    ("[node]", "[node]\nsecret = 'x'", "node.secret", "unknown key"),
    ("[[home_address]]", "[home_address]", "home_address", "array of tables"),
]


@pytest.mark.parametrize(("old", "new", "key", "why"), MN_INVALID)
def test_mn_invalid_names_the_key(tmp_path, old, new, key, why):
    text = MN_EXAMPLE.format(key="/etc/mhgui/keys/mn1.key")
    assert old in text
    path = _mn(tmp_path, text.replace(old, new, 1))
    with pytest.raises(ec.EngineConfigError) as e:
        ec.load_mn_config(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: {key}: "), msg
    assert why in msg, msg
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize(("cut", "key"), [("[node]", "node"), ("[home_agent]", "home_agent"),
                                          ("[[home_address]]", "home_address")])
def test_mn_missing_sections(tmp_path, cut, key):
    text = MN_EXAMPLE.format(key="/k")
    section = re.search(re.escape(cut) + r"\n(?:[a-z_]+ = .*\n)*", text).group(0)
    path = _mn(tmp_path, text.replace(section, ""))
    with pytest.raises(ec.EngineConfigError, match=rf"^{re.escape(path)}: {key}: missing"):
        ec.load_mn_config(path)


def test_mn_duplicate_home_address(tmp_path):
    text = MN_EXAMPLE.format(key="/k") + '[[home_address]]\naddress = "2001:db8:10:0::42/64"\n'
    with pytest.raises(ec.EngineConfigError, match=r"home_address\[1\]\.address: 2001:db8:10::42 is configured twice"):
        ec.load_mn_config(_mn(tmp_path, text))


def test_mn_unreadable_and_bad_toml(tmp_path):
    with pytest.raises(ec.EngineConfigError, match="cannot read"):
        ec.load_mn_config(str(tmp_path / "nope.toml"))
    path = _mn(tmp_path, "[node]\nidentity = \n")
    with pytest.raises(ec.EngineConfigError, match=r"not valid TOML.*line 2"):
        ec.load_mn_config(path)
    path = _write(tmp_path, "bin.toml", "")
    Path(path).write_bytes(b"\xff\xfe")
    with pytest.raises(ec.EngineConfigError, match="not valid TOML"):
        ec.load_mn_config(path)


def test_write_mn_config_round_trip_and_backup(tmp_path):
    path = _mn(tmp_path)
    original = Path(path).read_text()
    cfg = ec.load_mn_config(path)
    changed = ec.MnConfig(cfg.identity, 999, cfg.key_file, cfg.home_agent, cfg.home_addresses,
                          ec.ProbeConfig(100, 5, 1000, 10), cfg.tunnel)
    ec.write_mn_config(path, changed)
    assert ec.load_mn_config(path) == changed
    assert Path(path + ".bak").read_text() == original
    assert os.stat(path).st_mode & 0o777 == 0o644 and os.stat(path + ".bak").st_mode & 0o777 == 0o644
    ec.write_mn_config(path, cfg)
    assert ec.load_mn_config(path) == cfg and ec.load_mn_config(path + ".bak") == changed
    # a new file in a new directory: no backup
    fresh = str(tmp_path / "etc" / "mhgui" / "mn.toml")
    ec.write_mn_config(fresh, cfg)
    assert ec.load_mn_config(fresh) == cfg and not os.path.exists(fresh + ".bak")
    assert sorted(os.listdir(tmp_path / "etc" / "mhgui")) == ["mn.toml"]  # no temp files left


def test_write_mn_config_refuses_invalid(tmp_path):
    path = _mn(tmp_path)
    before = Path(path).read_text()
    cfg = ec.load_mn_config(path)
    bad = ec.MnConfig(cfg.identity, 7, cfg.key_file, cfg.home_agent, cfg.home_addresses)
    with pytest.raises(ec.EngineConfigError, match="node.spi"):
        ec.write_mn_config(path, bad)
    assert Path(path).read_text() == before and not os.path.exists(path + ".bak")


_NAMES = st.text(string.ascii_lowercase + string.digits + "-_.", min_size=1, max_size=15).filter(
    lambda n: n not in (".", ".."))


@st.composite
def _mn_configs(draw) -> ec.MnConfig:
    identity = draw(st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S")), min_size=1,
                            max_size=60))
    outer = []
    if draw(st.booleans()):
        outer.append(draw(st.ip_addresses(v=6, network="2001:db8::/32")).compressed)
    if not outer or draw(st.booleans()):
        outer.append(draw(st.ip_addresses(v=4, network="198.51.100.0/24")).compressed)
    hoas = []
    for i in range(draw(st.integers(1, 3))):
        plen = draw(st.integers(16, 128))
        addr = draw(st.ip_addresses(v=6, network=f"2001:db8:{i}::/48"))
        net = ipaddress.IPv6Network(f"{addr}/{plen}", strict=False)
        if plen < 127 and addr == net.network_address:
            addr += 1
        names = draw(st.lists(_NAMES, unique=True, max_size=7))
        a, b = sorted(draw(st.lists(st.integers(0, len(names)), min_size=2, max_size=2)))
        hoas.append(ec.HomeAddressConfig(addr.compressed, plen, tuple(names[:a]), tuple(names[a:b]),
                                         tuple(names[b:]), draw(st.booleans())))
    probe = ec.ProbeConfig(draw(st.integers(50, 60000)), draw(st.integers(1, 20)), draw(st.integers(50, 600000)),
                           draw(st.integers(5, 25)))
    table = draw(st.integers(1, 2**31 - 1).filter(lambda t: t not in (253, 254, 255)))
    tunnel = ec.TunnelConfig(draw(_NAMES), table, draw(st.sampled_from([0, 1280, 1500, 65535])),
                             draw(st.integers(4, 262140)), draw(st.booleans()))
    weights = tuple(sorted(draw(st.dictionaries(_NAMES, st.integers(1, 1000), max_size=4)).items()))
    return ec.MnConfig(identity, draw(st.integers(256, 2**32 - 1)), "/" + draw(st.text(min_size=0, max_size=30).filter(
        lambda s: "\0" not in s)), ec.HomeAgentRef(tuple(outer), "2001:db8:10::1", draw(st.integers(1, 65535))),
        tuple(hoas), probe, tunnel, weights)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_mn_configs())
def test_mn_toml_round_trip(tmp_path, cfg):
    text = ec.mn_config_to_toml(cfg)
    assert ec._parse_mn(tomllib.loads(text), "mn.toml") == cfg
    path = str(tmp_path / "rt" / "mn.toml")
    ec.write_mn_config(path, cfg)
    assert ec.load_mn_config(path) == cfg


# ---------------------------------------------------------------------------------------------- ha.toml
def test_ha_example_loads(tmp_path, keys):
    cfg = ec.load_ha_config(_ha(tmp_path, keys))
    assert cfg.listen == ("::",) and cfg.port == 4191 and cfg.address == "2001:db8:10::1"
    assert cfg.home_prefix == "2001:db8:10::/64" and cfg.tun == "mhha0" and cfg.max_lifetime == 600
    assert cfg.skew == 7.0 and cfg.state_dir == "/var/lib/mhgui-ha" and cfg.home_link == "" and cfg.log_rate_s == 60
    n1, n2 = cfg.nodes
    assert n1.identity == "mn1@example.org" and n1.home_addresses == ("2001:db8:10::42",)
    assert [(k.spi, k.key) for k in n1.keys] == [(256, bytes([1]) * 32), (257, bytes([2]) * 32)]
    assert n2.home_addresses == ("2001:db8:10::43", "2001:db8:10::44") and n2.keys[0].spi == 300
    assert "key=" not in repr(n1.keys[0])  # keys stay out of logs


HA_INVALID = [
    ('listen = ["::"]', "listen = []", "home_agent.listen", "at least"),
    ('listen = ["::"]', 'listen = ["any"]', "home_agent.listen[0]", "IP address"),
    ('home_prefix = "2001:db8:10::/64"', 'home_prefix = "2001:db8:10::1/64"', "home_agent.home_prefix", "host bits"),
    ('home_prefix = "2001:db8:10::/64"', 'home_prefix = "10.0.0.0/8"', "home_agent.home_prefix", "IPv6"),
    ('address = "2001:db8:10::1"', 'address = "2001:db8:11::1"', "home_agent.address", "inside"),
    ('tun = "mhha0"', 'tun = "a b"', "home_agent.tun", "interface"),
    ("max_lifetime = 600", "max_lifetime = 0", "home_agent.max_lifetime", "4..262140"),
    ("skew = 7", "skew = 0", "home_agent.skew", "300"),
    ("skew = 7", 'skew = "7"', "home_agent.skew", "number"),
    ('state_dir = "/var/lib/mhgui-ha"', 'state_dir = "var"', "home_agent.state_dir", "absolute"),
    ('home_link = ""', 'home_link = "eth0/1"', "home_agent.home_link", "interface"),
    ("log_rate_s = 60", "log_rate_s = 0", "home_agent.log_rate_s", "1..86400"),
    ("log_rate_s = 60", "log_rate = 60", "home_agent.log_rate", "log_rate_s"),
    ('identity = "mn2@example.org"', 'identity = "mn1@example.org"', "node[1].identity", "twice"),
    ('"2001:db8:10::43", ', '"2001:db8:10::42", ', "node[1].home_addresses[0]", "mn1@example.org"),
    ('"2001:db8:10::43", ', '"2001:db8:10::1", ', "node[1].home_addresses[0]", "home agent's own"),
    ('"2001:db8:10::43", ', '"2001:db8:11::43", ', "node[1].home_addresses[0]", "inside"),
    ('"2001:db8:10::43", ', '"2001:db8:10::43/64", ', "node[1].home_addresses[0]", "without a prefix"),
    ('"2001:db8:10::43", ', '"2001:db8:10::", ', "node[1].home_addresses[0]", "anycast"),
    ('home_addresses = ["2001:db8:10::42"]', "home_addresses = []", "node[0].home_addresses", "at least"),
    ("spi = 300", "spi = 257", "node[1].key[0].spi", "mn1@example.org"),
    ("spi = 257", "spi = 256", "node[0].key[1].spi", "already used"),
    ("spi = 300", "spi = 3", "node[1].key[0].spi", "256"),
    ('file = "{key3}"', 'file = "{key3}.missing"', "node[1].key[0].file", "No such file"),
    ('file = "{key3}"', 'file = "{key3}"\nfiles = 1', "node[1].key[0].files", "file"),
    ('spi = 300\nfile = "{key3}"', 'spi = 300\nfile = "{key3}"\n[[node.key]]\nspi = 301\nfile = "{key1}"\n'
     '[[node.key]]\nspi = 302\nfile = "{key1}"', "node[1].key", "at most 2"),
]


@pytest.mark.parametrize(("old", "new", "key", "why"), HA_INVALID)
def test_ha_invalid_names_the_key(tmp_path, keys, old, new, key, why):
    assert old in HA_EXAMPLE
    path = _ha(tmp_path, keys, HA_EXAMPLE.replace(old, new, 1))
    with pytest.raises(ec.EngineConfigError) as e:
        ec.load_ha_config(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: {key}: "), msg
    assert why in msg, msg


def test_ha_needs_a_node(tmp_path, keys):
    path = _ha(tmp_path, keys, HA_EXAMPLE.split("[[node]]")[0])
    with pytest.raises(ec.EngineConfigError, match=r": node: missing"):
        ec.load_ha_config(path)


def test_ha_refuses_a_loose_key_file(tmp_path, keys):
    os.chmod(keys["key2"], 0o640)
    with pytest.raises(ec.EngineConfigError, match=r"node\[0\]\.key\[1\]\.file: .*mn2\.key: mode 0640.*0600"):
        ec.load_ha_config(_ha(tmp_path, keys))


# ---------------------------------------------------------------------------------------------- key files
def test_key_file_round_trip(tmp_path):
    key = ec.generate_key()
    assert len(key) == 32 and key != ec.generate_key()
    path = tmp_path / "new" / "dir" / "k.key"
    ec.write_key_file(str(path), key)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    assert path.read_text() == key.hex() + "\n"
    assert ec.read_key_file(str(path)) == key
    for size in (15, 65):
        with pytest.raises(ValueError):
            ec.write_key_file(str(path), bytes(size))


@pytest.mark.parametrize("text", ["  " + "ab" * 16 + "\n\n", "AB" * 64, "0f" * 20 + "\r\n"])
def test_key_file_accepts_hex(tmp_path, text):
    p = tmp_path / "k"
    p.write_text(text)
    os.chmod(p, 0o600)
    assert ec.read_key_file(str(p)) == bytes.fromhex(text.strip())


@pytest.mark.parametrize("mode", [0o400, 0o600, 0o700])
def test_key_file_strict_modes_ok(tmp_path, mode):
    p = tmp_path / "k"
    ec.write_key_file(str(p), bytes(32))
    os.chmod(p, mode)
    assert ec.read_key_file(str(p)) == bytes(32)


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o660, 0o601, 0o610])
def test_key_file_loose_modes_refused(tmp_path, mode):
    p = tmp_path / "k"
    ec.write_key_file(str(p), bytes(32))
    os.chmod(p, mode)
    with pytest.raises(ec.EngineConfigError, match="0600") as e:
        ec.read_key_file(str(p))
    assert f"{mode:04o}" in str(e.value)


@pytest.mark.parametrize("text", ["", "ab" * 15, "ab" * 65, "xyz" * 12, "ab" * 16 + " cd", "ab" * 8 + "\n" + "ab" * 8,
                                  "abc" + "ab" * 16, "é" * 32])
def test_key_file_junk_refused(tmp_path, text):
    p = tmp_path / "k"
    p.write_text(text)
    os.chmod(p, 0o600)
    with pytest.raises(ec.EngineConfigError, match="hex digits"):
        ec.read_key_file(str(p))


def test_key_file_symlink_dir_big_missing_refused(tmp_path):
    real = tmp_path / "real.key"
    ec.write_key_file(str(real), bytes(32))
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(ec.EngineConfigError, match="symbolic link"):
        ec.read_key_file(str(link))
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    with pytest.raises(ec.EngineConfigError, match="not a regular file"):
        ec.read_key_file(str(d))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ec.EngineConfigError, match="not a regular file"):
        ec.read_key_file(str(fifo))
    big = tmp_path / "big.key"
    big.write_text("ab" * 16 + " " * 1100)
    os.chmod(big, 0o600)
    with pytest.raises(ec.EngineConfigError, match="1024"):
        ec.read_key_file(str(big))
    with pytest.raises(ec.EngineConfigError, match="cannot open"):
        ec.read_key_file(str(tmp_path / "missing.key"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file away")
def test_key_file_foreign_owner_refused(tmp_path):
    p = tmp_path / "k"
    ec.write_key_file(str(p), bytes(32))
    os.chown(p, 4242, 4242)
    with pytest.raises(ec.EngineConfigError, match="owned by uid 4242"):
        ec.read_key_file(str(p))


@pytest.mark.parametrize("table, why", [
    ("[load_sharing]\nweights = { up0 = -1 }\n", "0..1000"),
    ("[load_sharing]\nweights = { \"up/0\" = 1 }\n", "not an interface name"),
    ("[load_sharing]\nweights = 3\n", "a table of interface = weight"),
    ("[load_sharing]\nweight = {}\n", "did you mean 'weights'"),
])
def test_mn_load_sharing_refusals(tmp_path, table, why):
    path = _mn(tmp_path, MN_EXAMPLE.format(key="/etc/mhgui/keys/mn1.key") + table)
    with pytest.raises(ec.EngineConfigError, match=why):
        ec.load_mn_config(path)
