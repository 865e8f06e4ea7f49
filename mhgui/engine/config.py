"""Configuration of the engine daemons: ``/etc/mhgui/mn.toml``, ``/etc/mhgui/ha.toml``, key files.

Reads and writes files; no sockets. Everything invalid raises one :class:`EngineConfigError` (a
ValueError) whose message is ``"FILE: key: what is wrong"`` (``"FILE: ... (at line L, column C)"`` for
TOML syntax errors), never a traceback. Unknown keys are errors naming the key, so that a misspelling
is never silently ignored. Addresses are stored as their compressed text (``ipaddress``'s form).
Examples of both files: ``tests/test_engine_config.py`` (``MN_EXAMPLE``, ``HA_EXAMPLE``).

Key files hold one key as hex text (16..64 bytes); they must be regular files of mode 0600 or
stricter, owned by the effective user or root (the MN-HA key is the node's long-term secret: RFC 4285
§5 leaves key distribution to configuration).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import secrets
import shutil
import stat
import tomllib
from dataclasses import dataclass, field

import tomli_w

from ..atomicfile import atomic_replace
from .paths import DEFAULT_MN_CONFIG, MN_CONFIG_ENV, mn_config_path  # noqa: F401 (re-exported)

__all__ = [
    "DEFAULT_MN_CONFIG", "EngineConfigError", "HaConfig", "HomeAddressConfig", "HomeAgentRef", "MN_CONFIG_ENV",
    "MnConfig", "NodeConfig", "NodeKey", "ProbeConfig", "TunnelConfig", "generate_key", "load_ha_config",
    "load_mn_config", "mn_config_path", "mn_config_to_toml", "read_key_file", "write_key_file", "write_mn_config",
]

DEFAULT_PORT = 4191  # IANA "dsmipv6" (RFC 5555)
MAX_LIFETIME = 65535 * 4  # RFC 6275 §6.1.7: 16-bit lifetime in units of 4 s
KEY_FILE_MAX = 1024
_U32 = 0xFFFFFFFF
_IFNAME = re.compile(r"[^/:\s]{1,15}")  # Linux IFNAMSIZ 16 with the NUL; '/' and ':' are refused too
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){16,64}")
_RESERVED_TABLES = (253, 254, 255)  # default, main, local


class EngineConfigError(ValueError):
    """An engine configuration or key file is missing, unreadable or invalid: ``"FILE: key: problem"``."""


@dataclass(frozen=True)
class HomeAgentRef:
    """``[home_agent]`` of mn.toml: outer ``addresses`` the HA listens on (at most one IPv6 and one
    IPv4), its ``address`` on the home prefix (inner destination of signalling), UDP ``port``."""
    addresses: tuple[str, ...]
    address: str
    port: int = DEFAULT_PORT


@dataclass(frozen=True)
class HomeAddressConfig:
    """One ``[[home_address]]``: the HoA ``address`` with its home ``prefix_len``; uplink names in
    ``preference`` order, ``backup`` (only when no other uplink works), ``never``; ``default_route``:
    the HoA is the default source of new connections."""
    address: str
    prefix_len: int
    preference: tuple[str, ...] = ()
    backup: tuple[str, ...] = ()
    never: tuple[str, ...] = ()
    default_route: bool = True


@dataclass(frozen=True)
class ProbeConfig:
    """``[probe]``: heartbeat every ``interval_ms`` (``metered_interval_ms`` on metered uplinks),
    ``misses`` lost in a row = unreachable; a NAT keepalive every ``keepalive_s`` s."""
    interval_ms: int = 250
    misses: int = 3
    metered_interval_ms: int = 5000
    keepalive_s: int = 20
    #: interfaces probed at ``metered_interval_ms`` (modems — wwan links — always are)
    metered: tuple[str, ...] = ()


@dataclass(frozen=True)
class TunnelConfig:
    """``[tunnel]``: TUN device ``name``, routing ``table`` of the HoA default route, ``mtu`` (0 =
    follow the uplinks), requested binding ``lifetime`` (s), ``multiple_care_of``: register every usable
    uplink at once (RFC 5648) so that single connections can be moved, bicast and shared (RFC 6089)."""
    name: str = "mhmn0"
    table: int = 4191
    mtu: int = 0
    lifetime: int = 600
    multiple_care_of: bool = False


@dataclass(frozen=True)
class MnConfig:
    """mn.toml: ``[node]`` (``identity`` NAI, ``spi``, ``key_file``), the sections above and ``[load_sharing]``."""
    identity: str
    spi: int
    key_file: str
    home_agent: HomeAgentRef
    home_addresses: tuple[HomeAddressConfig, ...]
    probe: ProbeConfig = ProbeConfig()
    tunnel: TunnelConfig = TunnelConfig()
    #: ``[load_sharing] weights = { up0 = 1, up1 = 2 }``: new flows spread over the uplinks by weight (with
    #: ``multiple_care_of``); set at runtime (SetLoadSharing, ``mhctl flow-bindings share``) and saved here
    load_sharing: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class NodeKey:
    """One MN-HA key of a node: RFC 4285 ``spi``, the ``key`` bytes, the ``file`` it came from."""
    spi: int
    key: bytes = field(repr=False)
    file: str = ""


@dataclass(frozen=True)
class NodeConfig:
    """One ``[[node]]`` of ha.toml: ``identity`` (NAI), its ``home_addresses``, 1 or 2 ``keys``."""
    identity: str
    home_addresses: tuple[str, ...]
    keys: tuple[NodeKey, ...]


@dataclass(frozen=True)
class HaConfig:
    """ha.toml ``[home_agent]`` (keys as in the file; ``skew`` and ``log_rate_s`` in s) and the nodes."""
    listen: tuple[str, ...]
    address: str
    home_prefix: str
    nodes: tuple[NodeConfig, ...]
    port: int = DEFAULT_PORT
    tun: str = "mhha0"
    max_lifetime: int = 600
    skew: float = 7.0
    state_dir: str = "/var/lib/mhgui-ha"
    home_link: str = ""
    log_rate_s: int = 60


# ---------------------------------------------------------------------------------------------- reading
_REQUIRED = object()


class _Table:
    """One TOML table under validation: typed getters whose errors name the file and the key."""

    def __init__(self, file: str, name: str, data: object, known: tuple[str, ...]):
        self.file, self.name = file, name
        if not isinstance(data, dict):
            self.fail(None, "must be a table")
        self.data = data
        for k in data:
            if k not in known:
                close = difflib.get_close_matches(k, known, 1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
                self.fail(k, f"unknown key{hint}")

    def key(self, k: str | None) -> str:
        return self.name if k is None else f"{self.name}.{k}" if self.name else k

    def fail(self, k: str | None, msg: str):
        raise EngineConfigError(f"{self.file}: {self.key(k) or '(top level)'}: {msg}")

    def get(self, k: str, types: type | tuple, what: str, default=_REQUIRED):
        if k not in self.data:
            if default is _REQUIRED:
                self.fail(k, "missing")
            return default
        v = self.data[k]
        allowed = types if isinstance(types, tuple) else (types,)
        if not isinstance(v, allowed) or (isinstance(v, bool) and bool not in allowed):  # TOML true is no number
            self.fail(k, f"must be {what}, not {type(v).__name__} {v!r}")
        return v

    def num(self, k: str, lo: int, hi: int, default=_REQUIRED) -> int:
        v = self.get(k, int, f"an integer in {lo}..{hi}", default)
        if not lo <= v <= hi:
            self.fail(k, f"{v} is not in {lo}..{hi}")
        return v

    def text(self, k: str, default=_REQUIRED) -> str:
        return self.get(k, str, "a string", default)

    def strs(self, k: str, default=_REQUIRED) -> tuple[str, ...]:
        v = self.get(k, list, "a list of strings", default)
        for i, s in enumerate(v):
            if not isinstance(s, str):
                self.fail(f"{k}[{i}]", f"must be a string, not {type(s).__name__} {s!r}")
        return tuple(v)

    def table(self, k: str, known: tuple[str, ...], optional: bool = False) -> _Table:
        if k not in self.data and optional:
            return _Table(self.file, self.key(k), {}, known)
        return _Table(self.file, self.key(k), self.get(k, dict, "a table"), known)

    def tables(self, k: str, known: tuple[str, ...]) -> list[_Table]:
        v = self.get(k, list, f"an array of tables ([[{self.key(k)}]])")
        if not v:
            self.fail(k, f"at least one [[{self.key(k)}]] is needed")
        return [_Table(self.file, f"{self.key(k)}[{i}]", t, known) for i, t in enumerate(v)]


def _ip(t: _Table, k: str, text: str, version: int | None = None) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        a = ipaddress.ip_address(text)
    except ValueError:
        t.fail(k, f"{text!r} is not an IP address")
    if getattr(a, "scope_id", None) is not None:  # RFC 4007 §11: zones are for non-global scopes only
        t.fail(k, f"{text!r} has a zone; an address on the Internet or the home prefix has none")
    if version is not None and a.version != version:
        t.fail(k, f"{text!r} is not an IPv{version} address")
    if a.is_multicast or a.is_unspecified or a.is_loopback or a.is_link_local:
        t.fail(k, f"{text!r} is not a unicast address usable here")
    return a


def _check_ifname(t: _Table, k: str, name: str) -> str:
    if not _IFNAME.fullmatch(name) or name in (".", ".."):
        t.fail(k, f"{name!r} is not an interface name (1..15 characters, no '/', ':' or whitespace)")
    return name


def _ifnames(t: _Table, k: str) -> tuple[str, ...]:
    names = t.strs(k, ())
    for i, n in enumerate(names):
        if names.index(_check_ifname(t, f"{k}[{i}]", n)) != i:
            t.fail(f"{k}[{i}]", f"{n!r} is listed twice")
    return names


def _nai(t: _Table, k: str) -> str:
    v = t.text(k)
    if not 1 <= len(v.encode()) <= 253 or not v.isprintable() or any(c.isspace() for c in v):
        t.fail(k, f"{v!r} is not a NAI (RFC 4283: 1..253 bytes, printable, no whitespace)")
    return v


def _abspath(t: _Table, k: str, default=_REQUIRED) -> str:
    v = t.text(k, default)
    if not os.path.isabs(v) or "\0" in v:
        t.fail(k, f"{v!r} must be an absolute path")
    return v


def _hoa(t: _Table, k: str, text: str, net: ipaddress.IPv6Network | None = None) -> ipaddress.IPv6Interface:
    """A home address: global unicast IPv6 with a prefix length (16..128), not the subnet-router anycast."""
    try:
        iface = ipaddress.IPv6Interface(text)
    except ValueError:
        t.fail(k, f"{text!r} is not an IPv6 address{'' if net else ' with a prefix length (addr/len)'}")
    if net is None and "/" not in text:
        t.fail(k, f"{text!r} needs its home prefix length (e.g. {text}/64)")
    if net is not None and "/" in text:
        t.fail(k, f"{text!r}: give the address without a prefix length (the prefix is {net})")
    a = _ip(t, k, str(iface.ip), 6)
    if a.is_site_local or a.ipv4_mapped is not None or a.is_reserved:
        t.fail(k, f"{text!r} is not a global unicast address")
    if not 16 <= iface.network.prefixlen <= 128:
        t.fail(k, f"prefix length /{iface.network.prefixlen} is not in 16..128")
    if net is not None and a not in net:
        t.fail(k, f"{a.compressed} is not inside the home prefix {net}")
    prefix = net or iface.network
    if prefix.prefixlen < 127 and a == prefix.network_address:
        t.fail(k, f"{a.compressed} is the subnet-router anycast address of {prefix}")
    return iface


def _load_toml(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise EngineConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise EngineConfigError(f"{path}: not valid TOML: {e}") from None


def _parse_mn(data: dict, file: str) -> MnConfig:
    top = _Table(file, "", data, ("node", "home_agent", "home_address", "probe", "tunnel", "load_sharing"))
    node = top.table("node", ("identity", "spi", "key_file"))
    identity, spi, key_file = _nai(node, "identity"), node.num("spi", 256, _U32), _abspath(node, "key_file")
    ha = top.table("home_agent", ("addresses", "address", "port"))
    outer = ha.strs("addresses")
    if not outer:
        ha.fail("addresses", "at least one address of the home agent is needed")
    families: set[int] = set()
    for i, text in enumerate(outer):
        a = _ip(ha, f"addresses[{i}]", text)
        if a.version in families:
            ha.fail(f"addresses[{i}]", f"a second IPv{a.version} address ({text}): give one per family")
        families.add(a.version)
    ref = HomeAgentRef(tuple(ipaddress.ip_address(a).compressed for a in outer),
                       _ip(ha, "address", ha.text("address"), 6).compressed, ha.num("port", 1, 65535, DEFAULT_PORT))
    hoas: list[HomeAddressConfig] = []
    for h in top.tables("home_address", ("address", "preference", "backup", "never", "default_route")):
        iface = _hoa(h, "address", h.text("address"))
        if any(x.address == iface.ip.compressed for x in hoas):
            h.fail("address", f"{iface.ip.compressed} is configured twice")
        pref, backup, never = _ifnames(h, "preference"), _ifnames(h, "backup"), _ifnames(h, "never")
        for k, names, other, what in (("never", never, pref + backup, "preference/backup"),
                                      ("backup", backup, pref, "preference")):
            for n in names:
                if n in other:
                    h.fail(k, f"{n!r} is also in {what}")
        hoas.append(HomeAddressConfig(iface.ip.compressed, iface.network.prefixlen, pref, backup, never,
                                      h.get("default_route", bool, "true or false", True)))
    p = top.table("probe", ("interval_ms", "misses", "metered_interval_ms", "keepalive_s", "metered"), optional=True)
    probe = ProbeConfig(p.num("interval_ms", 50, 60000, 250), p.num("misses", 1, 20, 3),
                        p.num("metered_interval_ms", 50, 600000, 5000), p.num("keepalive_s", 5, 25, 20),
                        _ifnames(p, "metered"))
    t = top.table("tunnel", ("name", "table", "mtu", "lifetime", "multiple_care_of"), optional=True)
    table = t.num("table", 1, 2**31 - 1, 4191)
    if table in _RESERVED_TABLES:
        t.fail("table", f"{table} is a kernel table (253 default, 254 main, 255 local)")
    mtu = t.num("mtu", 0, 65535, 0)
    if 0 < mtu < 1280:
        t.fail("mtu", f"{mtu} is under IPv6's minimum 1280 (0 = follow the uplinks)")
    tunnel = TunnelConfig(_check_ifname(t, "name", t.text("name", "mhmn0")), table, mtu,
                          t.num("lifetime", 4, MAX_LIFETIME, 600),
                          t.get("multiple_care_of", bool, "true or false", False))
    ls = top.table("load_sharing", ("weights",), optional=True)
    weights = ls.get("weights", dict, "a table of interface = weight", {})
    for name, w in weights.items():
        _check_ifname(ls, f"weights.{name}", name)
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 1000:
            ls.fail(f"weights.{name}", f"must be an integer in 0..1000, not {w!r}")
    if any(ipaddress.ip_address(h.address) == ipaddress.ip_address(ref.address) for h in hoas):
        ha.fail("address", f"{ref.address} is also a [[home_address]]: the home agent's address is not this "
                           "node's own (RFC 6275 §2)")
    return MnConfig(identity, spi, key_file, ref, tuple(hoas), probe, tunnel,
                    tuple(sorted((n, w) for n, w in weights.items() if w)))


def load_mn_config(path: str) -> MnConfig:
    """The mobile node's configuration from ``path`` (mn.toml). EngineConfigError when missing/invalid.
    The key file is only named here; the daemon reads it with :func:`read_key_file`."""
    return _parse_mn(_load_toml(path), str(path))


def load_ha_config(path: str) -> HaConfig:
    """The home agent's configuration from ``path`` (ha.toml), with every node's keys read
    (:func:`read_key_file`). Duplicate identities, home addresses or SPIs are errors."""
    file = str(path)
    top = _Table(file, "", _load_toml(path), ("home_agent", "node"))
    h = top.table("home_agent", ("listen", "port", "address", "home_prefix", "tun", "max_lifetime", "skew",
                                 "state_dir", "home_link", "log_rate_s"))
    listen = h.strs("listen", ("::",))
    if not listen:
        h.fail("listen", "at least one local address is needed ('::' = all)")
    for i, text in enumerate(listen):
        try:
            a = ipaddress.ip_address(text)
        except ValueError:
            h.fail(f"listen[{i}]", f"{text!r} is not an IP address")
        if a.is_multicast:
            h.fail(f"listen[{i}]", f"{text!r} is a multicast address")
    try:
        prefix = ipaddress.IPv6Network(h.text("home_prefix"))
    except ValueError as e:
        h.fail("home_prefix", f"not an IPv6 prefix: {e}")
    if not 16 <= prefix.prefixlen <= 128:
        h.fail("home_prefix", f"prefix length /{prefix.prefixlen} is not in 16..128")
    own = _hoa(h, "address", h.text("address"), prefix).ip.compressed
    home_link = h.text("home_link", "")
    if home_link:
        _check_ifname(h, "home_link", home_link)
    skew = h.get("skew", (int, float), "a number of seconds", 7.0)
    if not 0 < skew <= 300:
        h.fail("skew", f"{skew} is not in (0, 300] s")
    seen_ids: set[str] = set()
    seen_hoas: dict[str, str] = {own: "the home agent's own address"}
    seen_spis: dict[int, str] = {}
    nodes = []
    for n in top.tables("node", ("identity", "home_addresses", "key")):
        identity = _nai(n, "identity")
        if identity in seen_ids:
            n.fail("identity", f"{identity!r} is configured twice")
        seen_ids.add(identity)
        hoas = n.strs("home_addresses")
        if not hoas:
            n.fail("home_addresses", "at least one home address is needed")
        norm = []
        for i, text in enumerate(hoas):
            a = _hoa(n, f"home_addresses[{i}]", text, prefix).ip.compressed
            if a in seen_hoas:
                n.fail(f"home_addresses[{i}]", f"{a} is already {seen_hoas[a]}")
            seen_hoas[a] = f"a home address of {identity!r}"
            norm.append(a)
        keys = []
        ktables = n.tables("key", ("spi", "file"))
        if len(ktables) > 2:
            n.fail("key", f"{len(ktables)} keys: at most 2 (the current one and its successor)")
        for k in ktables:
            spi = k.num("spi", 256, _U32)
            if spi in seen_spis:
                k.fail("spi", f"{spi} is already used by {seen_spis[spi]!r}")
            seen_spis[spi] = identity
            kfile = _abspath(k, "file")
            try:
                keys.append(NodeKey(spi, read_key_file(kfile), kfile))
            except EngineConfigError as e:
                k.fail("file", str(e))
        nodes.append(NodeConfig(identity, tuple(norm), tuple(keys)))
    return HaConfig(tuple(ipaddress.ip_address(a).compressed for a in listen), own, str(prefix), tuple(nodes),
                    h.num("port", 1, 65535, DEFAULT_PORT), _check_ifname(h, "tun", h.text("tun", "mhha0")),
                    h.num("max_lifetime", 4, MAX_LIFETIME, 600), float(skew),
                    _abspath(h, "state_dir", "/var/lib/mhgui-ha"), home_link,
                    h.num("log_rate_s", 1, 86400, 60))


# ---------------------------------------------------------------------------------------------- writing
def mn_config_to_toml(cfg: MnConfig) -> str:
    """mn.toml text for ``cfg`` (what :func:`load_mn_config` reads back as an equal MnConfig)."""
    doc = {"node": {"identity": cfg.identity, "spi": cfg.spi, "key_file": cfg.key_file},
           "home_agent": dataclasses.asdict(cfg.home_agent),
           "home_address": [{"address": f"{h.address}/{h.prefix_len}", "preference": h.preference,
                             "backup": h.backup, "never": h.never, "default_route": h.default_route}
                            for h in cfg.home_addresses],
           "probe": dataclasses.asdict(cfg.probe), "tunnel": dataclasses.asdict(cfg.tunnel)}
    if cfg.load_sharing:
        doc["load_sharing"] = {"weights": dict(cfg.load_sharing)}
    return "# mhgui mobile node (mhgui-mn); see docs/engine-design.md\n\n" + tomli_w.dumps(doc)


def write_mn_config(path: str, cfg: MnConfig) -> None:
    """Write ``cfg`` to ``path`` atomically (mode 0644), keeping the previous file as ``path.bak``.
    The text is validated first: EngineConfigError (and nothing written) when ``cfg`` is invalid;
    OSError when the files cannot be written."""
    text = mn_config_to_toml(cfg)
    _parse_mn(tomllib.loads(text), str(path))
    directory = os.path.dirname(os.fspath(path)) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    if os.path.isfile(path):
        with open(path, "rb") as old:
            atomic_replace(f"{path}.bak", lambda f: shutil.copyfileobj(old, f), mode=0o644)
    atomic_replace(path, lambda f: f.write(text.encode()), mode=0o644)


# ---------------------------------------------------------------------------------------------- keys
def read_key_file(path: str) -> bytes:
    """The key (16..64 bytes) in ``path``: one line of 32..128 hex digits, surrounding whitespace ignored.
    EngineConfigError when the file is missing, a symlink or not a regular file, larger than 1 KiB, of a
    mode looser than 0600 (any group/other bit), owned by someone other than the effective user or
    root, or not hex."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        if os.path.islink(path):
            raise EngineConfigError(f"{path}: is a symbolic link; a key file must be a regular file") from None
        raise EngineConfigError(f"{path}: cannot open key file: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise EngineConfigError(f"{path}: not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise EngineConfigError(f"{path}: mode {mode:04o} is looser than 0600 (readable by others than "
                                    f"its owner); run: chmod 0600 {path}")
        if st.st_uid not in (os.geteuid(), 0):
            raise EngineConfigError(f"{path}: owned by uid {st.st_uid}, not by uid {os.geteuid()} or root")
        if st.st_size > KEY_FILE_MAX:
            raise EngineConfigError(f"{path}: {st.st_size} bytes; a key file is at most {KEY_FILE_MAX}")
        raw = os.read(fd, KEY_FILE_MAX + 1)
    except OSError as e:
        raise EngineConfigError(f"{path}: cannot read key file: {e.strerror or e}") from None
    finally:
        os.close(fd)
    text = raw.decode("ascii", "replace").strip()
    if len(raw) > KEY_FILE_MAX or not _HEX.fullmatch(text):
        raise EngineConfigError(f"{path}: not a key: expected one line of 32..128 hex digits (16..64 bytes)")
    return bytes.fromhex(text)


def write_key_file(path: str, key: bytes) -> None:
    """Write ``key`` (16..64 bytes) to ``path`` as hex, atomically with mode 0600; the directory is
    created with mode 0700 when missing. ValueError for a key of another length; OSError."""
    if not 16 <= len(key) <= 64:
        raise ValueError(f"a key is 16..64 bytes, not {len(key)}")
    directory = os.path.dirname(os.fspath(path)) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)  # makedirs' mode is filtered by the umask
    atomic_replace(path, lambda f: f.write(key.hex().encode() + b"\n"), mode=0o600)


def generate_key() -> bytes:
    """A new random MN-HA key: 32 bytes from the OS's CSPRNG."""
    return secrets.token_bytes(32)
