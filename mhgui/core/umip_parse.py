"""Parsers for UMIP's virtual-terminal ``bul`` and ``bc`` replies (pure, never raise).

Formats: ``/work/shared/domain/umip.md`` section 1, i.e. UMIP 1.0 ``dump_bule``
(``src/bul.c``), ``bul_vt_dump`` and ``bcache_vt_dump`` (``src/vt.c``), plus
the MCoA fork's ``coa <CoA> BID <n> BidPriority <p> flags AH--`` line
(umip.md section 6). Both parsers accept a whole reply as read from the VT:
NUL bytes and ``mip6d>`` prompts are dropped, ANSI escapes ``ESC[...m``
(``fancy yes``) are stripped, leading/trailing whitespace of each line is
ignored, and verbose output (``verbose yes``) is understood.

Every line is either understood or returned in ``unknown_lines`` (an error
reply such as ``unknown command: "bul"`` lands there too); an entry without a
valid home and care-of address is dropped and its lines are returned as
unknown. Addresses become RFC 5952 text (``2001:db8:1:0:0:0:0:100`` ->
``2001:db8:1::100``).

State mapping (see :class:`~mhgui.core.bindings.BindingState`):

``bul`` (a mobile node's Binding Update List, RFC 6275 section 11.1):

- remaining lifetime ``(broken)`` / ``(error)``, or an ``UNREACH_ENTRY`` /
  ``NON_MIP_CN_ENTRY`` header -> ERROR;
- ``ack wait`` -> WAITING_ACK;
- ``ack ready`` with granted lifetime 0 (an acknowledged de-registration) or a
  negative remaining lifetime -> EXPIRED;
- ``ack ready`` with the H flag -> REGISTERED;
- ``ack ready`` without H (route optimisation with a CN): RR state ``started``
  -> WAITING_ACK, otherwise CACHED;
- no ``ack`` line -> UNKNOWN.

``bc`` (a Binding Cache, RFC 6275 section 9.1):

- lifetime ``(broken)`` / ``(error)`` -> ERROR;
- ``registered`` -> REGISTERED, ``cached`` -> CACHED (EXPIRED for either when
  the remaining lifetime is negative: past its lifetime, not yet removed);
- ``dying`` -> DYING; ``nonce-block`` -> EXPIRED (kept only so that nonces are
  not reused); ``dad`` -> WAITING_ACK (the HA runs DAD for the HoA before it
  acknowledges, RFC 6275 section 10.3.1; lifetime ``-``); ``(unknown)`` and
  anything else -> UNKNOWN.

``peer`` is the ``CN address`` of a ``bul`` entry (the HA for home
registrations) and the ``local`` address of a ``bc`` entry (the node that
printed it). ``interface`` comes from the verbose ``dev`` of ``bul`` (None when
UMIP printed an index ``(n)``); ``bc``'s verbose ``tunnel``/``link`` are the
HA's own interfaces and are not used.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from .bindings import Binding, BindingState

__all__ = ["ParseResult", "clean_reply", "parse_bc", "parse_bul", "strip_ansi"]

PROMPT = "mip6d>"
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_N = r"[0-9]{1,19}"
_SN = r"-?[0-9]{1,19}"

# --- bul
_BUL_HEADER = re.compile(r"==\s*(BUL_ENTRY|NON_MIP_CN_ENTRY|UNREACH_ENTRY|Unknown BUL entry)\s*==")
_HOME = re.compile(r"Home address\s+(\S+)")
_COA = re.compile(r"Care-of address\s+(\S+)")
_CN = re.compile(r"CN address\s+(\S+)")
_LIFE_HDR = re.compile(rf"lifetime\s*=\s*({_SN})\s*,\s*delay\s*=\s*({_SN})")
_FLAGS = re.compile(r"flags:(.*)")
_ACK = re.compile(r"ack (wait|ready)(?:\s+RR state\s+(.*))?")
_DEV = re.compile(r"dev\s+(\S+)(?:\s+last_coa\s+(\S+))?")
_NONCE_IDX = re.compile(rf"care-of nonce index\s+{_N}\s*home nonce index\s+{_N}")
_REM = r"-?[0-9]{1,19}|\(broken\)|\(error\)"
_LIFE_BUL = re.compile(
    rf"lifetime\s+({_REM})\s*/\s*({_SN})\s+seq\s+({_N})\s+resend\s+({_SN})"
    rf"\s+delay\s+({_SN})\s*\(after\s+({_SN})s\)(?:\s+expires\s+({_SN}|-|\(error\)))?"
)
_MPS = re.compile(rf"mps\s+({_SN}|\(broken\))\s*/\s*({_SN})")

_BUL_FLAG_WORDS = {
    "IP6_MH_BU_ACK": "A",
    "IP6_MH_BU_HOME": "H",
    "IP6_MH_BU_LLOCAL": "L",
    "IP6_MH_BU_KEYM": "K",
    "IP6_MH_BU_MR": "R",
}
#: RFC 6275 section 6.1.7 order (A H L K), then RFC 3963's R
_FLAG_ORDER = {"A": 0, "H": 1, "L": 2, "K": 3, "R": 4}

# --- bc
_BC_HOA = re.compile(rf"hoa\s+(\S+)(?:\s+nonce\s+{_N})?\s+status\s+(\S+)")
_BC_COA = re.compile(r"coa\s+(\S+)((?:\s+\S+)*)")
_BC_LOCAL = re.compile(r"local\s+(\S+)(?:\s+tunnel\s+(\S+))?(?:\s+link\s+(\S+))?")
_BC_LIFE = re.compile(
    rf"lifetime\s+({_SN}|-|\(broken\)|\(error\))\s*/\s*({_SN})\s+seq\s+({_N})\s+unreach\s+({_SN})(?:\s+mpa\b.*)?"
)
_BC_MNP = re.compile(rf"MNP:\s*(\S+)/({_N})")
_BC_FLAGS = re.compile(r"[A-Z-]{1,16}")

_BC_STATES = {
    "registered": BindingState.REGISTERED,
    "cached": BindingState.CACHED,
    "dying": BindingState.DYING,
    "nonce-block": BindingState.EXPIRED,
    "dad": BindingState.WAITING_ACK,
}


@dataclass
class ParseResult:
    """What a parser understood: ``bindings`` in the daemon's order, and every line it did not."""

    bindings: list[Binding] = field(default_factory=list)
    unknown_lines: list[str] = field(default_factory=list)


def strip_ansi(text: str) -> str:
    """Remove ``ESC[...m`` decorations (UMIP ``fancy yes``, ``fprintf_decor``)."""
    return _ANSI_RE.sub("", text)


def clean_reply(text: str) -> list[str]:
    """The reply's lines: escapes, NULs and prompts removed, ``\\r`` dropped, each line stripped."""
    text = strip_ansi(text).replace("\0", "\n")
    out = []
    for raw in text.split("\n"):
        line = raw.strip()
        while line.startswith(PROMPT):
            line = line[len(PROMPT):].lstrip()
        out.append(line)
    return out


def _addr(text: str) -> str | None:
    try:
        return ipaddress.IPv6Address(text).compressed
    except (ValueError, TypeError):
        return None


def _sorted_flags(flags: list[str]) -> tuple[str, ...]:
    seen: list[str] = []
    for f in flags:
        if f not in seen:
            seen.append(f)
    return tuple(sorted(seen, key=lambda f: (_FLAG_ORDER.get(f, 99), seen.index(f))))


def _remaining(text: str) -> int | None:
    return None if text.startswith("(") or text == "-" else int(text)


# --------------------------------------------------------------------------- bul


class _BulEntry:
    __slots__ = ("kind", "lines", "hoa", "coa", "peer", "lifetime_hdr", "flags", "ack", "rr",
                 "dev", "remaining", "broken", "lifetime", "seq")

    def __init__(self, kind: str, line: str) -> None:
        self.kind = kind
        self.lines = [line]
        self.hoa: str | None = None
        self.coa: str | None = None
        self.peer: str | None = None
        self.lifetime_hdr: int | None = None
        self.flags: list[str] = []
        self.ack: str | None = None
        self.rr: str | None = None
        self.dev: str | None = None
        self.remaining: int | None = None
        self.broken = False
        self.lifetime: int | None = None
        self.seq: int | None = None

    def feed(self, line: str) -> bool:
        """Take one line; False when it is not part of a bul entry."""
        if m := _HOME.fullmatch(line):
            self.hoa = _addr(m[1])
            return self.hoa is not None
        if m := _COA.fullmatch(line):
            self.coa = _addr(m[1])
            return self.coa is not None
        if m := _CN.fullmatch(line):
            self.peer = _addr(m[1])
            return self.peer is not None
        if m := _LIFE_HDR.fullmatch(line):
            self.lifetime_hdr = int(m[1])
            return True
        if m := _FLAGS.fullmatch(line):
            words = m[1].split()
            self.flags = [_BUL_FLAG_WORDS.get(w, w) for w in words]
            return True
        if m := _ACK.fullmatch(line):
            self.ack = m[1]
            self.rr = m[2].strip() if m[2] else None
            return True
        if m := _DEV.fullmatch(line):
            dev = m[1]
            if m[2] is not None and _addr(m[2]) is None:
                return False
            self.dev = None if dev.startswith("(") else dev
            return True
        if _NONCE_IDX.fullmatch(line):
            return True
        if m := _LIFE_BUL.fullmatch(line):
            self.broken = m[1].startswith("(")
            self.remaining = _remaining(m[1])
            self.lifetime = int(m[2])
            self.seq = int(m[3])
            return True
        if _MPS.fullmatch(line):
            return True
        return False

    def state(self) -> BindingState:
        if self.broken or self.kind in ("UNREACH_ENTRY", "NON_MIP_CN_ENTRY"):
            return BindingState.ERROR
        if self.ack == "wait":
            return BindingState.WAITING_ACK
        if self.ack != "ready":
            return BindingState.UNKNOWN
        lifetime = self.lifetime if self.lifetime is not None else self.lifetime_hdr
        if lifetime == 0 or (self.remaining is not None and self.remaining < 0):
            return BindingState.EXPIRED
        if "H" in self.flags:
            return BindingState.REGISTERED
        if self.rr == "started":
            return BindingState.WAITING_ACK
        return BindingState.CACHED

    def binding(self, now: float | None) -> Binding | None:
        if self.hoa is None or self.coa is None:
            return None
        return Binding(
            hoa=self.hoa,
            coa=self.coa,
            peer=self.peer,
            lifetime=self.lifetime if self.lifetime is not None else self.lifetime_hdr,
            lifetime_remaining=self.remaining,
            seq=self.seq,
            state=self.state(),
            flags=_sorted_flags(self.flags),
            interface=self.dev,
            source="bul",
            observed_at=now if self.remaining is not None else None,
        )


def _parse(text, now: float | None, header: re.Pattern, start) -> ParseResult:
    """Entries begin at a line matching ``header`` (``start(match, line)`` makes one); every
    other line is fed to the current entry, and what no entry takes is an unknown line."""
    result = ParseResult()
    entry = None

    def close() -> None:
        if entry is None:
            return
        b = entry.binding(now)
        if b is None:
            result.unknown_lines.extend(entry.lines)
        else:
            result.bindings.append(b)

    for line in clean_reply(text if isinstance(text, str) else ""):
        if m := header.fullmatch(line):
            close()
            entry = start(m, line)
            continue
        if not line:
            continue
        if entry is not None and entry.feed(line):
            entry.lines.append(line)
            continue
        result.unknown_lines.append(line)
    close()
    return result


def parse_bul(text: str, now: float | None = None) -> ParseResult:
    """Parse a ``bul`` reply (umip.md section 1); ``now`` is stored as each binding's ``observed_at``.

    Never raises; see the module docstring for the state mapping.
    """
    return _parse(text, now, _BUL_HEADER, lambda m, line: _BulEntry(m[1], line))


# --------------------------------------------------------------------------- bc


class _BcEntry:
    __slots__ = ("lines", "hoa", "status", "coa", "bid", "bid_priority", "flags", "local",
                 "remaining", "broken", "lifetime", "seq")

    def __init__(self, hoa: str | None, status: str, line: str) -> None:
        self.lines = [line]
        self.hoa = hoa
        self.status = status
        self.coa: str | None = None
        self.bid: int | None = None
        self.bid_priority: int | None = None
        self.flags: list[str] = []
        self.local: str | None = None
        self.remaining: int | None = None
        self.broken = False
        self.lifetime: int | None = None
        self.seq: int | None = None

    def feed(self, line: str) -> bool:
        if m := _BC_COA.fullmatch(line):
            coa = _addr(m[1])
            if coa is None:
                return False
            values: dict[str, str] = {}
            words = m[2].split()
            if len(words) % 2:
                return False
            for key, value in zip(words[0::2], words[1::2]):
                if key not in ("nonce", "BID", "BidPriority", "flags") or key in values:
                    return False
                values[key] = value
            for key in ("nonce", "BID", "BidPriority"):
                if key in values and not re.fullmatch(_N, values[key]):
                    return False
            if "flags" in values and not _BC_FLAGS.fullmatch(values["flags"]):
                return False
            self.coa = coa
            self.bid = int(values["BID"]) if "BID" in values else None
            self.bid_priority = int(values["BidPriority"]) if "BidPriority" in values else None
            self.flags = [c for c in values.get("flags", "") if c != "-"]
            return True
        if m := _BC_LOCAL.fullmatch(line):
            self.local = _addr(m[1])
            return self.local is not None
        if m := _BC_LIFE.fullmatch(line):
            self.broken = m[1].startswith("(")
            self.remaining = _remaining(m[1])
            self.lifetime = int(m[2])
            self.seq = int(m[3])
            return True
        if m := _BC_MNP.fullmatch(line):
            return _addr(m[1]) is not None
        return False

    def state(self) -> BindingState:
        if self.broken:
            return BindingState.ERROR
        st = _BC_STATES.get(self.status, BindingState.UNKNOWN)
        if st in (BindingState.REGISTERED, BindingState.CACHED) and self.remaining is not None and self.remaining < 0:
            return BindingState.EXPIRED
        return st

    def binding(self, now: float | None) -> Binding | None:
        if self.hoa is None or self.coa is None:
            return None
        return Binding(
            hoa=self.hoa,
            coa=self.coa,
            peer=self.local,
            bid=self.bid,
            bid_priority=self.bid_priority,
            lifetime=self.lifetime,
            lifetime_remaining=self.remaining,
            seq=self.seq,
            state=self.state(),
            flags=_sorted_flags(self.flags),
            interface=None,
            source="bc",
            observed_at=now if self.remaining is not None else None,
        )


def parse_bc(text: str, now: float | None = None) -> ParseResult:
    """Parse a ``bc`` (or ``nonce``) reply (umip.md section 1), MCoA ``BID`` lines included.

    One binding per ``hoa`` line (the MCoA fork prints one entry per BID).
    Never raises; see the module docstring for the state mapping.
    """
    return _parse(text, now, _BC_HOA, lambda m, line: _BcEntry(_addr(m[1]), m[2], line))
