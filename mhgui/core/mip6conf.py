"""Lossless reader and editor for UMIP's ``mip6d.conf``.

Grammar: ``/work/shared/domain/umip.md`` section 2, i.e. UMIP 1.0
``man/mip6d.conf.tmpl``, ``src/scan.l`` and ``src/gram.y``:

- statements end with ``;`` or are followed by a ``{ ... }`` block (no ``;``
  after ``}``); ``#`` starts a comment up to the end of the line;
- strings are ``"..."`` on one line, without escapes;
- keywords are case-sensitive; booleans are ``enabled|allow|true`` and
  ``disabled|deny|block|false``; decimals need a dot (``1.0``);
- ``include "<glob>"`` takes no ``;``; at most 5 levels of included files.

The module is pure: :func:`load` does its I/O through injected ``read`` and
``glob`` functions. Parsing is *lossless*: a :class:`ConfFile` keeps every
token of the source, whitespace and comments included, so :func:`render`
returns the original text byte for byte, and the editing helpers
(:func:`replace_tokens`, :func:`set_interface_preference`) change only the
bytes they must.

Deviations from mip6d, on purpose:

- unknown options (and the contents of their blocks) are kept, not rejected;
- ``\\r``, ``\\f`` and ``\\v`` count as whitespace (mip6d rejects them);
- a relative include pattern is relative to the including file's directory
  (mip6d passes it to ``glob(3)`` as is, i.e. relative to its working directory);
- interface names are not checked against the running system (mip6d's
  ``invalid interface``).
"""

from __future__ import annotations

import glob as _globmod
import ipaddress
import posixpath
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

from mhgui.core.model import HomeAddress
from mhgui.i18n import _, ngettext

__all__ = [
    "ConfError",
    "ConfFile",
    "DEFAULT_PREFERENCE",
    "LoadedConf",
    "MAX_INCLUDE_DEPTH",
    "Statement",
    "Token",
    "home_addresses",
    "interface_file",
    "interface_files",
    "interface_preferences",
    "load",
    "node_config",
    "parse",
    "preference_order_problem",
    "render",
    "replace_tokens",
    "set_interface_preference",
    "set_interface_preferences",
    "tokenize",
    "use_all_interfaces",
]

#: ``MAX_INCLUDE_DEPTH`` of ``src/scan.l``: levels of included files.
MAX_INCLUDE_DEPTH = 5
#: ``POL_MN_IF_DEF_PREFERENCE`` (``src/policy.h``): preference of an interface
#: listed without ``MnIfPreference``.
DEFAULT_PREFERENCE = 10
#: ``POL_MN_IF_MIN_PREFERENCE``: largest accepted ``MnIfPreference`` (0 = unused, 1 = best).
MAX_PREFERENCE = 10
#: ``MAX_BINDING_LIFETIME`` / ``MAX_RR_BINDING_LIFETIME`` (``src/mipv6.h``), checked by ``gram.y``.
MAX_BINDING_LIFETIME = 262140
MAX_RR_BINDING_LIFETIME = 420
#: Blocks never nest in mip6d's grammar; unknown options may, up to this depth.
MAX_BLOCK_DEPTH = 8


# --------------------------------------------------------------------------- errors


#: What :attr:`ConfError.redacted` shows instead of text taken from the file.
REDACTED = "[text not shown]"
# File text in a message is wrapped in these (NUL never reaches a message otherwise: _q escapes
# it, file names cannot hold it), so that ConfError can give the message without it.
_CONTENT_OPEN = "\x00["
_CONTENT_CLOSE = "\x00]"
_CONTENT_RE = re.compile("\x00\\[.*?\x00\\]", re.S)


def _c(text: str) -> str:
    """Mark ``text`` (taken from the file, printable, no NUL: digits, a checked address) in a message."""
    return _CONTENT_OPEN + text + _CONTENT_CLOSE


def _q(text: str, limit: int = 40) -> str:
    """Quote a token for a one-line message (non-printables escaped), marked as file text."""
    if len(text) > limit:
        text = text[:limit] + "..."
    out = []
    for ch in text:
        if ch.isprintable() and ch != "'":
            out.append(ch)
        elif ch == "'":
            out.append("\\'")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return _c("'" + "".join(out) + "'")


class ConfError(ValueError):
    """A malformed ``mip6d.conf``: ``str()`` is the one line ``"PATH:LINE: message"``.

    ``path`` is the file being parsed (an included file for errors inside it),
    ``line`` is 1-based. mip6d itself prints
    ``Error in configuration file F at line N: ...`` (umip.md section 2).
    ``message`` may quote up to 40 characters of the file (the offending
    token); :attr:`redacted` is the same line with every piece of file text
    replaced by :data:`REDACTED`, for a reader who may not see the file (the
    privileged helper's callers).
    """

    def __init__(self, path: str, line: int, message: str) -> None:
        shown = message.replace(_CONTENT_OPEN, "").replace(_CONTENT_CLOSE, "")
        super().__init__(path, line, shown)
        self.path = path
        self.line = line
        self.message = shown
        self.redacted_message = _CONTENT_RE.sub(REDACTED, message)

    def _line(self, message: str) -> str:
        return f"{self.path}:{self.line}: {message}" if self.line else f"{self.path}: {message}"

    @property
    def redacted(self) -> str:
        """``"PATH:LINE: message"`` without any text taken from the file."""
        return self._line(self.redacted_message)

    def __str__(self) -> str:
        return self._line(self.message)


# --------------------------------------------------------------------------- tokens

_WS_CHARS = " \t\r\f\v"
_PUNCT_CHARS = ";{}()/,="
_TOKEN_RE = re.compile(
    r"""(?P<newline>\n)
      |(?P<ws>[ \t\r\f\v]+)
      |(?P<comment>\#[^\n]*)
      |(?P<string>"[^"\n]*")
      |(?P<badstring>")
      |(?P<punct>[;{}()/,=])
      |(?P<word>[^ \t\r\f\v\n\#";{}()/,=]+)""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Token:
    """One token with its exact source text.

    ``kind``: ``"word"`` (keyword, number, decimal, boolean, address or any
    other bare word), ``"string"`` (text includes the quotes), ``"punct"``
    (one of ``; { } ( ) / , =``), or trivia: ``"ws"``, ``"newline"``, ``"comment"``.
    ``start``/``end``: character offsets in the file; ``line``: 1-based.
    """

    kind: str
    text: str
    start: int
    line: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    @property
    def value(self) -> str:
        """The text, without the quotes for a string."""
        return self.text[1:-1] if self.kind == "string" else self.text

    @property
    def is_trivia(self) -> bool:
        return self.kind in ("ws", "newline", "comment")

    def is_punct(self, ch: str) -> bool:
        return self.kind == "punct" and self.text == ch


def tokenize(text: str, path: str = "<string>") -> list[Token]:
    """Split ``text`` into tokens covering it exactly (``"".join`` gives it back).

    Raises :class:`ConfError` for a string not closed on its line
    (``scan.l``: ``Unterminated string``).
    """
    tokens: list[Token] = []
    line = 1
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        assert m is not None  # every character matches one alternative
        kind = m.lastgroup
        assert kind is not None
        if kind == "badstring":
            raise ConfError(path, line, "unterminated string (missing '\"' before the end of the line)")
        tok_text = m.group()
        tokens.append(Token(kind, tok_text, pos, line))
        if kind == "newline":
            line += 1
        pos = m.end()
    return tokens


# --------------------------------------------------------------------------- tree


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement: ``name args... ;``, ``name args... { block }`` or ``include "glob"``.

    ``args`` are the significant tokens between the name and the ``;`` or
    ``{`` (for ``include``: the string). ``block`` is None without braces.
    ``start``/``end`` are offsets of the first and one past the last
    character (the ``;``, the ``}``, or the include string); ``line`` is the
    name's line.
    """

    name: str
    name_token: Token
    args: tuple[Token, ...]
    block: tuple["Statement", ...] | None
    line: int
    start: int
    end: int
    terminator: Token | None = None  # the ';' (None with a block or for include)
    open_brace: Token | None = None
    close_brace: Token | None = None

    @property
    def is_include(self) -> bool:
        return self.name == "include"

    def children(self, name: str) -> list["Statement"]:
        """Statements named ``name`` directly in this statement's block (includes not followed)."""
        return [s for s in (self.block or ()) if s.name == name]


@dataclass(frozen=True, slots=True)
class ConfFile:
    """A parsed file: all ``tokens`` (trivia included) and the statement tree.

    ``within`` is the block keyword the file was parsed in (a file included
    from inside, e.g., an ``Interface`` block), None for a top-level file.
    """

    path: str
    tokens: tuple[Token, ...]
    statements: tuple[Statement, ...]
    within: str | None = None

    @property
    def text(self) -> str:
        return render(self)

    def find(self, name: str) -> list[Statement]:
        """Top-level statements named ``name`` (includes not followed)."""
        return [s for s in self.statements if s.name == name]


def render(conf: ConfFile) -> str:
    """The file's text: the concatenation of its tokens.

    Byte for byte the text given to :func:`parse` when nothing was edited.
    """
    return "".join(t.text for t in conf.tokens)


# --------------------------------------------------------------------------- keywords

_TRUE = frozenset({"enabled", "allow", "true"})
_FALSE = frozenset({"disabled", "deny", "block", "false"})
_ENTITIES = ("CN", "HA", "MN")
_IPSEC_TYPES = frozenset(
    {"HomeRegBinding", "Mh", "MobPfxDisc", "TunnelHomeTesting", "TunnelMh", "TunnelPayload", "ICMP", "any"}
)
_IPSEC_PROTOS = frozenset({"UseESP", "UseAH", "UseIPComp"})
_NUMBER_RE = re.compile(r"[0-9]+\Z")
_DECIMAL_RE = re.compile(r"[0-9]+\.[0-9]+\Z")
_ADDR_CHARS_RE = re.compile(r"[0-9A-Fa-f:]+\Z")


class _Args:
    """Cursor over a statement's argument tokens, for validation."""

    def __init__(self, st: Statement, path: str) -> None:
        self.st = st
        self.path = path
        self.toks = st.args
        self.i = 0
        # a CnBindingPolicySet entry's "name" is its address, i.e. file text
        self.label = st.name if st.name in _STATEMENT_WORDS else _c(st.name)

    def error(self, message: str, tok: Token | None = None) -> ConfError:
        if tok is None:
            tok = self.toks[self.i - 1] if self.i > 0 else self.st.name_token
        return ConfError(self.path, tok.line, message)

    def peek(self) -> Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _take(self, what: str) -> Token:
        tok = self.peek()
        if tok is None:
            last = self.toks[-1] if self.toks else self.st.name_token
            raise ConfError(self.path, last.line, f"{self.label}: missing {what} after {_q(last.text)}")
        self.i += 1
        return tok

    def _bad(self, tok: Token, what: str) -> ConfError:
        return ConfError(self.path, tok.line, f"{self.label}: expected {what}, got {_q(tok.text)}")

    def number(self, what: str = "a number", lo: int = 0, hi: int | None = None) -> int:
        tok = self._take(what)
        if tok.kind != "word" or not _NUMBER_RE.match(tok.text):
            raise self._bad(tok, what)
        digits = tok.text.lstrip("0") or "0"
        if len(digits) > 12:
            raise ConfError(self.path, tok.line, f"{self.label}: number {_q(tok.text)} is too large")
        value = int(digits)
        if value < lo or (hi is not None and value > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise ConfError(self.path, tok.line, f"{self.label}: {_c(tok.text)} is out of range ({rng})")
        return value

    def decimal(self) -> float:
        tok = self._take("a decimal number")
        if tok.kind != "word" or not _DECIMAL_RE.match(tok.text):
            raise self._bad(tok, "a decimal number with a dot (e.g. 1.0)")
        return float(tok.text)

    def boolean(self) -> bool:
        tok = self._take("a boolean")
        if tok.kind == "word" and tok.text in _TRUE:
            return True
        if tok.kind == "word" and tok.text in _FALSE:
            return False
        raise self._bad(tok, "a boolean (enabled|allow|true or disabled|deny|block|false)")

    def is_boolean_next(self) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "word" and (tok.text in _TRUE or tok.text in _FALSE)

    def string(self) -> str:
        tok = self._take("a quoted string")
        if tok.kind != "string":
            raise self._bad(tok, "a quoted string")
        return tok.value

    def choice(self, options: Iterable[str], what: str) -> str:
        tok = self._take(what)
        opts = tuple(options)
        if tok.kind != "word" or tok.text not in opts:
            raise self._bad(tok, f"{what} ({'|'.join(sorted(opts))})")
        return tok.text

    def punct(self, ch: str, what: str) -> None:
        tok = self._take(what)
        if not tok.is_punct(ch):
            raise self._bad(tok, what)

    def is_address_next(self) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "word" and ":" in tok.text

    def address(self) -> ipaddress.IPv6Address:
        tok = self._take("an IPv6 address")
        return _address(tok, self.path, self.label)

    def prefix(self) -> tuple[ipaddress.IPv6Address, int]:
        addr = self.address()
        self.punct("/", "'/' and a prefix length")
        plen = self.number("a prefix length", 0, 128)
        return addr, plen

    def prefix_list(self) -> list[tuple[ipaddress.IPv6Address, int]]:
        """``[ '(' prefix {',' prefix} ')' ]``"""
        out: list[tuple[ipaddress.IPv6Address, int]] = []
        tok = self.peek()
        if tok is None or not tok.is_punct("("):
            return out
        self.i += 1
        while True:
            out.append(self.prefix())
            tok = self._take("',' or ')'")
            if tok.is_punct(")"):
                return out
            if not tok.is_punct(","):
                raise self._bad(tok, "',' or ')'")

    def done(self) -> None:
        tok = self.peek()
        if tok is not None:
            raise ConfError(self.path, tok.line, f"{self.label}: unexpected {_q(tok.text)}")


def _address(tok: Token, path: str, where: str) -> ipaddress.IPv6Address:
    if tok.kind == "word" and ":" in tok.text and _ADDR_CHARS_RE.match(tok.text):
        try:
            return ipaddress.IPv6Address(tok.text)
        except ValueError:
            pass
    raise ConfError(path, tok.line, f"{where}: invalid IPv6 address {_q(tok.text)}")


def _v_entity(a: _Args) -> None:
    a.choice(_ENTITIES, "CN, HA or MN")


def _v_number(a: _Args) -> None:
    a.number()


def _v_bool(a: _Args) -> None:
    a.boolean()


def _v_decimal(a: _Args) -> None:
    a.decimal()


def _v_string(a: _Args) -> None:
    a.string()


def _v_lifetime(a: _Args) -> None:
    a.number("a lifetime in seconds", 0, MAX_BINDING_LIFETIME)


def _v_rr_lifetime(a: _Args) -> None:
    a.number("a lifetime in seconds", 0, MAX_RR_BINDING_LIFETIME)


def _v_movement_module(a: _Args) -> None:
    tok = a.peek()
    if tok is not None and tok.kind == "word" and tok.text == "internal":
        a.i += 1
    else:
        a.string()


def _v_bool_or_number(a: _Args) -> None:
    if a.is_boolean_next():
        a.boolean()
    else:
        a.number("a boolean or a status number")


def _v_prefix(a: _Args) -> None:
    a.prefix()


def _v_binding_acl(a: _Args) -> None:
    a.address()
    a.prefix_list()
    _v_bool_or_number(a)


def _v_named_block(a: _Args) -> None:
    a.string()


def _v_nothing(a: _Args) -> None:
    pass


def _v_address(a: _Args) -> None:
    a.address()


def _v_pref(a: _Args) -> None:
    a.number("an interface preference", 0, MAX_PREFERENCE)


def _v_home_address(a: _Args) -> None:
    addr, _plen = a.prefix()
    if addr.is_unspecified:
        raise a.error("HomeAddress: the home address must not be '::'")
    a.prefix_list()


def _v_ro_policy(a: _Args) -> None:
    if a.is_address_next():
        a.address()
    a.boolean()


def _v_ipsec_home_address(a: _Args) -> None:
    a.prefix()


def _v_ipsec_policy(a: _Args) -> None:
    a.choice(_IPSEC_TYPES, "an IPsec policy type")
    a.choice(_IPSEC_PROTOS, "UseESP, UseAH or UseIPComp")
    for _ in range(2):
        tok = a.peek()
        if tok is not None and tok.kind == "word" and tok.text in _IPSEC_PROTOS:
            a.i += 1
    for _ in range(2):
        tok = a.peek()
        if tok is not None and tok.kind == "word" and _NUMBER_RE.match(tok.text):
            a.number("a reqid")
    if a.peek() is not None:
        a.boolean()


# keyword -> (validator, block: "no" | "optional" | "required", context of its block)
_Spec = tuple[Callable[[_Args], None], str, str | None]
_TOP: dict[str, _Spec] = {
    "NodeConfig": (_v_entity, "no", None),
    "DebugLevel": (_v_number, "no", None),
    "DebugLogFile": (_v_string, "no", None),
    "NonVolatileBindingCache": (_v_bool, "no", None),
    "Interface": (_v_named_block, "optional", "Interface"),
    "SendMobPfxSols": (_v_bool, "no", None),
    "SendUnsolMobPfxAdvs": (_v_bool, "no", None),
    "SendMobPfxAdvs": (_v_bool, "no", None),
    "MaxMobPfxAdvInterval": (_v_number, "no", None),
    "MinMobPfxAdvInterval": (_v_number, "no", None),
    "DoRouteOptimizationCN": (_v_bool, "no", None),
    "DoRouteOptimizationMN": (_v_bool, "no", None),
    "HaMaxBindingLife": (_v_lifetime, "no", None),
    "MnMaxHaBindingLife": (_v_lifetime, "no", None),
    "MnMaxCnBindingLife": (_v_rr_lifetime, "no", None),
    "InitialBindackTimeoutFirstReg": (_v_decimal, "no", None),
    "InitialBindackTimeoutReReg": (_v_decimal, "no", None),
    "InitialSolicitTimer": (_v_decimal, "no", None),
    "InterfaceInitialInitDelay": (_v_decimal, "no", None),
    "MnHomeLink": (_v_named_block, "required", "MnHomeLink"),
    "UseMnHaIPsec": (_v_bool, "no", None),
    "KeyMngMobCapability": (_v_bool, "no", None),
    "UseMovementModule": (_v_movement_module, "no", None),
    "UsePolicyModule": (_v_string, "no", None),
    "DefaultBindingAclPolicy": (_v_bool_or_number, "no", None),
    "HaAcceptMobRtr": (_v_bool, "no", None),
    "HaServedPrefix": (_v_prefix, "no", None),
    "MobRtrUseExplicitMode": (_v_bool, "no", None),
    "BindingAclPolicy": (_v_binding_acl, "no", None),
    "UseCnBuAck": (_v_bool, "no", None),
    "IPsecPolicySet": (_v_nothing, "required", "IPsecPolicySet"),
    "MnUseAllInterfaces": (_v_bool, "no", None),
    "MnRouterProbes": (_v_number, "no", None),
    "MnRouterProbeTimeout": (_v_decimal, "no", None),
    "MnDiscardHaParamProb": (_v_bool, "no", None),
    "MnResetDhaadAtHome": (_v_bool, "no", None),
    "MnFlushAllAtHome": (_v_bool, "no", None),
    "OptimisticHandoff": (_v_bool, "no", None),
    "NoHomeReturn": (_v_bool, "no", None),
    "CnBindingPolicySet": (_v_nothing, "required", "CnBindingPolicySet"),
}

_BLOCKS: dict[str, dict[str, Callable[[_Args], None]]] = {
    "Interface": {"IfType": _v_entity, "MnIfPreference": _v_pref, "Tunnel": _v_bool},
    "MnHomeLink": {
        "HomeAgentAddress": _v_address,
        "HomeAddress": _v_home_address,
        "UseAltCoa": _v_bool,
        "MnRoPolicy": _v_ro_policy,
        "IsMobRtr": _v_bool,
        "HomePrefix": _v_prefix,
    },
    "IPsecPolicySet": {
        "HomeAgentAddress": _v_address,
        "HomeAddress": _v_ipsec_home_address,
        "IPsecPolicy": _v_ipsec_policy,
    },
    "CnBindingPolicySet": {},  # entries are "ADDR [ADDR] BOOL;", see _validate_cn_binding
}

#: Words that can only start a statement: seeing one among arguments means a missing ';'.
_STATEMENT_WORDS = frozenset(_TOP) | frozenset(k for b in _BLOCKS.values() for k in b) | {"include"}
_BLOCK_ONLY = frozenset(k for b in _BLOCKS.values() for k in b) - frozenset(_TOP)


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, tokens: list[Token], path: str) -> None:
        self.path = path
        self.sig = [t for t in tokens if not t.is_trivia]
        self.i = 0

    def peek(self) -> Token | None:
        return self.sig[self.i] if self.i < len(self.sig) else None

    def block(self, depth: int, open_tok: Token | None) -> tuple[list[Statement], Token | None]:
        stmts: list[Statement] = []
        while True:
            tok = self.peek()
            if tok is None:
                if open_tok is None:
                    return stmts, None
                raise ConfError(self.path, open_tok.line, "'{' is never closed (missing '}')")
            if tok.is_punct("}"):
                if open_tok is None:
                    raise ConfError(self.path, tok.line, "unbalanced '}' (no matching '{')")
                self.i += 1
                return stmts, tok
            stmts.append(self.statement(depth))

    def statement(self, depth: int) -> Statement:
        name = self.sig[self.i]
        self.i += 1
        if name.kind == "punct":
            what = "empty statement ';'" if name.text == ";" else _q(name.text)
            raise ConfError(self.path, name.line, f"unexpected {what} where an option name was expected")
        if name.kind == "string":
            raise ConfError(self.path, name.line, f"unexpected string {_q(name.text)} where an option name was expected")
        if name.text == "include":
            arg = self.peek()
            if arg is None or arg.kind != "string":
                raise ConfError(self.path, name.line, 'include needs a quoted file name: include "<glob>"')
            self.i += 1
            after = self.peek()
            if after is not None and after.is_punct(";"):
                raise ConfError(self.path, after.line, "include takes no ';'")
            return Statement("include", name, (arg,), None, name.line, name.start, arg.end)
        args: list[Token] = []
        while True:
            tok = self.peek()
            last = args[-1] if args else name
            if tok is None or tok.is_punct("}") or (tok.kind == "word" and tok.text in _STATEMENT_WORDS):
                raise ConfError(self.path, last.line, f"missing ';' after {_q(last.text)}")
            self.i += 1
            if tok.is_punct(";"):
                return Statement(name.text, name, tuple(args), None, name.line, name.start, tok.end, terminator=tok)
            if tok.is_punct("{"):
                if depth + 1 > MAX_BLOCK_DEPTH:
                    raise ConfError(self.path, tok.line, f"blocks nested more than {MAX_BLOCK_DEPTH} deep")
                inner, close = self.block(depth + 1, tok)
                assert close is not None
                return Statement(
                    name.text, name, tuple(args), tuple(inner), name.line, name.start, close.end,
                    open_brace=tok, close_brace=close,
                )
            args.append(tok)


def _validate(stmts: Iterable[Statement], path: str, within: str | None) -> None:
    for st in stmts:
        if st.is_include:
            continue
        if within is None:
            spec = _TOP.get(st.name)
            if spec is None:
                if st.name in _BLOCK_ONLY:
                    owners = " or ".join(sorted(b for b, kws in _BLOCKS.items() if st.name in kws))
                    raise ConfError(path, st.line, f"{st.name} is only valid inside a {owners} block")
                continue  # unknown option: kept as is, contents unchecked
            validator, block_rule, context = spec
        elif within == "CnBindingPolicySet":
            validator, block_rule, context = _validate_cn_binding, "no", None
        else:
            child = _BLOCKS.get(within, {}).get(st.name)
            if child is None:
                raise ConfError(path, st.line, f"unknown token {_q(st.name)} in {within} block")
            validator, block_rule, context = child, "no", None
        args = _Args(st, path)
        validator(args)
        args.done()
        if st.block is None:
            if block_rule == "required":
                raise ConfError(path, st.line, f"{st.name} needs a {{ ... }} block")
            continue
        if block_rule == "no":
            assert st.open_brace is not None
            raise ConfError(path, st.open_brace.line, f"{st.name} takes no {{ ... }} block (missing ';'?)")
        if not st.block:
            raise ConfError(path, st.line, f"empty {st.name} block")
        _validate(st.block, path, context)
        if st.name == "MnHomeLink" and not any(c.is_include for c in st.block) and not st.children("HomeAddress"):
            raise ConfError(path, st.line, "MnHomeLink block without HomeAddress")


def _validate_cn_binding(a: _Args) -> None:
    # The statement "name" is the remote home address.
    _address(a.st.name_token, a.path, "CnBindingPolicySet")
    if a.is_address_next():
        a.address()
    a.boolean()


def parse(text: str, path: str = "<string>", *, within: str | None = None) -> ConfFile:
    """Parse ``mip6d.conf`` text into a lossless :class:`ConfFile` (umip.md section 2).

    ``within``: parse the text as the contents of a block with that keyword
    (``"Interface"``, ``"MnHomeLink"``, ...): used for files included from
    inside a block. Includes are not followed (see :func:`load`).

    Raises :class:`ConfError` (``path``, line, message) for an unterminated
    string, unbalanced braces, a missing ``;``, an unknown token inside a
    known block, a bad value (address, prefix length > 128, boolean,
    ``MnIfPreference`` outside 0..10, decimal without dot, ...). A missing
    ``;`` is reported on the line of the token it should follow. Unknown
    top-level options are kept without checks.
    """
    if within is not None and within not in _BLOCKS:
        raise ValueError(f"unknown block context {within!r}")
    tokens = tokenize(text, path)
    parser = _Parser(tokens, path)
    stmts, _ = parser.block(0 if within is None else 1, None)
    _validate(stmts, path, within)
    return ConfFile(path, tuple(tokens), tuple(stmts), within)


# --------------------------------------------------------------------------- includes


@dataclass(frozen=True)
class LoadedConf:
    """A configuration file with its includes.

    ``files``: every parsed ``(path, ConfFile)``, main file first, then in
    the order mip6d reads them. ``includes`` maps ``(path, statement.start)``
    of each ``include`` statement to the files it matched (sorted, as
    ``glob(3)`` returns them). ``warnings``: patterns that matched nothing
    (mip6d: ``WARNING: No match found for provided include pattern``).
    """

    path: str
    files: tuple[tuple[str, ConfFile], ...]
    includes: Mapping[tuple[str, int], tuple[tuple[str, ConfFile], ...]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def main(self) -> ConfFile:
        return self.files[0][1]

    def conf(self, path: str) -> ConfFile:
        """The parsed file at ``path`` (KeyError when it was not loaded)."""
        for p, c in self.files:
            if p == path:
                return c
        raise KeyError(path)


def _include_pattern(including: str, pattern: str) -> str:
    if posixpath.isabs(pattern):
        return pattern
    base = posixpath.dirname(including)
    return posixpath.join(_globmod.escape(base), pattern) if base else pattern


def _includes_in(stmts: Iterable[Statement], within: str | None) -> Iterator[tuple[Statement, str | None]]:
    for st in stmts:
        if st.is_include:
            yield st, within
        elif st.block is not None:
            ctx = _TOP[st.name][2] if within is None and st.name in _TOP else None
            if within is None and ctx is not None:
                yield from _includes_in(st.block, ctx)
            # includes inside unknown blocks are not followed (their content is unchecked)


def load(path: str, read: Callable[[str], str], glob: Callable[[str], list[str]], *,
         main: ConfFile | None = None) -> LoadedConf:
    """Parse ``path`` and, recursively, the files its ``include`` statements match.

    ``read(path) -> str`` and ``glob(pattern) -> list[str]`` do the I/O
    (e.g. ``Path.read_text`` and ``glob.glob``). Relative include patterns
    are taken relative to the including file's directory. An ``OSError``
    from reading ``path`` itself propagates (mip6d: silent defaults for the
    default file, exit 1 for ``-c FILE``); a failure to read an included
    file, or more than :data:`MAX_INCLUDE_DEPTH` levels (include loops
    included), raises :class:`ConfError` at the include line. Parse errors
    raise :class:`ConfError` naming the file that contains them. A file
    included from inside a known block is parsed as that block's contents
    (``parse(..., within=...)``); includes inside unknown options' blocks
    are not followed. ``main``: ``path`` already parsed (e.g. the result of
    an edit), used instead of reading and parsing it again.
    """
    files: list[tuple[str, ConfFile]] = []
    cache: dict[tuple[str, str | None], ConfFile] = {}
    includes: dict[tuple[str, int], tuple[tuple[str, ConfFile], ...]] = {}
    warnings: list[str] = []

    if main is not None:
        cache[(path, None)] = main
        files.append((path, main))

    def get(p: str, within: str | None) -> ConfFile:
        key = (p, within)
        if key not in cache:
            cache[key] = parse(read(p), p, within=within)
            files.append((p, cache[key]))
        return cache[key]

    # a file reached again through another path is not walked again unless it is now
    # shallower (so the depth limit still holds); a file including one of its own
    # includers is a loop, reported at once
    shallowest: dict[tuple[str, str | None], int] = {}
    stack: list[str] = []

    def visit(p: str, conf: ConfFile, depth: int) -> None:
        key = (p, conf.within)
        if shallowest.get(key, MAX_INCLUDE_DEPTH + 1) <= depth:
            return
        shallowest[key] = depth
        stack.append(p)
        try:
            _visit(p, conf, depth)
        finally:
            stack.pop()

    def _visit(p: str, conf: ConfFile, depth: int) -> None:
        for st, ctx in _includes_in(conf.statements, conf.within):
            if depth >= MAX_INCLUDE_DEPTH:
                raise ConfError(p, st.line, f"more than {MAX_INCLUDE_DEPTH} levels of include (include loop?)")
            pattern = st.args[0].value
            matches = sorted(glob(_include_pattern(p, pattern)))
            if not matches:
                warnings.append(f"{p}:{st.line}: no file matches include pattern {pattern!r}")
            resolved: list[tuple[str, ConfFile]] = []
            for m in matches:
                try:
                    child = get(m, ctx)
                except OSError as e:
                    raise ConfError(p, st.line, f"cannot read included file {m}: {e.strerror or e}") from e
                resolved.append((m, child))
            includes[(p, st.start)] = tuple(resolved)
            for m, child in resolved:
                if m in stack:
                    raise ConfError(p, st.line, f"include loop: {m} includes itself through {p}")
                visit(m, child, depth + 1)

    main = get(path, None)
    visit(path, main, 0)
    return LoadedConf(path, tuple(files), includes, tuple(warnings))


def _as_loaded(conf: LoadedConf | ConfFile) -> LoadedConf:
    if isinstance(conf, LoadedConf):
        return conf
    return LoadedConf(conf.path, ((conf.path, conf),))


def _expand(loaded: LoadedConf, path: str, stmts: Iterable[Statement]) -> Iterator[tuple[str, Statement]]:
    """Statements with includes replaced by the statements of the files they matched."""
    for st in stmts:
        if st.is_include:
            for p, conf in loaded.includes.get((path, st.start), ()):
                yield from _expand(loaded, p, conf.statements)
        else:
            yield path, st


# --------------------------------------------------------------------------- queries


def _network(addr: str, plen: int) -> str:
    return ipaddress.IPv6Network(f"{addr}/{plen}", strict=False).compressed


def home_addresses(loaded: LoadedConf | ConfFile) -> list[HomeAddress]:
    """One :class:`HomeAddress` per ``MnHomeLink "if" { HomeAddress a/len ...; }`` block.

    umip.md section 2 / ``gram.y`` ``linksub``: ``HomeAgentAddress ::`` (or
    none) means DHAAD (``home_agent`` None); ``HomePrefix p/len`` gives
    ``home_prefix``, else the home address's own prefix; the last
    ``HomeAddress``/``HomeAgentAddress`` of a block wins. Addresses are
    ``ipaddress`` ``compressed``. ``origin`` is ``"PATH:LINE"`` of the
    ``MnHomeLink`` statement. A bare :class:`ConfFile` is read without its
    includes. Raises :class:`ConfError` for a block without ``HomeAddress``
    (possible only through includes).
    """
    loaded = _as_loaded(loaded)
    out: list[HomeAddress] = []
    for path, st in _expand(loaded, loaded.path, loaded.main.statements):
        if st.name != "MnHomeLink" or st.block is None:
            continue
        hoa: tuple[str, int] | None = None
        ha: str | None = None
        home_prefix: str | None = None
        for _, c in _expand(loaded, path, st.block):
            if c.name == "HomeAddress":
                hoa = (ipaddress.IPv6Address(c.args[0].text).compressed, int(c.args[2].text))
            elif c.name == "HomeAgentAddress":
                a = ipaddress.IPv6Address(c.args[0].text)
                ha = None if a.is_unspecified else a.compressed
            elif c.name == "HomePrefix":
                home_prefix = _network(c.args[0].text, int(c.args[2].text))
        if hoa is None:
            raise ConfError(path, st.line, "MnHomeLink block without HomeAddress")
        out.append(
            HomeAddress(
                address=hoa[0],
                prefixlen=hoa[1],
                home_agent=ha,
                home_link=st.args[0].value,
                home_prefix=home_prefix or _network(*hoa),
                origin=f"{path}:{st.line}",
            )
        )
    return out


def _interface_statements(loaded: LoadedConf) -> Iterator[tuple[str, Statement]]:
    for path, st in _expand(loaded, loaded.path, loaded.main.statements):
        if st.name == "Interface":
            yield path, st


def interface_preferences(loaded: LoadedConf | ConfFile) -> dict[str, int]:
    """``{ifname: MnIfPreference}`` for every ``Interface "ifname"`` statement.

    umip.md section 2: 1 is best, 0 unused; :data:`DEFAULT_PREFERENCE` (10)
    when the statement has no block (``Interface "n";``) or its block gives
    no ``MnIfPreference``. The first statement for a name wins (``policy.c``
    searches ``net_ifaces`` in order); within a block the last value wins.
    ``IfType`` is not taken into account.
    """
    loaded = _as_loaded(loaded)
    prefs: dict[str, int] = {}
    for path, st in _interface_statements(loaded):
        name = st.args[0].value
        if name in prefs:
            continue
        pref = DEFAULT_PREFERENCE
        for _, c in _expand(loaded, path, st.block or ()):
            if c.name == "MnIfPreference":
                pref = int(c.args[0].text)
        prefs[name] = pref
    return prefs


def node_config(loaded: LoadedConf | ConfFile) -> str:
    """``"CN"`` (mip6d's default), ``"MN"`` or ``"HA"``: the last ``NodeConfig``."""
    loaded = _as_loaded(loaded)
    value = "CN"
    for _, st in _expand(loaded, loaded.path, loaded.main.statements):
        if st.name == "NodeConfig":
            value = st.args[0].text
    return value


def use_all_interfaces(loaded: LoadedConf | ConfFile) -> bool:
    """``MnUseAllInterfaces`` (default disabled): unlisted interfaces count, with preference 10."""
    loaded = _as_loaded(loaded)
    value = False
    for _, st in _expand(loaded, loaded.path, loaded.main.statements):
        if st.name == "MnUseAllInterfaces":
            value = st.args[0].text in _TRUE
    return value


def interface_file(loaded: LoadedConf | ConfFile, name: str) -> str:
    """Path of the file holding the effective ``Interface "name"`` statement.

    The main file when no file has one: where :func:`set_interface_preference`
    should then add it. For many names use :func:`interface_files` (one pass).
    """
    return interface_files(loaded).get(name, _as_loaded(loaded).path)


def interface_files(loaded: LoadedConf | ConfFile) -> dict[str, str]:
    """``{ifname: path}``: the file holding each name's effective (first) ``Interface`` statement.

    Names without a statement are absent (:func:`set_interface_preferences`
    adds them to the main file). One pass over the statements.
    """
    loaded = _as_loaded(loaded)
    out: dict[str, str] = {}
    for path, st in _interface_statements(loaded):
        out.setdefault(st.args[0].value, path)
    return out


def preference_order_problem(prefs: Mapping[str, int]) -> str | None:
    """None when ``prefs`` (``{ifname: MnIfPreference}``) ranks the interfaces in use cleanly, else why not.

    "Cleanly": the values of 1 and above are exactly 1, 2, ... k for the k
    interfaces in use, each once (no tie: mip6d would pick between equals by
    the order of the file; no gap: the order shown and the order used would
    differ in meaning). 0 (unused) may be given to any number of interfaces;
    all 0 is not a tie or a gap (None; whether an interface must be in use is
    the caller's rule). Values are ints in 0..:data:`MAX_PREFERENCE` (umip.md
    section 2), so at most 10 interfaces can be in use.

    The message is plain English, one line, e.g. ``"eth1" and "wlan0" both
    have preference 2; no interface has preference 1: number the 2
    interfaces in use 1 to 2, each number once (0 = unused)``. Pure: no I/O.
    """
    bad = sorted(n for n, v in prefs.items()
                 if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_PREFERENCE)
    if bad:
        return ngettext("{names} has a preference outside 0..{max} ({value}); use 1 for the best interface, "
                        "0 for an unused one",
                        "{names} have a preference outside 0..{max} ({value}); use 1 for the best interface, "
                        "0 for an unused one", len(bad)).format(names=_names(bad), max=MAX_PREFERENCE,
                                                                value=repr(prefs[bad[0]]))
    by_value: dict[int, list[str]] = {}
    for name, value in prefs.items():
        if value >= 1:
            by_value.setdefault(value, []).append(name)
    used = sum(len(v) for v in by_value.values())
    if used > MAX_PREFERENCE:
        return _("{n} interfaces are in use, but preferences go only up to {max}: set the others to 0 (unused)").format(
            n=used, max=MAX_PREFERENCE)
    problems = []
    for value, names in sorted(by_value.items()):
        if len(names) > 1:
            problems.append((_("{names} both have preference {value}") if len(names) == 2
                             else _("{names} all have preference {value}")).format(names=_names(sorted(names)),
                                                                                   value=value))
    missing = [v for v in range(1, used + 1) if v not in by_value]
    if missing:
        text = _("no interface has preference {values}").format(values=_and([str(v) for v in missing], "or"))
        above = [_("{name} has {value}").format(name=_names([n]), value=v)
                 for v, names in sorted(by_value.items()) if v > used for n in sorted(names)]
        if above:
            more = [_("{n} more").format(n=len(above) - 6)] if len(above) > 6 else []
            text += f" ({_and(above[:6] + more)})"
        problems.append(text)
    if not problems:
        return None
    how = (_("give the interface in use preference 1") if used == 1
           else _("number the {n} interfaces in use 1 to {n}, each number once").format(n=used))
    return _("{problems}: {how} (0 = unused)").format(problems="; ".join(problems), how=how)


def _and(items: list[str], word: str = "and") -> str:
    """``a, b and c`` (``word``: "and" or "or", in the user's language)."""
    joint = _(" or ") if word == "or" else _(" and ")
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + joint + items[-1]


def _names(names: list[str], limit: int = 6) -> str:
    shown = [f'"{n}"' if n.isprintable() and '"' not in n else ascii(n) for n in names[:limit]]
    if len(names) > limit:
        shown.append(_("{n} more").format(n=len(names) - limit))
    return _and(shown)


# --------------------------------------------------------------------------- edits


def _splice(conf: ConfFile, edits: Iterable[tuple[int, int, str]]) -> ConfFile:
    """Apply ``(start, end, new text)`` edits (non-overlapping; at one offset in the given order)
    and re-parse once."""
    text = render(conf)
    pieces: list[str] = []
    pos = 0
    for start, end, new in sorted(edits, key=lambda e: (e[0], e[1])):
        if start < pos:
            raise ValueError("overlapping edits")
        pieces.append(text[pos:start])
        pieces.append(new)
        pos = end
    pieces.append(text[pos:])
    return parse("".join(pieces), conf.path, within=conf.within)


def replace_tokens(conf: ConfFile, edits: Mapping[Token, str]) -> ConfFile:
    """A new :class:`ConfFile` with the text of each given token replaced.

    Every other byte is kept. The result is re-parsed, so an edit that makes
    the file invalid raises :class:`ConfError`; a token not from ``conf``
    raises ``ValueError``.
    """
    own = set(conf.tokens)
    for tok in edits:
        if tok not in own:
            raise ValueError(f"token {tok.text!r} at offset {tok.start} is not from this file")
    return _splice(conf, ((t.start, t.end, new) for t, new in edits.items()))


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def _indent_at(text: str, offset: int) -> tuple[str, bool]:
    """(leading whitespace of the line holding ``offset``, whether ``offset`` starts that line's text)."""
    ls = _line_start(text, offset)
    prefix = text[ls:offset]
    stripped = prefix.lstrip(_WS_CHARS)
    indent = prefix[: len(prefix) - len(stripped)]
    return indent, stripped == ""


def set_interface_preference(conf: ConfFile, name: str, pref: int) -> ConfFile:
    """Set ``MnIfPreference`` of interface ``name`` in this file, changing as few bytes as possible.

    - the first ``Interface "name" { ... }`` holding ``MnIfPreference``: only
      the value token of its last ``MnIfPreference`` changes;
    - a block without it: ``MnIfPreference k;`` is added before the ``}``;
    - ``Interface "name";``: its ``;`` becomes ``{ MnIfPreference k; }``;
    - no statement: ``Interface "name" { MnIfPreference k; }`` is added on a
      new line after the last ``Interface`` statement (end of file if none).

    ``pref`` must be an ``int`` in 0..10 (umip.md section 2; 1 best, 0 unused)
    and ``name`` a non-empty interface name without quotes, whitespace or
    ``#``, else ``ValueError``. Use :func:`interface_file` to pick the file
    when includes are involved. Returns a new, re-parsed :class:`ConfFile`.
    """
    return set_interface_preferences(conf, {name: pref})


def set_interface_preferences(conf: ConfFile, prefs: Mapping[str, int]) -> ConfFile:
    """:func:`set_interface_preference` for every ``{name: pref}`` at once, with one re-parse.

    The result is the same as applying them one by one in the mapping's order
    (new ``Interface`` statements are added in that order); the time is
    linear in the file and the number of names. ``ValueError`` as there (for
    the first bad name or value, before anything is done); :class:`ConfError`
    when the result does not parse. An empty mapping returns ``conf``.
    """
    for name, pref in prefs.items():
        if isinstance(pref, bool) or not isinstance(pref, int) or not 0 <= pref <= MAX_PREFERENCE:
            raise ValueError(f"MnIfPreference must be an integer in 0..{MAX_PREFERENCE}, not {pref!r}")
        if not isinstance(name, str) or not name or any(ch in name for ch in '"#\n') or any(ch.isspace() for ch in name):
            raise ValueError(f"invalid interface name {name!r}")
    if conf.within is not None:
        raise ValueError("Interface statements are top-level; this file is included inside a block")
    text = render(conf)
    eol = "\r\n" if "\r\n" in text else "\n"
    ifaces = [s for s in conf.statements if s.name == "Interface"]
    first: dict[str, Statement] = {}
    for s in ifaces:
        first.setdefault(s.args[0].value, s)
    edits: list[tuple[int, int, str]] = []
    added: list[str] = []
    for name, pref in prefs.items():
        value = str(pref)
        st = first.get(name)
        if st is None:
            added.append(f'Interface "{name}" {{ MnIfPreference {value}; }}')
        elif st.block is None:
            assert st.terminator is not None
            edits.append((st.terminator.start, st.terminator.end, f" {{ MnIfPreference {value}; }}"))
        elif st.children("MnIfPreference"):
            tok = st.children("MnIfPreference")[-1].args[0]
            if tok.text != value:
                edits.append((tok.start, tok.end, value))
        else:
            edits.append(_add_to_block(text, st, value, eol))
    if added:
        edits.append(_add_statements(conf, text, ifaces, added, eol))
    if not edits:
        return conf
    return _splice(conf, edits)


def _add_to_block(text: str, st: Statement, value: str, eol: str) -> tuple[int, int, str]:
    """The edit adding ``MnIfPreference value;`` to the block of ``st`` (which has none)."""
    close = st.close_brace
    assert close is not None and st.block
    close_indent, close_starts_line = _indent_at(text, close.start)
    if close_starts_line:
        last = st.block[-1]
        child_indent, child_starts_line = _indent_at(text, last.start)
        if not child_starts_line or last.line == st.line:
            child_indent = close_indent + "    "
        ls = _line_start(text, close.start)
        return ls, ls, f"{child_indent}MnIfPreference {value};{eol}"
    return close.start, close.start, f"MnIfPreference {value}; "


def _add_statements(conf: ConfFile, text: str, ifaces: list[Statement], new: list[str],
                    eol: str) -> tuple[int, int, str]:
    """The edit adding the ``new`` statements after the last ``Interface`` one (end of file if none)."""
    if not ifaces:
        sep = "" if not text or text.endswith("\n") else eol
        return len(text), len(text), sep + "".join(f"{n}{eol}" for n in new)
    last = ifaces[-1]
    indent, _ = _indent_at(text, last.start)
    nl = text.find("\n", last.end)
    if nl < 0:
        return len(text), len(text), "".join(f"{eol}{indent}{n}" for n in new)
    at = nl + 1
    if any(s.start < at < s.end for s in conf.statements):
        # a statement spanning lines starts after ``last`` on its line: stay on that line
        return last.end, last.end, "".join(f" {n}" for n in new)
    return at, at, "".join(f"{indent}{n}{eol}" for n in new)



def unknown_options(loaded: LoadedConf | ConfFile) -> list[str]:
    """One line per top-level option that mainline mip6d does not know, ``"PATH:LINE: ..."``.

    The parser keeps them (patched builds add options), but mainline mip6d's
    grammar is closed (``src/gram.y``: a syntax error), and a misspelt
    ``MnHomeLink`` silently loses a home address: the UI shows these lines.
    """
    out = []
    loaded = _as_loaded(loaded)
    for path, st in _expand(loaded, loaded.path, loaded.main.statements):
        if st.name in _TOP or st.is_include:
            continue
        import difflib  # here: only a file with an unknown option needs it

        lower = {k.lower(): k for k in _TOP}
        guess = lower.get(st.name.lower()) or next(iter(difflib.get_close_matches(st.name, list(_TOP), 1, 0.8)), None)
        hint = _(" (did you mean {guess}?)").format(guess=guess) if guess else ""
        out.append(_("{where}: unknown option {name}{hint}; mainline mip6d refuses the whole file").format(
            where=f"{path}:{st.line}", name=st.name, hint=hint))
    return out
