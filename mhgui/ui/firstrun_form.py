"""The first-run dialog's home agent form, checked as you type (issue 15.3): the engine's own rules.

:func:`check_form` takes the form's texts and gives a :class:`HomeAgentForm` (what the engine's
``ConfigureHomeAgent`` takes, :mod:`mhgui.engine.mn_dbus`) or one sentence per problem. It must never
accept what the engine refuses (:func:`mhgui.engine.mn_dbus.check_home_agent_setting`; a test holds them
to that). :func:`prefill` turns the engine's ``GetStatus`` object into the form's starting texts. No Qt.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..engine.ha_setting import ControlFailure, HomeAgentSetting, check_home_agent_setting
from ..i18n import _

__all__ = ["HomeAgentForm", "Prefill", "check_form", "prefill"]


#: A checked form: what ``ConfigureHomeAgent`` takes, the engine's own setting (``key`` never in repr)
HomeAgentForm = HomeAgentSetting


def check_form(addresses: str, home_agent: str, identity: str, spi: str,
               key: bytes | None, home_addresses: Iterable[str] = ()) -> tuple[HomeAgentForm | None, list[str]]:
    """``(form, [])`` when every field is right, else ``(None, problems)``, one sentence each, in field order.

    The engine's rules (:func:`mhgui.engine.mn_dbus.check_home_agent_setting`): ``addresses`` 1..2 unicast
    IP addresses separated by commas or spaces, at most one per family, no zone; ``home_agent`` a unicast
    IPv6 address without a zone and not one of ``home_addresses`` (the node's own, from the engine's
    ``GetStatus``: RFC 6275 §2, the home agent is another node on the home link); ``identity`` a NAI
    (1..253 bytes, printable, no whitespace, RFC 4283); ``spi`` 256..4294967295 (RFC 4285: 0..255 are
    reserved); ``key`` 16..64 bytes.
    """
    home_addresses = tuple(home_addresses)  # read twice: here and by the engine's check
    problems: list[str] = []
    outer: list[str] = []
    words = [w for w in addresses.replace(",", " ").split() if w]
    if not words:
        problems.append(_("Home agent addresses: give its IPv6 and/or IPv4 address on the Internet"))
    elif len(words) > 2:
        problems.append(_("Home agent addresses: at most two, one IPv6 and one IPv4"))
    else:
        families: set[int] = set()
        for w in words:
            try:
                a = ipaddress.ip_address(w)
            except ValueError:
                problems.append(_("Home agent addresses: {text} is not an IP address").format(text=w[:60]))
                continue
            if a.is_multicast or a.is_unspecified or a.is_loopback or a.is_link_local or _zone(a):
                problems.append(_("Home agent addresses: {address} is not a unicast address it can be "
                                  "reached at").format(address=a.compressed))
            elif a.version in families:
                problems.append(_("Home agent addresses: two IPv{v} addresses; give one per family").format(
                    v=a.version))
            families.add(a.version)
            outer.append(a.compressed)
    ha = None
    try:
        ha = ipaddress.IPv6Address(home_agent.strip())
        if ha.is_multicast or ha.is_unspecified or ha.is_loopback or ha.is_link_local or _zone(ha):
            problems.append(_("Home agent address: {address} is not a unicast address a home agent can have").format(
                address=ha.compressed))
        elif ha in _addresses(home_addresses):
            problems.append(_("Home agent address: {address} is this node's own home address; give the home "
                              "agent's").format(address=ha.compressed))
    except ValueError:
        problems.append(_("Home agent address: its IPv6 address on the home prefix, e.g. 2001:db8:1::1"))
    ident = identity.strip()
    size = len(ident.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= 253 or not ident.isprintable() or any(c.isspace() for c in ident):
        problems.append(_("Identity: this node's name at the home agent, a NAI such as laptop@example.org "
                          "(1..253 bytes, no spaces)"))
    n = None
    try:
        n = int(spi.strip(), 0)
    except ValueError:
        pass
    if n is None or not 256 <= n <= 0xFFFFFFFF:
        problems.append(_("SPI: a number from 256 to 4294967295, the same as in the home agent's ha.toml"))
    if key is None:
        problems.append(_("Key: read the key file the home agent's administrator gave you, or generate one"))
    elif not 16 <= len(key) <= 64:
        problems.append(_("Key: {n} bytes; an MN-HA key is 16..64 bytes").format(n=len(key)))
    if problems or ha is None or n is None or key is None:
        return None, problems
    try:  # the engine's own check makes the form: it cannot accept what the engine refuses
        return check_home_agent_setting(outer, ha.compressed, ident, n, bytes(key),
                                        home_addresses=home_addresses), []
    except ControlFailure as e:
        return None, [e.message]


def _zone(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """``a`` has a zone (``%eth0``): meaningless for an address on the Internet or the home prefix."""
    return getattr(a, "scope_id", None) is not None


def _addresses(texts: Iterable[Any]) -> set[ipaddress.IPv6Address]:
    """The IPv6 addresses among ``texts`` (``"2001:db8::1"`` or ``"2001:db8::1/64"``); the rest ignored."""
    out = set()
    for t in texts:
        try:
            out.add(ipaddress.IPv6Interface(str(t).strip()).ip)
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class Prefill:
    """The form's starting texts from the engine's settings: ``addresses`` (its outer addresses, comma
    separated), ``home_agent``, ``identity``, ``port`` (UDP, None: not said) and ``home_addresses`` (the
    node's own, for :func:`check_form`). Never the key: the engine does not give it out."""

    addresses: str = ""
    home_agent: str = ""
    identity: str = ""
    port: int | None = None
    home_addresses: tuple[str, ...] = ()


def prefill(status: Mapping[str, Any] | None) -> Prefill:
    """:class:`Prefill` from the engine's ``GetStatus`` object (:mod:`mhgui.engine.mn_dbus`: ``identity``,
    ``home_agent``, ``home_agent_addresses``, ``port``, ``home_addresses``). Anything missing or of the
    wrong type is left empty (a hostile or older engine cannot put anything but text into the form)."""
    if not isinstance(status, Mapping):
        return Prefill()

    def text(k: str, limit: int = 260) -> str:
        v = status.get(k)
        return v.strip()[:limit] if isinstance(v, str) and v.isprintable() else ""

    outer = status.get("home_agent_addresses")
    outer = [a.strip() for a in outer if isinstance(a, str) and a.strip().isprintable()][:2] \
        if isinstance(outer, list) else []
    port = status.get("port")
    port = port if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535 else None
    homes = status.get("home_addresses")
    homes = tuple(h for h in homes if isinstance(h, str))[:64] if isinstance(homes, list) else ()
    return Prefill(", ".join(a[:60] for a in outer), text("home_agent", 60), text("identity"), port, homes)
