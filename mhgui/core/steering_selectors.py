"""Selectors of steering rules beyond the destination: protocol, ports and application (pure).

A rule with any of them is a *marked* rule: nftables marks the new connections it selects and a
policy rule sends marked packets through the interface's tables (:mod:`mhgui.core.steering_nft`);
a rule without them is realised with routes alone (:mod:`mhgui.core.steering`).

- ``protocol``: ``tcp`` or ``udp`` (None: either, when ports are given; any protocol otherwise);
- ``ports``: destination ports, 1..16 single ports or ranges (``443``, ``8000-8100``), 1..65535;
- ``application``: ``app:ID`` (every running and future scope of that application,
  :func:`mhgui.core.cgroups.matches`, in every user's session: a rule is node-wide, as destination
  rules are, and the steer action needs an administrator) or ``cgroup:PATH`` (one cgroup, relative
  to the cgroup2 root, and everything below it). A bare ``firefox`` is read as ``app:firefox``, a
  text with ``/`` as a cgroup path.

Errors are :class:`mhgui.core.steering.SteeringError`-compatible ``ValueError`` messages (one line).
"""

from __future__ import annotations

from typing import Iterable

from ..i18n import _
from .cgroups import check_app_id, check_cgroup_path

__all__ = ["MAX_PORT_RANGES", "PROTOCOLS", "check_form", "classify_destination", "describe_rule", "format_ports",
           "parse_application",
           "parse_ports", "parse_protocol"]

PROTOCOLS = ("tcp", "udp")
MAX_PORT_RANGES = 16


def parse_protocol(value: object) -> str | None:
    """``tcp``/``udp`` (any case), None for None or ""; ValueError for anything else."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.strip().lower() not in PROTOCOLS:
        raise ValueError(_("protocol {value} is not supported: choose tcp or udp (or none)").format(
            value=ascii(value)[:20]))
    return value.strip().lower()


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        raise ValueError(_("{value} is not a port number (1..65535)").format(value=ascii(text)[:20]))
    n = int(text)
    if not 1 <= n <= 65535:
        raise ValueError(_("port {n} is outside 1..65535").format(n=n))
    return n


def parse_ports(value: object) -> tuple[tuple[int, int], ...]:
    """Destination ports: a string (``"443, 8000-8100"``) or a list of such strings, as sorted, merged
    (first, last) ranges; ``()`` for None, "" or []. ValueError naming the bad part: not a number,
    outside 1..65535, a range whose end is before its start, more than 16 parts."""
    if value is None:
        return ()
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", ",").split(",") if p]
    elif isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value):
        parts = [p for x in value for p in x.replace(" ", ",").split(",") if p]
    else:
        raise ValueError(_("ports must be a string (443, 8000-8100) or a list of strings"))
    if len(parts) > MAX_PORT_RANGES:
        raise ValueError(_("at most {max} ports or port ranges, not {n}").format(max=MAX_PORT_RANGES, n=len(parts)))
    ranges = []
    for p in parts:
        lo, sep, hi = p.partition("-")
        a = _port(lo)
        b = _port(hi) if sep else a
        if b < a:
            raise ValueError(_("port range {range}: the end is before the start").format(range=p))
        ranges.append((a, b))
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return tuple(merged)


def format_ports(ports: Iterable[tuple[int, int]]) -> str:
    """``443,8000-8100``: the form :func:`parse_ports` reads back."""
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ports)


def parse_application(value: object) -> str | None:
    """``app:ID`` or ``cgroup:PATH`` (normalised), None for None or "". A bare id is ``app:``, a text
    containing ``/`` is ``cgroup:``. ValueError from :func:`mhgui.core.cgroups.check_app_id` /
    :func:`mhgui.core.cgroups.check_cgroup_path`."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(_("the application must be a string (app:ID or cgroup:PATH)"))
    text = value.strip()
    if text.startswith("app:"):
        return "app:" + check_app_id(text[4:])
    if text.startswith("cgroup:"):
        return "cgroup:" + check_cgroup_path(text[7:])
    if "/" in text:
        return "cgroup:" + check_cgroup_path(text)
    return "app:" + check_app_id(text)


_HOST_LABEL = __import__("re").compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def classify_destination(text: str) -> tuple[str, str]:
    """What the user typed as a destination: ``("", "")`` (empty), ``("network", PREFIX)``,
    ``("host", NAME)`` (a host name to resolve: RFC 1123 labels, at most 253 characters; a final
    dot is dropped). ValueError for anything else."""
    from .steering import SteeringError, parse_destination

    text = text.strip()
    if not text:
        return "", ""
    if all(c in "0123456789abcdefABCDEF:./" for c in text) and (":" in text or "/" in text
                                                                   or text.replace(".", "").isdigit()):
        try:
            return "network", str(parse_destination(text))
        except SteeringError as e:
            raise ValueError(str(e)) from None
    name = text[:-1] if text.endswith(".") else text
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(x) for x in name.split(".")) or name.isdigit():
        raise ValueError(_("{value} is not a host name, address or prefix").format(value=ascii(text)[:70]))
    return "host", name


def check_form(destination: str, ports: str, application: str, protocol: str) -> dict[str, str]:
    """The problems of a rule form, by field (``destination``, ``ports``, ``application``,
    ``protocol``, ``rule``: the whole); empty when the form can be sent. Pure: names are not resolved."""
    problems: dict[str, str] = {}
    for key, fn, value in (("destination", classify_destination, destination), ("ports", parse_ports, ports),
                           ("application", parse_application, application), ("protocol", parse_protocol, protocol)):
        try:
            fn(value)  # type: ignore[operator]
        except ValueError as e:
            problems[key] = str(e)
    if not problems and not destination.strip() and not ports.strip() and not application.strip() \
            and not protocol.strip():
        problems["rule"] = _("give a destination, ports, a protocol or an application")
    return problems


def describe_rule(rule: dict) -> str:
    """What a listed rule (the helper's ListSteeringRules entry) selects, in one line for the user:
    ``2001:db8::/32, tcp ports 443, application firefox``; the destinations alone for plain rules."""
    parts = [", ".join(rule.get("destinations") or ())] if rule.get("destinations") else []
    proto, ports, app = rule.get("protocol") or "", rule.get("ports") or "", rule.get("application") or ""
    if ports:
        parts.append(_("{protocol} ports {ports}").format(protocol=proto or _("TCP/UDP"), ports=ports))
    elif proto:
        parts.append(proto)
    if app:
        kind, _sep, value = app.partition(":")
        parts.append((_("application {app}") if kind == "app" else _("cgroup {path}")).format(app=value, path=value))
    if not rule.get("destinations") and (proto or ports or app):
        parts.insert(0, _("any destination"))
    return ", ".join(parts)
