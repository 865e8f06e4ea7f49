"""``mip6d.conf`` reader, after umip.md section 2 (``man/mip6d.conf.tmpl``, ``src/scan.l``, ``src/gram.y``).

Lexical rules kept: ``;``-terminated statements, ``{ }`` blocks (no ``;`` after
``}``), ``"strings"``, ``#`` comments, case-sensitive keywords, booleans
``enabled|allow|true`` / ``disabled|deny|block|false``, decimals that need a
dot (``InterfaceInitialInitDelay 2;`` is a syntax error, ``2.0`` is not), and
``include "<glob>"`` (no ``;``, at most 5 deep, a relative glob is taken from
the current directory as C ``glob()`` would).

Errors are raised as :class:`ConfigError` whose ``str()`` is exactly
``Error in configuration file F at line N: MSG at 'TOK'``. ``MSG`` is
``syntax error`` for anything the grammar does not accept (an unknown keyword
too: the grammar is a closed keyword set), ``invalid interface`` for an
``MnHomeLink`` (or HA ``Interface``) naming an interface that does not exist,
``invalid preference`` for ``MnIfPreference`` outside 0..10. ``TOK`` is the
token as written (a string keeps its quotes; at end of file it is empty).

Keywords whose inner grammar umip.md does not spell out (``CnBindingPolicySet``
and ``IPsecPolicySet`` blocks, ``BindingAclPolicy``, ``DefaultBindingAclPolicy``)
are accepted with any balanced content and ignored.
"""

from __future__ import annotations

import glob as globmod
import ipaddress
import re
import socket
from dataclasses import dataclass, field

TRUE_WORDS = {"enabled", "allow", "true"}
FALSE_WORDS = {"disabled", "deny", "block", "false"}
MAX_INCLUDE_DEPTH = 5
MAX_PREFERENCE = 10
DEFAULT_PREFERENCE = 10
MAX_HA_BINDING_LIFE = 262140


class ConfigError(Exception):
    def __init__(self, file: str, line: int, msg: str, tok: str) -> None:
        self.file, self.line, self.msg, self.tok = file, line, msg, tok
        super().__init__(f"Error in configuration file {file} at line {line}: {msg} at '{tok}'")


class OpenError(Exception):
    """The file given with ``-c`` cannot be read."""


@dataclass
class Token:
    kind: str  # STR ADDR DEC NUM WORD PUNCT EOF
    text: str
    file: str
    line: int

    @property
    def value(self) -> str:
        return self.text[1:-1] if self.kind == "STR" else self.text


_TOKEN_RE = re.compile(r"""
    (?P<ws>[ \t\r\f\v]+)
  | (?P<nl>\n)
  | (?P<comment>\#[^\n]*)
  | (?P<STR>"[^"\n]*")
  | (?P<ADDR>[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)
  | (?P<DEC>[0-9]*\.[0-9]+|[0-9]+\.)
  | (?P<NUM>[0-9]+)
  | (?P<WORD>[A-Za-z_][A-Za-z0-9_\-]*)
  | (?P<PUNCT>[{};()/,])
""", re.VERBOSE)


def tokenize(text: str, file: str, depth: int = 0) -> list[Token]:
    """Tokens of ``text``; ``include`` is expanded here, as the scanner does."""
    out: list[Token] = []
    pos = 0
    line = 1
    pending_include: Token | None = None
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            bad = text[pos]
            raise ConfigError(file, line, "syntax error", bad)
        pos = m.end()
        kind = m.lastgroup
        if kind == "nl":
            line += 1
            continue
        if kind in ("ws", "comment"):
            continue
        tok = Token(kind, m.group(), file, line)
        if pending_include is not None:
            if tok.kind != "STR":
                raise ConfigError(file, line, "syntax error", tok.text)
            if depth + 1 > MAX_INCLUDE_DEPTH:
                raise ConfigError(file, line, "include nested too deeply", tok.text)
            for path in sorted(globmod.glob(tok.value)):
                out.extend(_tokenize_file(path, depth + 1, include_tok=tok))
            pending_include = None
            continue
        if kind == "WORD" and tok.text == "include":
            pending_include = tok
            continue
        out.append(tok)
    if pending_include is not None:
        raise ConfigError(file, line, "syntax error", "")
    return out


def _tokenize_file(path: str, depth: int, include_tok: Token | None = None) -> list[Token]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        if include_tok is None:
            raise OpenError(f"{path}: {e.strerror}") from e
        raise ConfigError(include_tok.file, include_tok.line, "cannot open include file", include_tok.text) from e
    return tokenize(text, path, depth)


@dataclass
class InterfaceConf:
    name: str
    preference: int = DEFAULT_PREFERENCE
    if_type: str | None = None
    tunnel: bool = False
    line: int = 0
    file: str = ""


@dataclass
class HomeLinkConf:
    ifname: str
    hoa: ipaddress.IPv6Address | None = None
    plen: int = 64
    mnps: list[ipaddress.IPv6Network] = field(default_factory=list)
    ha: ipaddress.IPv6Address | None = None
    home_prefix: ipaddress.IPv6Network | None = None
    is_mob_rtr: bool = False
    use_alt_coa: bool = False

    @property
    def prefix(self) -> ipaddress.IPv6Network:
        if self.home_prefix is not None:
            return self.home_prefix
        return ipaddress.IPv6Network((self.hoa, self.plen), strict=False)


@dataclass
class Config:
    file: str = ""
    node: str = "CN"
    debug_level: int = 0
    debug_log_file: str | None = None
    use_mn_ha_ipsec: bool = True
    key_mng_mob_capability: bool = False
    interfaces: dict[str, InterfaceConf] = field(default_factory=dict)
    mn_use_all_interfaces: bool = False
    mn_router_probes: int = 0
    mn_max_ha_binding_life: int = MAX_HA_BINDING_LIFE
    mn_max_cn_binding_life: int = 420
    initial_bindack_timeout_first_reg: float = 1.5
    initial_bindack_timeout_rereg: float = 1.0
    initial_solicit_timer: float = 3.0
    interface_initial_init_delay: float = 2.0
    no_home_return: bool = False
    mn_max_ha_consecutive_resends: int = 0  # 0: no limit
    home_links: list[HomeLinkConf] = field(default_factory=list)
    ha_max_binding_life: int = MAX_HA_BINDING_LIFE
    ha_served_prefixes: list[ipaddress.IPv6Network] = field(default_factory=list)
    send_mob_pfx_advs: bool = False
    max_mob_pfx_adv_interval: int = 86400
    flags: dict[str, bool] = field(default_factory=dict)  # every other boolean option, by keyword
    numbers: dict[str, float] = field(default_factory=dict)  # every other numeric option, by keyword


_BOOL_OPTS = {
    "DoRouteOptimizationCN", "DoRouteOptimizationMN", "UseMnHaIPsec", "KeyMngMobCapability",
    "MnUseAllInterfaces", "OptimisticHandoff", "NoHomeReturn", "MnDiscardHaParamProb",
    "MnResetDhaadAtHome", "MnFlushAllAtHome", "SendMobPfxSols", "UseCnBuAck",
    "MobRtrUseExplicitMode", "HaAcceptMobRtr", "SendMobPfxAdvs", "SendUnsolMobPfxAdvs",
}
_NUM_OPTS = {
    "DebugLevel", "MnRouterProbes", "MnMaxHaBindingLife", "MnMaxCnBindingLife",
    "MnMaxHaConsecutiveResends", "MnMaxCnConsecutiveResends", "HaMaxBindingLife",
    "MinMobPfxAdvInterval", "MaxMobPfxAdvInterval",
}
_DEC_OPTS = {
    "MnRouterProbeTimeout", "InitialBindackTimeoutFirstReg", "InitialBindackTimeoutReReg",
    "InitialSolicitTimer", "InterfaceInitialInitDelay",
}
_LOOSE_BLOCKS = {"CnBindingPolicySet", "IPsecPolicySet"}
_LOOSE_STATEMENTS = {"BindingAclPolicy", "DefaultBindingAclPolicy"}
_NODE_TYPES = {"CN", "HA", "MN"}


class _Parser:
    def __init__(self, tokens: list[Token], file: str, check_interfaces: bool) -> None:
        self.toks = tokens
        self.i = 0
        self.file = file
        self.check_interfaces = check_interfaces
        last = tokens[-1] if tokens else None
        self.eof = Token("EOF", "", last.file if last else file, last.line if last else 1)

    # -- token helpers
    def peek(self) -> Token:
        return self.toks[self.i] if self.i < len(self.toks) else self.eof

    def next(self) -> Token:
        t = self.peek()
        self.i += 1
        return t

    def error(self, tok: Token, msg: str = "syntax error") -> ConfigError:
        return ConfigError(tok.file, tok.line, msg, tok.text)

    def expect(self, kind: str, text: str | None = None) -> Token:
        t = self.next()
        if t.kind != kind or (text is not None and t.text != text):
            raise self.error(t)
        return t

    def semi(self) -> None:
        self.expect("PUNCT", ";")

    def boolean(self) -> bool:
        t = self.next()
        if t.kind == "WORD" and t.text in TRUE_WORDS:
            return True
        if t.kind == "WORD" and t.text in FALSE_WORDS:
            return False
        raise self.error(t)

    def number(self) -> int:
        return int(self.expect("NUM").text)

    def decimal(self) -> float:
        return float(self.expect("DEC").text)

    def string(self) -> Token:
        return self.expect("STR")

    def address(self) -> ipaddress.IPv6Address:
        t = self.expect("ADDR")
        try:
            return ipaddress.IPv6Address(t.text)
        except ValueError:
            raise self.error(t) from None

    def prefix(self) -> tuple[ipaddress.IPv6Address, int]:
        a = self.address()
        self.expect("PUNCT", "/")
        t = self.expect("NUM")
        n = int(t.text)
        if n > 128:
            raise self.error(t)
        return a, n

    def skip_balanced_block(self) -> None:
        self.expect("PUNCT", "{")
        depth = 1
        while depth:
            t = self.next()
            if t.kind == "EOF":
                raise self.error(t)
            if t.text == "{":
                depth += 1
            elif t.text == "}":
                depth -= 1

    def skip_to_semi(self) -> None:
        while True:
            t = self.next()
            if t.kind == "EOF" or t.text in "{}":
                raise self.error(t)
            if t.text == ";":
                return

    # -- grammar
    def parse(self, conf: Config) -> Config:
        while self.peek().kind != "EOF":
            self.statement(conf)
        return conf

    def statement(self, conf: Config) -> None:
        t = self.next()
        if t.kind != "WORD":
            raise self.error(t)
        kw = t.text
        if kw == "NodeConfig":
            v = self.next()
            if v.kind != "WORD" or v.text not in _NODE_TYPES:
                raise self.error(v)
            conf.node = v.text
            self.semi()
        elif kw == "DebugLogFile":
            conf.debug_log_file = self.string().value
            self.semi()
        elif kw == "UsePolicyModule":
            self.string()
            self.semi()
        elif kw in _BOOL_OPTS:
            v = self.boolean()
            self.semi()
            conf.flags[kw] = v
            if kw == "UseMnHaIPsec":
                conf.use_mn_ha_ipsec = v
            elif kw == "KeyMngMobCapability":
                conf.key_mng_mob_capability = v
            elif kw == "MnUseAllInterfaces":
                conf.mn_use_all_interfaces = v
            elif kw == "NoHomeReturn":
                conf.no_home_return = v
            elif kw == "SendMobPfxAdvs":
                conf.send_mob_pfx_advs = v
        elif kw in _NUM_OPTS:
            v = self.number()
            self.semi()
            conf.numbers[kw] = v
            if kw == "DebugLevel":
                conf.debug_level = v
            elif kw == "MnRouterProbes":
                conf.mn_router_probes = v
            elif kw == "MnMaxHaBindingLife":
                conf.mn_max_ha_binding_life = v
            elif kw == "MnMaxCnBindingLife":
                conf.mn_max_cn_binding_life = v
            elif kw == "MnMaxHaConsecutiveResends":
                conf.mn_max_ha_consecutive_resends = v
            elif kw == "HaMaxBindingLife":
                conf.ha_max_binding_life = v
            elif kw == "MaxMobPfxAdvInterval":
                conf.max_mob_pfx_adv_interval = v
        elif kw in _DEC_OPTS:
            v = self.decimal()
            self.semi()
            conf.numbers[kw] = v
            if kw == "InitialBindackTimeoutFirstReg":
                conf.initial_bindack_timeout_first_reg = v
            elif kw == "InitialBindackTimeoutReReg":
                conf.initial_bindack_timeout_rereg = v
            elif kw == "InitialSolicitTimer":
                conf.initial_solicit_timer = v
            elif kw == "InterfaceInitialInitDelay":
                conf.interface_initial_init_delay = v
        elif kw == "Interface":
            self.interface(conf)
        elif kw == "MnHomeLink":
            self.home_link(conf)
        elif kw == "HaServedPrefix":
            a, n = self.prefix()
            self.semi()
            conf.ha_served_prefixes.append(ipaddress.IPv6Network((a, n), strict=False))
        elif kw in _LOOSE_BLOCKS:
            self.skip_balanced_block()
        elif kw in _LOOSE_STATEMENTS:
            self.skip_to_semi()
        else:
            raise self.error(t)

    def interface(self, conf: Config) -> None:
        name_tok = self.string()
        ic = InterfaceConf(name_tok.value, line=name_tok.line, file=name_tok.file)
        t = self.next()
        if t.text == ";" and t.kind == "PUNCT":
            conf.interfaces[ic.name] = ic
            return
        if not (t.kind == "PUNCT" and t.text == "{"):
            raise self.error(t)
        while True:
            t = self.next()
            if t.kind == "PUNCT" and t.text == "}":
                break
            if t.kind != "WORD":
                raise self.error(t)
            if t.text == "MnIfPreference":
                n = self.expect("NUM")
                if int(n.text) > MAX_PREFERENCE:
                    raise self.error(n, "invalid preference")
                ic.preference = int(n.text)
                self.semi()
            elif t.text == "IfType":
                v = self.next()
                if v.kind != "WORD" or v.text not in _NODE_TYPES:
                    raise self.error(v)
                ic.if_type = v.text
                self.semi()
            elif t.text == "Tunnel":
                ic.tunnel = self.boolean()
                self.semi()
            else:
                raise self.error(t)
        conf.interfaces[ic.name] = ic

    def home_link(self, conf: Config) -> None:
        name_tok = self.string()
        if self.check_interfaces and not interface_exists(name_tok.value):
            raise self.error(name_tok, "invalid interface")
        hl = HomeLinkConf(name_tok.value)
        self.expect("PUNCT", "{")
        while True:
            t = self.next()
            if t.kind == "PUNCT" and t.text == "}":
                break
            if t.kind != "WORD":
                raise self.error(t)
            if t.text == "HomeAddress":
                hl.hoa, hl.plen = self.prefix()
                if self.peek().kind == "PUNCT" and self.peek().text == "(":
                    self.next()
                    while True:
                        a, n = self.prefix()
                        hl.mnps.append(ipaddress.IPv6Network((a, n), strict=False))
                        s = self.next()
                        if s.kind == "PUNCT" and s.text == ")":
                            break
                        if not (s.kind == "PUNCT" and s.text == ","):
                            raise self.error(s)
                self.semi()
            elif t.text == "HomeAgentAddress":
                hl.ha = self.address()
                self.semi()
            elif t.text == "IsMobRtr":
                hl.is_mob_rtr = self.boolean()
                self.semi()
            elif t.text == "HomePrefix":
                a, n = self.prefix()
                hl.home_prefix = ipaddress.IPv6Network((a, n), strict=False)
                self.semi()
            elif t.text == "UseAltCoa":
                hl.use_alt_coa = self.boolean()
                self.semi()
            elif t.text == "MnRoPolicy":
                if self.peek().kind == "ADDR":
                    self.address()
                self.boolean()
                self.semi()
            else:
                raise self.error(t)
        conf.home_links.append(hl)


def interface_exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def parse_text(text: str, file: str = "<string>", check_interfaces: bool = True) -> Config:
    tokens = tokenize(text, file)
    conf = Config(file=file)
    return _Parser(tokens, file, check_interfaces).parse(conf)


def load(path: str, check_interfaces: bool = True) -> Config:
    """Parse ``path``; raises :class:`OpenError` or :class:`ConfigError`."""
    tokens = _tokenize_file(path, 0)
    conf = Config(file=path)
    return _Parser(tokens, path, check_interfaces).parse(conf)


def check_ha_interfaces(conf: Config) -> None:
    """On a home agent the listed interfaces must exist at start (umip.md section 2)."""
    for ic in conf.interfaces.values():
        if not interface_exists(ic.name):
            raise ConfigError(ic.file or conf.file, ic.line, "invalid interface", f'"{ic.name}"')
