"""The home agent setting of the engine's ``ConfigureHomeAgent`` and its check (module docstring of
:mod:`mhgui.engine.mn_dbus`), with the control API's error: pure, no D-Bus, so that the first-run form
(:mod:`mhgui.ui.firstrun_form`) holds what you type to the engine's own rules. Re-exported by
:mod:`mhgui.engine.mn_dbus`."""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import Iterable

from ..dbus_errors import ServiceFailure

__all__ = ["ERROR_PREFIX", "MAX_ADDRESS_CHARS", "ControlFailure", "HomeAgentSetting", "check_home_agent_setting"]

#: the control API's errors: ``io.github.mhgui.MHGui.MobileNode1.Error.<name>`` (mn_dbus.INTERFACE + ".Error.")
ERROR_PREFIX = "io.github.mhgui.MHGui.MobileNode1.Error."
MAX_ADDRESS_CHARS = 64  # longer than any IPv6 text (with a zone); refused before parsing


class ControlFailure(ServiceFailure):
    """Reported to the caller as the D-Bus error ``name`` (short names get :data:`ERROR_PREFIX`) with ``message``."""

    error_prefix = ERROR_PREFIX


def _invalid(message: str) -> ControlFailure:
    return ControlFailure("InvalidArgs", message)


def _address(text: object, what: str, version: int | None = None) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not isinstance(text, str) or not text:
        raise _invalid(f"{what}: an address is empty")
    if len(text) > MAX_ADDRESS_CHARS:
        raise _invalid(f"{what}: {ascii(text[:40])}... is not an IP address (too long)")
    try:
        a = ipaddress.ip_address(text)
    except ValueError:
        raise _invalid(f"{what}: {ascii(text)} is not an IP{'v' + str(version) if version else ''} address") from None
    if version is not None and a.version != version:
        raise _invalid(f"{what}: {text} is not an IPv{version} address")
    return a


def _unicast(a: ipaddress.IPv4Address | ipaddress.IPv6Address, what: str) -> None:
    if a.is_multicast or a.is_unspecified or a.is_loopback or a.is_link_local:
        raise _invalid(f"{what}: {a.compressed} is not a unicast address a home agent can have")


def _no_zone(a: ipaddress.IPv4Address | ipaddress.IPv6Address, what: str) -> None:
    if getattr(a, "scope_id", None) is not None:
        raise _invalid(f"{what}: {ascii(str(a))} has a zone; an address on the Internet or the home prefix "
                       "has none (give it without %...)")


@dataclass(frozen=True)
class HomeAgentSetting:
    """A validated ConfigureHomeAgent request (``key`` never shown in repr)."""

    addresses: tuple[str, ...]
    home_agent_address: str
    identity: str
    spi: int
    key: bytes = dataclasses.field(repr=False)


def check_home_agent_setting(addresses: object, home_agent_address: object, identity: object, spi: object,
                             key: object, *, home_addresses: Iterable[str] = ()) -> HomeAgentSetting:
    """Validate ConfigureHomeAgent's arguments (module docstring); ``InvalidArgs`` with one sentence.

    Addresses with a zone (``%eth0``) are refused: a zone means nothing for an address on the Internet or
    on the home prefix (RFC 4007 §11: zones are for non-global scopes). The home agent's address may not be
    one of ``home_addresses`` (the node's own, ``"addr"`` or ``"addr/len"``): RFC 6275 §2, the home agent
    is another node on the home link."""
    if not isinstance(addresses, list) or not addresses:
        raise _invalid("addresses: at least one address of the home agent is needed")
    if len(addresses) > 2:
        raise _invalid(f"addresses: {len(addresses)} addresses; give at most one IPv6 and one IPv4 address")
    outer: list[str] = []
    families: set[int] = set()
    for i, text in enumerate(addresses):
        a = _address(text, f"addresses[{i}]")
        _unicast(a, f"addresses[{i}]")
        _no_zone(a, f"addresses[{i}]")
        if a.version in families:
            raise _invalid(f"addresses[{i}]: a second IPv{a.version} address ({a.compressed}); give one per family")
        families.add(a.version)
        outer.append(a.compressed)
    ha = _address(home_agent_address, "home agent address", 6)
    _unicast(ha, "home agent address")
    _no_zone(ha, "home agent address")
    for h in home_addresses:
        try:
            own = ipaddress.IPv6Interface(str(h)).ip
        except ValueError:
            continue
        if own == ha:
            raise _invalid(f"home agent address: {ha.compressed} is this node's own home address; "
                           "give the home agent's address on the home prefix")
    if not isinstance(identity, str):
        raise _invalid("identity: must be a string")
    size = len(identity.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= 253:
        raise _invalid(f"identity: {size} bytes; a NAI (RFC 4283) is 1..253 bytes")
    if not identity.isprintable() or any(c.isspace() for c in identity):
        raise _invalid(f"identity: {ascii(identity[:40])} is not a NAI (printable, no whitespace)")
    if isinstance(spi, bool) or not isinstance(spi, int) or not 256 <= spi <= 0xFFFFFFFF:
        raise _invalid(f"spi: {spi!r} is reserved; an SPI is 256..4294967295 (RFC 4285: 0..255 are reserved)")
    if not isinstance(key, (bytes, bytearray)) or not 16 <= len(key) <= 64:
        n = len(key) if isinstance(key, (bytes, bytearray, list)) else "no"
        raise _invalid(f"key: {n} bytes; an MN-HA key is 16..64 bytes")
    return HomeAgentSetting(tuple(outer), ha.compressed, identity, int(spi), bytes(key))
