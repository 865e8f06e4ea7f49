"""The application's own settings: a small TOML file.

Pure: the caller reads the file; the user writes it (mhgui never does). Format (read with the
stdlib ``tomllib``)::

    allow_ula = false                 # count ULA (fc00::/7) addresses as CoA candidates
    mip6d_conf = "/etc/mip6d.conf"    # optional: the mobility daemon's file

    [[home_address]]                  # one table per home address
    address = "2001:db8:1::100/64"    # required, address/prefix length
    home_agent = "2001:db8:1::1"      # optional; "::" = dynamic discovery (DHAAD)
    home_prefix = "2001:db8:1::/64"   # optional; default: the address's own prefix
    home_link = "eth0"                # optional interface name

Home addresses also come from ``mip6d.conf`` (:mod:`mhgui.core.mip6conf`);
:func:`merge_home_addresses` combines both, the daemon's file winning.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from mhgui.core.model import HomeAddress
from mhgui.i18n import _

__all__ = [
    "Settings",
    "SettingsError",
    "merge_home_addresses",
    "parse_settings",
]

#: ``IFNAMSIZ - 1`` (``include/uapi/linux/if.h``).
_IFNAME_MAX = 15


class SettingsError(ValueError):
    """Malformed settings: ``str()`` is ``"PATH:LINE: message"`` (``"PATH: message"`` without a line)."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        super().__init__(path, line, message)
        self.path = path
        self.line = line
        self.message = message

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


@dataclass
class Settings:
    """The application's settings (see the module docstring for the file format).

    ``home_addresses`` have ``origin="settings"``; ``allow_ula``: count
    unique local addresses as care-of address candidates; ``mip6d_conf``:
    path of UMIP's configuration file, None for none.
    """

    home_addresses: list[HomeAddress] = field(default_factory=list)
    allow_ula: bool = False
    mip6d_conf: str | None = None


# --------------------------------------------------------------------------- reading

_TOP_KEYS = ("allow_ula", "mip6d_conf", "home_address")
_HOA_KEYS = ("address", "home_agent", "home_prefix", "home_link")
_POS_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def type_name(value: Any) -> str:
    """How a TOML value's type is named in messages ("an integer", "a table"...)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    import datetime  # here: only a settings file's wrong types reach this (start-up, issue 14)

    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return "a date/time"
    return type(value).__name__


def _show(value: str, limit: int = 60) -> str:
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)


def _locate(text: str, key: str | None, index: int | None) -> int | None:
    return locate_line(text, "home_address", key, index)


def locate_line(text: str, array: str, key: str | None, index: int | None) -> int | None:
    """Best-effort line of ``key`` at the top level (``index`` None) or in the ``index``-th
    ``[[ARRAY]]`` table (``key`` None: the table's header line), in TOML ``text``; None: not found."""
    a = re.escape(array)
    header = re.compile(r"\s*\[")
    aot = re.compile(rf"""\s*\[\[\s*(?:{a}|"{a}"|'{a}')\s*\]\]""")
    keyre = None
    if key is not None:
        k = re.escape(key)
        keyre = re.compile(rf"""\s*(?:{k}|"{k}"|'{k}')\s*[=.]""")
    table: int | None = None  # None: top level; -1: another table; n: the n-th [[ARRAY]]
    count = -1
    for lineno, line in enumerate(text.split("\n"), 1):
        if aot.match(line):
            count += 1
            table = count
            if key is None and index == count:
                return lineno
            continue
        if header.match(line):
            if index is None and keyre is not None and re.match(rf"\s*\[\s*{re.escape(key or '')}\s*[\].]", line):
                return lineno  # [key] or [key.sub]: an unknown top-level table
            table = -1
            continue
        if keyre is not None and keyre.match(line) and table == index:
            return lineno
    if index is not None:
        # the inline form: ARRAY = [ { k = v, ... }, ... ], one entry a line (as tomli-w writes it)
        start = re.compile(rf"""\s*(?:{a}|"{a}"|'{a}')\s*=\s*\[""")
        inside, count = False, -1
        for lineno, line in enumerate(text.split("\n"), 1):
            if not inside:
                inside = bool(start.match(line))
                line = line.split("[", 1)[1] if inside else line
            if inside and "{" in line:
                count += 1
                if count == index:
                    return lineno
            if inside and line.strip().startswith("]"):
                break
        if key is not None:
            return locate_line(text, array, None, index)  # at least the table
    return None


def _address_with_len(value: str) -> tuple[str, int]:
    if "/" not in value:
        raise ValueError(_("needs a prefix length, e.g. 2001:db8:1::100/64"))
    if "%" in value:
        raise ValueError(_("a home address has no zone (%...): it is not link-local"))
    iface = ipaddress.IPv6Interface(value)
    if iface.ip.is_unspecified:
        raise ValueError(_("'::' is not a home address"))
    return iface.ip.compressed, iface.network.prefixlen


def parse_settings(text: str, path: str) -> Settings:
    """Parse the settings file's ``text``; ``path`` is only used in errors.

    Raises :class:`SettingsError` (path, line or None, one-line message) for
    malformed TOML, unknown keys, wrong types, invalid addresses or
    interface names, and the same home address listed twice. Addresses are
    normalised (``ipaddress`` ``compressed``; ``home_prefix`` to its network).
    """
    import tomllib  # here: most runs have no settings file (`mhctl status` starts faster, issue 14)

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _POS_RE.search(msg)
        line = None
        if m:
            line = int(m.group(1))
            msg = f"{msg[: m.start()]} (column {m.group(2)})"
        raise SettingsError(path, line, _("invalid TOML: {why}").format(why=msg)) from None

    def fail(message: str, key: str | None, index: int | None = None) -> SettingsError:
        return SettingsError(path, _locate(text, key, index), message)

    for key in data:
        if key not in _TOP_KEYS:
            raise fail(_("unknown setting {key} (known: {known})").format(key=_show(key), known=", ".join(_TOP_KEYS)),
                       key)

    allow_ula = data.get("allow_ula", False)
    if not isinstance(allow_ula, bool):
        raise fail(_("allow_ula must be true or false, not {type}").format(type=type_name(allow_ula)), "allow_ula")

    mip6d_conf = data.get("mip6d_conf")
    if mip6d_conf is not None:
        if not isinstance(mip6d_conf, str):
            raise fail(_("mip6d_conf must be a string (a file path), not {type}").format(type=type_name(mip6d_conf)),
                       "mip6d_conf")
        if not mip6d_conf or "\0" in mip6d_conf:
            raise fail(_("mip6d_conf must be a non-empty file path"), "mip6d_conf")

    tables = data.get("home_address", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise fail(
            _("home_address must be an array of tables ([[home_address]]), not {type}").format(type=type_name(tables)),
            "home_address",
        )
    hoas: list[HomeAddress] = []
    seen: dict[str, int] = {}
    for i, table in enumerate(tables):
        where = _("home_address #{n}").format(n=i + 1)
        for key in table:
            if key not in _HOA_KEYS:
                raise fail(_("{where}: unknown key {key} (known: {known})").format(
                    where=where, key=_show(key), known=", ".join(_HOA_KEYS)), key, i)
        for key in _HOA_KEYS:
            if key in table and not isinstance(table[key], str):
                raise fail(_("{where}: {key} must be a string, not {type}").format(
                    where=where, key=key, type=type_name(table[key])), key, i)
        if "address" not in table:
            raise fail(_("{where}: missing 'address' (e.g. address = \"2001:db8:1::100/64\")").format(where=where),
                       None, i)
        try:
            address, prefixlen = _address_with_len(table["address"])
        except ValueError as e:
            raise fail(_("{where}: invalid address {address}: {why}").format(
                where=where, address=_show(table["address"]), why=e), "address", i) from None
        home_agent: str | None = None
        if "home_agent" in table:
            try:
                ha = ipaddress.IPv6Address(table["home_agent"])
            except ValueError:
                raise fail(
                    _("{where}: invalid home_agent {value} (an IPv6 address, or '::' for DHAAD)").format(
                        where=where, value=_show(table["home_agent"])),
                    "home_agent",
                    i,
                ) from None
            home_agent = None if ha.is_unspecified else ha.compressed
        home_prefix: str | None = None
        if "home_prefix" in table:
            try:
                if "/" not in table["home_prefix"]:
                    raise ValueError
                home_prefix = ipaddress.IPv6Network(table["home_prefix"], strict=False).compressed
            except ValueError:
                raise fail(
                    _("{where}: invalid home_prefix {value} (e.g. 2001:db8:1::/64)").format(
                        where=where, value=_show(table["home_prefix"])),
                    "home_prefix",
                    i,
                ) from None
        home_link: str | None = table.get("home_link")
        if home_link is not None and (
            not home_link
            or len(home_link) > _IFNAME_MAX
            or home_link in (".", "..")
            or any(ch.isspace() or ch in '/:"#' or not ch.isprintable() for ch in home_link)
        ):
            raise fail(_("{where}: invalid interface name {name} for home_link").format(where=where, name=_show(home_link)),
                       "home_link", i)
        if address in seen:
            raise fail(_("{where}: home address {address} is already listed in home_address #{n}").format(
                where=where, address=address, n=seen[address]), "address", i)
        seen[address] = i + 1
        hoas.append(
            HomeAddress(
                address=address,
                prefixlen=prefixlen,
                home_agent=home_agent,
                home_link=home_link,
                home_prefix=home_prefix,
                origin="settings",
            )
        )
    return Settings(home_addresses=hoas, allow_ula=allow_ula, mip6d_conf=mip6d_conf)


# --------------------------------------------------------------------------- merging


def _differences(winner: HomeAddress, loser: HomeAddress) -> list[str]:
    """What of ``loser`` is ignored when ``winner`` is used (unset fields never conflict)."""
    out = []
    if loser.home_agent is not None and loser.home_agent != winner.home_agent:
        out.append(_("home agent {address}").format(address=loser.home_agent))
    if loser.prefixlen != winner.prefixlen:
        out.append(_("prefix length /{n}").format(n=loser.prefixlen))
    if loser.home_prefix is not None and loser.network != winner.network:
        out.append(_("home prefix {prefix}").format(prefix=loser.network.compressed))
    if loser.home_link is not None and winner.home_link is not None and loser.home_link != winner.home_link:
        out.append(_("home link {name}").format(name=loser.home_link))
    return out


def merge_home_addresses(
    from_daemon: list[HomeAddress], from_settings: list[HomeAddress]
) -> tuple[list[HomeAddress], list[str]]:
    """Combine the daemon's home addresses with the app settings' ones.

    Returns ``(merged, notes)``: the daemon's addresses first (its order),
    then settings-only ones. For the same address the daemon's entry wins;
    a conflict (the losing entry sets a different home agent, prefix length,
    home prefix or home link) adds a one-line note for the UI such as
    ``"2001:db8:1::100: mip6d.conf (/etc/mip6d.conf:12) overrides the app
    settings (home agent 2001:db8:1::2 ignored)"``. Duplicates that agree
    are merged silently; within one source the first entry wins and a
    disagreeing repeat gets a note too. Fields the winner lacks are not
    filled in from the loser.
    """
    merged: list[HomeAddress] = []
    index: dict[str, tuple[int, str]] = {}  # address -> (position in merged, source)
    notes: list[str] = []
    for source, entries in (("mip6d.conf", from_daemon), ("settings", from_settings)):
        for h in entries:
            if h.address not in index:
                index[h.address] = (len(merged), source)
                merged.append(h)
                continue
            pos, kept_source = index[h.address]
            kept = merged[pos]
            diffs = _differences(kept, h)
            if not diffs:
                continue
            ignored = ", ".join(diffs)
            if kept_source != source:
                notes.append(_("{hoa}: mip6d.conf ({origin}) overrides the app settings ({ignored} ignored)").format(
                    hoa=h.address, origin=kept.origin, ignored=ignored))
            elif source == "mip6d.conf":
                notes.append(_("{hoa}: listed twice in mip6d.conf; {origin} is used ({other}: {ignored} ignored)").format(
                    hoa=h.address, origin=kept.origin, other=h.origin, ignored=ignored))
            else:
                notes.append(_("{hoa}: listed twice in the app settings; the first entry is used ({ignored} ignored)")
                             .format(hoa=h.address, ignored=ignored))
    return merged, notes
