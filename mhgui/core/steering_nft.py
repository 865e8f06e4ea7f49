"""nftables for marked steering rules (protocol, ports, application): the ruleset text, pure.

Kernel design (completes :mod:`mhgui.core.steering`): a marked rule's new connections are marked
in the ``output`` hook and leave through the slot's *source table* (``fwmark SLOT<<24/0x3f000000
lookup SOURCE-TABLE``, priority :data:`mhgui.core.steering.MARK_PRIORITY`); the socket chose its
source address before any packet, so the connection is masqueraded to the interface's address
(``postrouting``). Only new connections are chosen; the choice is kept in the conntrack mark, so a
rule added or removed later does not move a running connection while its interface keeps a marked
rule (its slot's restore and masquerade lines and fwmark policy rule stay). When the interface's last
marked rule goes, they go too: the connection's next packets take the default path with the address
the socket chose, and the peer resets it (as destination rules: say so before removing)::

    table inet mhgui {
      set a_ID_5 { typeof socket cgroupv2 level 5; }           # application rules: their scopes
      chain out { type route hook output priority mangle; policy accept;
        ct state new jump select
        ct mark & 0x3f000000 == 0x01000000 meta mark set meta mark & 0xc0ffffff | 0x01000000  # per slot
      }
      chain select {                                          # first matching rule wins
        fib daddr type { local, broadcast, multicast, anycast } return
        ip6 daddr { fe80::/10, ff00::/8 } return
        meta oifkind "tun" fib saddr . oif type local return  # home addresses (below)
        meta nfproto ipv6 ip6 daddr { 2001:db8::/32 } tcp dport { 443 } socket cgroupv2 level 5 @a_ID_5
            ct mark set ct mark & 0xc0ffffff | 0x01000000 counter return comment "mhgui:ID"
      }
      chain post { type nat hook postrouting priority srcnat; policy accept;
        meta mark & 0x3f000000 == 0x01000000 oifname "wlan0" fib saddr . oif type != local masquerade
      }
    }

Home addresses (the mobility contract)
--------------------------------------

A marked rule never takes a connection whose source is a home address: such a connection must
survive moves, and masquerading it to a care-of address would send it natively, outside the home
agent's tunnel and the engine's encryption, and end it at the next move (destination rules never
move it either: their policy rules match only the interface's own sources). The ``select`` chain
returns first for a packet whose **original route leaves through a TUN device** (``meta oifkind
"tun"``) **and whose source is one of that device's own addresses** (``fib saddr . oif type
local``): in a ``type route hook output`` chain the packet's route is already chosen and ``oif`` is
its device, so this is the engine's home address (on its TUN, e.g. ``mhmn0``, where rule 28085
``from HoA lookup 4191`` sends it: :mod:`mhgui.engine.routing`). No per-address or per-device
bookkeeping: nothing to update when a home address or the engine comes or goes. ``meta oifkind``
needs Linux 5.1 and nft 0.9.1. Verified in ``tests/test_steering_hoa.py``: a socket bound to the HoA
keeps the tunnel and survives a move under a ``tcp`` rule; without this line the rule masqueraded it
to the CoA.

Why not more, or less:

- *Unbound sockets.* nft sees a packet after ``connect()`` chose its source. On the engine's node the
  HoA is the default source (rule 28100), so an unbound socket with no destination rule gets the HoA
  and is then a HoA connection like one bound to it: ``getsockname()`` and the flow list say HoA,
  and nft cannot tell them apart (``socket wildcard`` is 0 for both after ``connect()``; only an
  unconnected UDP ``sendto()`` keeps it 1, checked on kernel 6.18). So marked rules leave every
  HoA-sourced connection in the tunnel. This is the rule destination rules follow too ("a
  connection whose source is a home address is never moved"); the difference is *when* they act:
  a destination rule's lookup happens inside ``connect()`` (``FIB_RULE_FIND_SADDR``), so it gives an
  unbound socket the CoA itself; a mark comes too late for that. On the engine's node a marked rule
  therefore takes sockets bound to a care-of address, connections whose CoA a destination rule or
  the main table chose, and everything on nodes whose default source is not a home address. To
  steer unbound sockets by protocol and port before their source is chosen, policy rules with
  ``ipproto``/``dport`` selectors and ``FIND_SADDR`` would do it, since ``connect()``'s lookup carries
  the protocol and ports (tried in the engine's lab: ``from COA-PREFIX ipproto tcp dport 7000-7999
  lookup SOURCE-TABLE`` with ``FIND_SADDR`` gave an unbound socket the CoA for port 7777 and left a
  HoA-bound socket and port 8888 alone; not done yet: it belongs to the planner). An application
  cannot be matched there (fib rules have no cgroup selector).
- *Other TUN devices.* A VPN on a TUN device (OpenVPN) is treated alike: a connection sourced from
  its address stays in it (the VPN's contract is the same). WireGuard, ``ip6tnl`` and other kinds
  are not skipped (a DS-Lite softwire is an ``ip6tnl`` uplink that marked rules may take).
- *UMIP.* Its home address stays on the home interface and its rule 1001 ``from HoA lookup 252``
  comes before :data:`~mhgui.core.steering.MARK_PRIORITY`, so away from home a marked HoA packet is
  still routed into UMIP's tunnel (and ``post`` masquerades only on the slot's interface). At home the
  HoA is the home link's own address and looks like any address of an uplink: a marked rule for
  another uplink takes it (nft cannot see ``IFA_F_HOMEADDRESS``; a set of home addresses kept from
  netlink would be needed: not done).

Marks shared with other software
--------------------------------

The packet and conntrack mark are one 32-bit word for all software on the node. mhgui uses only
the bits :data:`MARK_MASK` (``0x3f000000``, bits 24..29, value ``slot << 24``: the named constant is
:data:`mhgui.core.steering.MARK_MASK`, with :func:`~mhgui.core.steering.mark_of_slot`'s shift) and
keeps the others (:data:`KEEP_MASK`) when it sets them; its fwmark policy rules match
``SLOT<<24/MARK_MASK``. Software that sets *whole* marks still collides. Known cases (their public
sources): Mullvad marks its own tunnel traffic and excluded apps with ``meta mark set 0x6d6f6c65``
("mole": bits 24..29 = 45, i.e. mhgui's slot 45, whose policy rule would take them) and ``ct mark set
0x00000f41`` (which clears mhgui's conntrack bits of that connection), and its rule 5199 ``not fwmark
0x6d6f6c65 lookup 1836018789`` comes before :data:`~mhgui.core.steering.MARK_PRIORITY`, so while it is
connected its table takes mhgui's marked packets first (steering yields to the VPN). Tailscale uses
``0x80000/0xff0000`` (bits 16..23) and wg-quick a full-word fwmark 51820 (0xca6c) only on its own
socket: no overlap. To move mhgui's bits, change ``MARK_MASK`` and ``mark_of_slot`` together (a
contiguous mask holding :data:`~mhgui.core.steering.MAX_MARK_SLOT`); it is not a user setting yet.

Applications: nft resolves a ``socket cgroupv2`` path to the cgroup's id when the rule or set
element is loaded, and cannot match unit names by pattern, so an application rule has one set per
cgroup level of its scopes and the helper adds each new scope of the application as it appears
(:mod:`mhgui.helper.steering_apps`: inotify on cgroupfs, and a poll). Limits: a scope is matched from
when it is added (milliseconds after systemd creates it: connections opened before that are not
steered); ids of scopes that ended stay in the set (they are never reused) until the rule's sets are
rebuilt. Masquerading hides the connection's real source from the application and from sock_diag
(the flow list shows the address the socket chose).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from .steering import MARK_MASK, SteeringRule, mark_of_slot

__all__ = ["HOME_DEVICE_KINDS", "KEEP_MASK", "MARK_MASK", "MarkedRule", "TABLE", "home_line", "parse_echo",
           "render_add", "render_delete", "render_elements", "render_ruleset", "set_name"]

TABLE = "mhgui"
#: The mark bits other software keeps when mhgui sets its own (:data:`MARK_MASK` is mhgui's).
KEEP_MASK = 0xFFFF_FFFF & ~MARK_MASK
_KEEP = KEEP_MASK
#: Link kinds (``IFLA_INFO_KIND``, nft ``meta oifkind``) whose own addresses are home addresses: a
#: connection sourced from one and routed into that device is never marked (see "Home addresses").
HOME_DEVICE_KINDS = ("tun",)


def home_line() -> str:
    """The ``select`` line that leaves home-address connections alone (nft syntax, no comment)."""
    kinds = ", ".join(_quote(k) for k in HOME_DEVICE_KINDS)
    kinds = kinds if len(HOME_DEVICE_KINDS) == 1 else f"{{ {kinds} }}"
    return f"meta oifkind {kinds} fib saddr . oif type local return"


@dataclass(frozen=True)
class MarkedRule:
    """A realised marked rule: the rule, its slot, its interface's name, the families it leaves by, and
    the cgroup levels its application's scopes are at (one set each; empty without an application, or
    while no scope runs)."""

    rule: SteeringRule
    slot: int
    ifname: str
    families: frozenset[int]
    levels: tuple[int, ...] = ()


def set_name(rule_id: str, level: int) -> str:
    """The set of cgroups of an application rule at ``level`` (rule ids are ``[A-Za-z0-9_-]``)."""
    return f"a_{rule_id.replace('-', '_')}_{level}"


def _quote(text: str) -> str:
    if any(c in text for c in '"\\\n') or any(ord(c) < 0x20 for c in text):
        raise ValueError(f"{ascii(text)[:60]} cannot be put in an nft string")
    return f'"{text}"'


def _matches(m: MarkedRule) -> list[str]:
    """The match part of each nft rule line of ``m`` (one per family when it has destinations)."""
    r = m.rule
    l4 = ""
    if r.ports:
        ports = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in r.ports)
        l4 = f"{r.protocol} dport {{ {ports} }}" if r.protocol else \
            f"meta l4proto {{ tcp, udp }} th dport {{ {ports} }}"
    elif r.protocol:
        l4 = f"meta l4proto {r.protocol}"
    apps = [""]
    if r.application:
        if not m.levels:
            return []  # nothing to match yet
        apps = [f"socket cgroupv2 level {lv} @{set_name(r.id, lv)}" for lv in m.levels]
    fams = []
    for fam in sorted(m.families, reverse=True):
        dests = [str(d) for d in r.destinations if d.version == fam]
        if r.destinations and not dests:
            continue
        word = "ip6" if fam == 6 else "ip"
        part = f"meta nfproto {'ipv6' if fam == 6 else 'ipv4'}"
        if dests:
            part += f" {word} daddr {{ {', '.join(dests)} }}"
        fams.append(part)
    return [" ".join(x for x in (f, l4, a) if x) for f in fams for a in apps]


def render_ruleset(marked: Iterable[MarkedRule], elements: Mapping[tuple[str, int], Iterable[str]] = {},
                   *, exists: bool = True) -> str:
    """The ``nft -f`` script that makes table ``inet mhgui`` hold exactly ``marked`` (in this order: the
    first matching rule wins), in one transaction. ``elements[(rule id, level)]``: the cgroup paths
    (as nft resolves them, relative to ``/sys/fs/cgroup``) in that set. ``exists``: whether the table
    may exist (it is deleted first). With no marked rule the script only deletes the table."""
    marked = list(marked)
    out = []
    if exists:
        out += [f"table inet {TABLE} {{}}", f"delete table inet {TABLE}"]
    if not marked:
        return "\n".join(out) + "\n"
    out.append(f"table inet {TABLE} {{")
    for m in marked:
        for lv in m.levels:
            name = set_name(m.rule.id, lv)
            items = sorted(elements.get((m.rule.id, lv), ()))
            body = f" elements = {{ {', '.join(_quote(p) for p in items)} }};" if items else ""
            out.append(f"  set {name} {{ typeof socket cgroupv2 level {lv};{body} }}")
    slots = sorted({(m.slot, m.ifname) for m in marked})
    out.append("  chain select {")
    out.append("    fib daddr type { local, broadcast, multicast, anycast } return")
    out.append("    ip6 daddr { fe80::/10, ff00::/8 } return")
    out.append(f"    {home_line()}")
    out += [f"    {line}" for m in marked for line in _select_lines(m)]
    out.append("  }")
    out.append("  chain out {")
    out.append("    type route hook output priority mangle; policy accept;")
    out.append("    ct state new jump select")
    out += [f"    {_restore_line(slot)}" for slot, _ in slots]
    out.append("  }")
    out.append("  chain post {")
    out.append("    type nat hook postrouting priority srcnat; policy accept;")
    out += [f"    {_post_line(slot, ifname)}" for slot, ifname in slots]
    out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def _select_lines(m: MarkedRule) -> list[str]:
    mark = mark_of_slot(m.slot)
    return [f"{match} ct mark set ct mark & 0x{_KEEP:08x} | 0x{mark:08x} counter return "
            f"comment {_quote('mhgui:' + m.rule.id)}" for match in _matches(m)]


def _restore_line(slot: int) -> str:
    mark = mark_of_slot(slot)
    return (f"ct mark & 0x{MARK_MASK:08x} == 0x{mark:08x} meta mark set meta mark & 0x{_KEEP:08x} | 0x{mark:08x} "
            f'comment "slot:{slot}"')


def _post_line(slot: int, ifname: str) -> str:
    # a packet whose source is already one of the interface's addresses (a socket bound to it: the engine's,
    # one per care-of address) keeps it: masquerade would rewrite it to the interface's preferred address
    return (f"meta mark & 0x{MARK_MASK:08x} == 0x{mark_of_slot(slot):08x} oifname {_quote(ifname)} "
            f'fib saddr . oif type != local masquerade comment "slot:{slot}"')


def _set_lines(m: MarkedRule, elements: Mapping[tuple[str, int], Iterable[str]]) -> list[str]:
    out = []
    for lv in m.levels:
        items = sorted(elements.get((m.rule.id, lv), ()))
        out.append(f"add set inet {TABLE} {set_name(m.rule.id, lv)} {{ typeof socket cgroupv2 level {lv}; }}")
        if items:
            out.append(f"add element inet {TABLE} {set_name(m.rule.id, lv)} {{ {', '.join(_quote(p) for p in items)} }}")
    return out


def render_add(m: MarkedRule, elements: Mapping[tuple[str, int], Iterable[str]] = {}, *,
               new_slot: bool = False) -> str:
    """``nft -f`` text appending one marked rule to the table :func:`render_ruleset` made (its sets, its
    lines at the end of ``select``, and, with ``new_slot``, its slot's restore and masquerade lines):
    the cost of one rule, whatever the number of rules."""
    out = _set_lines(m, elements)
    out += [f"add rule inet {TABLE} select {line}" for line in _select_lines(m)]
    if new_slot:
        out += [f"add rule inet {TABLE} out {_restore_line(m.slot)}",
                f"add rule inet {TABLE} post {_post_line(m.slot, m.ifname)}"]
    return "\n".join(out) + "\n"


def render_delete(handles: Iterable[tuple[str, int]], sets: Iterable[str] = ()) -> str:
    """``nft -f`` text deleting rules by (chain, handle), then sets by name."""
    out = [f"delete rule inet {TABLE} {chain} handle {h}" for chain, h in handles]
    out += [f"delete set inet {TABLE} {name}" for name in sets]
    return "\n".join(out) + "\n"


_ECHO = re.compile(r'^add rule inet ' + TABLE + r' (\w+) .*comment "(mhgui|slot):([^"]+)".* # handle (\d+)$')


def parse_echo(text: str) -> list[tuple[str, str, str, int]]:
    """The rules ``nft --echo --handle`` reports added: (chain, ``mhgui`` or ``slot``, rule id or slot,
    handle), for the lines :func:`render_ruleset` and :func:`render_add` write."""
    out = []
    for line in text.splitlines():
        m = _ECHO.match(line.strip())
        if m:
            out.append((m.group(1), m.group(2), m.group(3), int(m.group(4))))
    return out


def render_elements(rule_id: str, level: int, paths: Iterable[str]) -> str:
    """``nft -f`` text adding cgroup ``paths`` to an application rule's set (O(1) per scope)."""
    items = ", ".join(_quote(p) for p in sorted(paths))
    return f"add element inet {TABLE} {set_name(rule_id, level)} {{ {items} }}\n"
