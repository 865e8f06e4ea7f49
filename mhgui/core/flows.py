"""Flows (the kernel's TCP and UDP sockets) and where they stand: pure data, no Qt, no I/O.

A :class:`Flow` is one socket as ``sock_diag`` (netlink(7), ``NETLINK_SOCK_DIAG``)
reports it, identified by its protocol and 5-tuple (:attr:`Flow.id`). The
source (:mod:`mhgui.sources.flows`) fills in the owning process where
``/proc`` lets it read one.

:func:`classify` places a flow on the interface that carries it today, from its
local address, and says whether it can move to another interface:

- a **home address** (HoA, RFC 6275 section 2) local address: the flow moves
  transparently (Mobile IPv6 keeps the address when the care-of address
  changes); it is carried by the interface of the HoA's bound care-of address
  (the mobility daemon's binding, REGISTERED or WAITING_ACK, its CoA looked up
  in the live model), or by its home link when at home; without a binding the
  interface is unknown and said so;
- a **care-of address** (CoA) or any other routable address: the flow is on
  that address's interface and moves only by being re-established (a new
  connection from another address);
- **link-local** or **loopback**: not movable;
- an **unspecified** local address (``::``, ``0.0.0.0``): a listening or
  unconnected UDP socket, on no one interface; not a flow that moves.

:func:`diff` compares two tables by flow id.

:func:`own_flow_ids` picks out the sockets that are mhgui's own (its
processes', the TIME-WAIT remains of its connections to the mobility daemon's
terminal or a D-Bus bus over TCP, and the other end of its own loopback
connections), which the flows view hides unless asked (:class:`OwnSockets`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping

from ..i18n import _, ngettext
from .analysis import ROLE_COA, ROLE_COA_DEPRECATED, ROLE_HOA, Analysis
from .bindings import Binding, BindingState, canonical_address
from .model import InterfaceKind, NodeState

__all__ = [
    "AF_INET",
    "AF_INET6",
    "Flow",
    "FlowTable",
    "Placement",
    "Classifier",
    "classify",
    "diff",
    "flow_id",
    "make_flow",
    "flow_json",
    "sort_key",
    "format_endpoint",
    "tcp_state_name",
    "LOCAL_ROLES",
    "MOVABLE",
    "VISIBILITY",
    "MHGUI_PROCESSES",
    "OwnSockets",
    "own_flow_ids",
    "dbus_tcp_endpoints",
    "service_endpoints",
]

AF_INET, AF_INET6 = 2, 10

#: ``local_role`` values (``mhctl flows --json``)
LOCAL_ROLES = ("hoa", "coa", "other")
#: ``movable`` values
MOVABLE = ("transparent", "re-establish", "no")
#: :attr:`FlowTable.process_visibility` values
VISIBILITY = ("full", "partial", "hidden")

# TCP states as ``ss`` names them (include/net/tcp_states.h); UDP uses ESTABLISHED (connected) and CLOSE (unconnected)
_TCP_STATES = {
    1: "ESTAB", 2: "SYN-SENT", 3: "SYN-RECV", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2", 6: "TIME-WAIT",
    7: "UNCONN", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW-SYN-RECV",
    13: "BOUND-INACTIVE",
}


#: TCP states of a connection on its way out (``ss`` names)
CLOSING_STATES = frozenset({"FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSE", "CLOSE-WAIT", "LAST-ACK", "CLOSING"})


def tcp_state_name(number: int) -> str:
    """``ss``'s name for a kernel socket state number (``TCP_ESTABLISHED`` = 1 ... ); unknown numbers as ``state-N``."""
    return _TCP_STATES.get(number, f"state-{number}")


def format_endpoint(address: str, port: int, ifindex: int = 0) -> str:
    """``[2001:db8::1]:443``, ``192.0.2.1:53``; ``%IFINDEX`` after the address when the socket is
    bound to an interface."""
    scope = f"%{ifindex}" if ifindex else ""
    if ":" in address:
        return f"[{address}{scope}]:{port}"
    return f"{address}{scope}:{port}"


def flow_id(protocol: str, local_address: str, local_port: int, remote_address: str, remote_port: int,
            bound_ifindex: int = 0, tag: str = "") -> str:
    """The flow's identity: protocol and 5-tuple, e.g. ``tcp [2001:db8::1]:40000 [2001:db8::2]:443``.

    A socket bound to an interface (``SO_BINDTODEVICE``, or the scope of a
    link-local address) carries ``%IFINDEX`` on its local address, as two such
    sockets may share the rest. ``tag`` separates sockets that share the whole
    5-tuple (``SO_REUSEPORT`` listeners and UDP sockets): ``#`` and the
    kernel's socket cookie.
    """
    out = f"{protocol} {format_endpoint(local_address, local_port, bound_ifindex)} " \
          f"{format_endpoint(remote_address, remote_port)}"
    return f"{out} #{tag}" if tag else out


@dataclass(frozen=True, slots=True)
class Flow:
    """One TCP or UDP socket (``struct inet_diag_msg``).

    Addresses are RFC 5952 text (IPv4-mapped IPv6 addresses in the mixed
    notation of RFC 5952 section 5, ``::ffff:192.0.2.1``); ``state`` is
    ``ss``'s name (ESTAB, LISTEN, UNCONN, TIME-WAIT...); ``inode`` is the
    socket's inode (0 for TIME-WAIT sockets, which no process holds);
    ``uid`` its owner's user id; ``pid``/``process`` the owning process where
    ``/proc`` shows it, else None; ``bound_ifindex`` the kernel's
    ``idiag_if`` (the interface the socket is bound to, or the scope of its
    link-local address; 0 for none); ``cookie`` the kernel's socket cookie.
    """

    protocol: str  # "tcp" | "udp"
    family: int  # AF_INET (2) | AF_INET6 (10)
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    state: str
    inode: int = 0
    uid: int = 0
    pid: int | None = None
    process: str | None = None
    bound_ifindex: int = 0
    cookie: int = 0
    tag: str = ""
    id: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", flow_id(self.protocol, self.local_address, self.local_port,
                                               self.remote_address, self.remote_port, self.bound_ifindex, self.tag))

    @property
    def listening(self) -> bool:
        """A listening TCP socket or an unconnected UDP socket: no peer yet."""
        return self.state in ("LISTEN", "UNCONN")


_new = object.__new__
(_set_protocol, _set_family, _set_local_address, _set_local_port, _set_remote_address, _set_remote_port,
 _set_state, _set_inode, _set_uid, _set_pid, _set_process, _set_bound_ifindex, _set_cookie, _set_tag,
 _set_id) = (getattr(Flow, n).__set__ for n in (
    "protocol", "family", "local_address", "local_port", "remote_address", "remote_port", "state", "inode", "uid",
    "pid", "process", "bound_ifindex", "cookie", "tag", "id"))


def make_flow(protocol: str, family: int, local_address: str, local_port: int, remote_address: str,
              remote_port: int, state: str, inode: int = 0, uid: int = 0, pid: int | None = None,
              process: str | None = None, bound_ifindex: int = 0, cookie: int = 0) -> Flow:
    """``Flow(...)`` (no ``tag``) at half the cost: the flows source builds tens of thousands at a time,
    and a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``."""
    f = _new(Flow)
    _set_protocol(f, protocol)
    _set_family(f, family)
    _set_local_address(f, local_address)
    _set_local_port(f, local_port)
    _set_remote_address(f, remote_address)
    _set_remote_port(f, remote_port)
    _set_state(f, state)
    _set_inode(f, inode)
    _set_uid(f, uid)
    _set_pid(f, pid)
    _set_process(f, process)
    _set_bound_ifindex(f, bound_ifindex)
    _set_cookie(f, cookie)
    _set_tag(f, "")
    # flow_id(), inlined
    scope = f"%{bound_ifindex}" if bound_ifindex else ""
    local = f"[{local_address}{scope}]:{local_port}" if ":" in local_address else f"{local_address}{scope}:{local_port}"
    remote = f"[{remote_address}]:{remote_port}" if ":" in remote_address else f"{remote_address}:{remote_port}"
    _set_id(f, f"{protocol} {local} {remote}")
    return f


@dataclass(frozen=True, slots=True)
class FlowTable:
    """One poll of the kernel's socket table.

    ``flows``: by :attr:`Flow.id`. ``process_visibility``: ``"full"`` (every
    socket's owner could be looked for), ``"partial"`` (some owners are not
    readable: other users' processes without root, or processes of another PID
    namespace), ``"hidden"`` (inside a sandbox such as Flatpak, the host's
    processes are not visible at all); ``visibility_reason`` says why in one
    sentence. ``problems``: what could not be read (a protocol the kernel
    cannot dump, malformed messages skipped), one sentence each.
    ``polled_at``: monotonic time of the poll; ``elapsed``: seconds it took.
    """

    flows: Mapping[str, Flow]
    process_visibility: str = "full"
    visibility_reason: str = ""
    problems: tuple[str, ...] = ()
    polled_at: float = 0.0
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a flow is and whether it can move.

    ``ifindex``/``interface``: the interface carrying it today, None when
    unknown (a HoA without a binding) or when there is none (a listening
    socket on every address). ``local_role``: ``"hoa"``, ``"coa"`` or
    ``"other"``; ``movable``: ``"transparent"`` (HoA: Mobile IPv6 moves it
    without the application noticing), ``"re-establish"`` (CoA or another
    routable address: only a new connection from another address moves it) or
    ``"no"`` (link-local, loopback, not connected); ``reason``: one sentence
    for the user.
    """

    ifindex: int | None
    interface: str | None
    local_role: str
    movable: str
    reason: str


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket talking IPv4: its address is the IPv4 one
    return ip


_LIVE_BINDING = (BindingState.REGISTERED, BindingState.WAITING_ACK)


class Classifier:
    """:func:`classify` for many flows against one snapshot of the node.

    Builds its indexes once (addresses, HoAs, bindings) and remembers each
    answer by :meth:`key` (local address, bound interface, state, protocol), so
    a table of 10,000 flows costs one look-up per distinct local address and
    state; :meth:`changed_keys` says which answers differ from another
    classifier's (a new snapshot of the node), so a caller re-places only the
    flows those answers cover.
    """

    def __init__(self, state: NodeState, analysis: Analysis, bindings: Iterable[Binding] = ()) -> None:
        self._state = state
        self._names = {i: iface.name for i, iface in state.interfaces.items()}
        #: address text (canonical) -> [(ifindex, role)]
        self._holders: dict[str, list[tuple[int, str]]] = {}
        hoas: set[str] = set()
        for h in state.home_addresses:
            try:
                hoas.add(canonical_address(h.address))
            except ValueError:
                continue
        for key, a in state.addresses.items():
            r = analysis.roles.get(key)
            role = r.role if r is not None else "other"
            if role == ROLE_HOA:
                hoas.add(a.address)
            self._holders.setdefault(a.address, []).append((a.ifindex, role))
        self._hoas = hoas
        self._at_home = {}
        for hs in analysis.homes:
            if hs.at_home and hs.home_ifindex is not None:
                try:
                    self._at_home[canonical_address(hs.hoa.address)] = hs.home_ifindex
                except ValueError:
                    continue
        self._bindings: dict[str, list[Binding]] = {}
        for b in bindings:
            if b.source != "bul" or b.state not in _LIVE_BINDING:
                continue
            try:
                hoa, coa = canonical_address(b.hoa), canonical_address(b.coa)
            except ValueError:
                continue  # malformed daemon output: never a placement
            if hoa == coa:
                continue  # a de-registration / home binding, not a CoA
            self._bindings.setdefault(hoa, []).append(b)
        #: key -> (the same key, its placement): classify_keyed returns that pair, one key tuple shared by
        #: every flow of the key (not one per flow: 0.7 MiB with 10,000 flows, issue 14)
        self._memo: dict[tuple[str, int, str, str], tuple[tuple[str, int, str, str], Placement]] = {}
        self._sample: dict[tuple[str, int, str, str], Flow] = {}

    # ---- helpers
    def _name(self, ifindex: int | None) -> str | None:
        if ifindex is None:
            return None
        return self._names.get(ifindex)

    def _kind(self, ifindex: int) -> InterfaceKind | None:
        iface = self._state.interfaces.get(ifindex)
        return iface.kind if iface is not None else None

    def _holder(self, address: str, bound: int) -> tuple[int, str] | None:
        """The (ifindex, role) holding ``address``: the bound interface if it holds it, else
        an access interface before a tunnel, a CoA before another role, the lowest ifindex."""
        holders = self._holders.get(address)
        if not holders:
            return None
        for h in holders:
            if h[0] == bound:
                return h
        rank = {ROLE_COA: 0, ROLE_COA_DEPRECATED: 0}
        return min(holders, key=lambda h: (self._kind(h[0]) in (InterfaceKind.TUNNEL, InterfaceKind.LOOPBACK),
                                           rank.get(h[1], 1), h[0]))

    def _loopback_ifindex(self) -> int | None:
        for i, iface in sorted(self._state.interfaces.items()):
            if iface.kind is InterfaceKind.LOOPBACK:
                return i
        return None

    # ---- the rules
    @staticmethod
    def key(flow: Flow) -> tuple[str, int, str, str]:
        """What a placement depends on: (local address, bound ifindex, state, protocol)."""
        return (flow.local_address, flow.bound_ifindex, flow.state, flow.protocol)

    def classify(self, flow: Flow) -> Placement:
        return self.classify_keyed(flow)[1]

    def classify_keyed(self, flow: Flow) -> tuple[tuple[str, int, str, str], Placement]:
        """``(key(flow), classify(flow))`` for the price of one."""
        key = (flow.local_address, flow.bound_ifindex, flow.state, flow.protocol)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = (key, self._place_closing(flow))
            self._sample[key] = flow
        return hit

    def changed_keys(self, previous: "Classifier") -> set[tuple[str, int, str, str]]:
        """Keys (:meth:`key`) whose placement under ``previous`` differs from this classifier's;
        O(number of keys ``previous`` answered)."""
        out = set()
        for key, (_key, p) in previous._memo.items():
            if self.classify(previous._sample[key]) != p:
                out.add(key)
        return out

    def forget_except(self, keys: Iterable[tuple[str, int, str, str]]) -> None:
        """Drop remembered answers for keys not in ``keys`` (flows that are gone)."""
        keep = set(keys)
        for k in [k for k in self._memo if k not in keep]:
            del self._memo[k]
            del self._sample[k]

    def _place_closing(self, flow: Flow) -> Placement:
        p = self._place(flow)
        if flow.protocol == "tcp" and flow.state in CLOSING_STATES and p.movable != "no":
            # a connection that is closing has nothing left to move (RFC 9293 section 3.3.2)
            p = replace(p, movable="no", reason=_("closing ({state}): nothing left to move").format(state=flow.state))
        return p

    def _place(self, flow: Flow) -> Placement:
        bound = flow.bound_ifindex
        ip = _ip(flow.local_address)
        if ip is None:
            return Placement(None, None, "other", "no", _("local address {address} is not an IP address").format(
                address=repr(flow.local_address)))
        if ip.is_unspecified:
            where = self._name(bound) if bound else None
            what = _("listening") if flow.state == "LISTEN" else _("not connected")
            on = (_("bound to {interface}").format(interface=where or _("interface {ifindex}").format(ifindex=bound))
                  if bound else _("on every address"))
            return Placement(bound or None, where, "other", "no",
                             _("{what} ({where}): no flow to move until a peer connects").format(what=what, where=on))
        if ip.is_loopback:
            i = self._holder(str(ip), bound)
            ifindex = i[0] if i else (bound or self._loopback_ifindex())
            return Placement(ifindex, self._name(ifindex), "other", "no",
                             _("loopback: the flow never leaves this node"))
        if ip.is_link_local:
            i = self._holder(str(ip), bound)
            ifindex = bound or (i[0] if i else None)
            return Placement(ifindex, self._name(ifindex), "other", "no",
                             _("link-local address: valid on its link only, the flow cannot move"))
        if ip.is_multicast:
            where = self._name(bound) if bound else None
            return Placement(bound or None, where, "other", "no",
                             _("bound to a multicast group address: receives on {where}, nothing to move").format(
                                 where=where or _("every interface that joined it")))
        text = str(ip)
        if text in self._hoas:
            return self._place_hoa(text)
        h = self._holder(text, bound)
        if h is None:
            return Placement(bound or None, self._name(bound) if bound else None, "other", "re-establish",
                             _("{address} is no longer on any interface: only a new connection "
                               "from another address can continue").format(address=text))
        ifindex, role = h
        name = self._name(ifindex)
        if role in (ROLE_COA, ROLE_COA_DEPRECATED):
            return Placement(ifindex, name, "coa", "re-establish",
                             _("care-of address on {interface}: moves only by re-establishing the flow "
                               "from another address").format(interface=name))
        return Placement(ifindex, name, "other", "re-establish",
                         _("address on {interface} (not a home address): moves only by re-establishing the flow")
                         .format(interface=name))

    def _place_hoa(self, hoa: str) -> Placement:
        if hoa in self._at_home:
            i = self._at_home[hoa]
            return Placement(i, self._name(i), "hoa", "transparent",
                             _("home address, at home on {interface}: Mobile IPv6 moves it transparently").format(
                                 interface=self._name(i)))
        bs = self._bindings.get(hoa)
        if not bs:
            return Placement(None, None, "hoa", "transparent",
                             _("home address without a binding from the mobility daemon: the interface carrying "
                               "it is unknown; Mobile IPv6 moves it transparently"))
        # a registered binding before one waiting for its acknowledgement; then RFC 6089 BID-PRI (lower first)
        b = min(bs, key=lambda b: (b.state is not BindingState.REGISTERED,
                                   b.bid_priority if b.bid_priority is not None else 1 << 30,
                                   b.bid if b.bid is not None else -1, b.coa))
        coa = canonical_address(b.coa)
        ifindex: int | None = None
        h = self._holder(coa, 0)
        if h is not None:
            ifindex = h[0]
        elif b.interface:
            ifindex = next((i for i, n in sorted(self._names.items()) if n == b.interface), None)
        name = self._name(ifindex) if ifindex is not None else b.interface
        others = len(bs) - 1
        more = ngettext(" ({n} other binding)", " ({n} other bindings)", others).format(n=others) if others else ""
        via = _("on {interface}").format(interface=name) if name else _("on an interface the live model does not show")
        return Placement(ifindex, name, "hoa", "transparent",
                         _("home address bound to care-of address {coa} {via} ({state}){more}: "
                           "Mobile IPv6 moves it transparently").format(coa=coa, via=via, state=b.state.value, more=more))


def classify(flow: Flow, state: NodeState, analysis: Analysis, bindings: Iterable[Binding] = ()) -> Placement:
    """Place one flow (module docstring); for many flows use one :class:`Classifier`."""
    return Classifier(state, analysis, bindings).classify(flow)


def diff(old: Mapping[str, Flow], new: Mapping[str, Flow]) -> tuple[list[str], list[str], list[str]]:
    """``(added, removed, changed)`` flow ids from ``old`` to ``new``.

    ``added`` in ``new``'s order, ``removed`` in ``old``'s; ``changed``: ids in
    both whose flow differs (state, owner...).
    """
    added = [k for k in new if k not in old]
    removed = [k for k in old if k not in new]
    changed = []
    for k, f in new.items():
        o = old.get(k)
        if o is not None and o is not f and o != f:
            changed.append(k)
    return added, removed, changed


def flow_json(flow: Flow, placement: Placement) -> dict:
    """One entry of ``mhctl flows --json`` (README): addresses RFC 5952, pid/process null when unreadable,
    interface null when unknown or none."""
    return {
        "id": flow.id,
        "protocol": flow.protocol,
        "local": {"address": flow.local_address, "port": flow.local_port},
        "remote": {"address": flow.remote_address, "port": flow.remote_port},
        "state": flow.state,
        "pid": flow.pid,
        "process": flow.process,
        "interface": placement.interface,
        "local_role": placement.local_role,
        "movable": placement.movable,
    }


def sort_key(flow: Flow) -> tuple:
    """A readable order: protocol, then local address (numerically) and port, then remote."""
    def num(a: str) -> int:
        ip = _ip(a)
        return int(ip) if ip is not None else -1
    return (flow.protocol, num(flow.local_address), flow.local_port, num(flow.remote_address), flow.remote_port,
            flow.id)


# --------------------------------------------------------------------------- mhgui's own sockets
#: process names (``/proc/PID/comm``) of mhgui's programs (pyproject's scripts)
MHGUI_PROCESSES = frozenset({"mhgui", "mhctl", "mhgui-mn", "mhgui-ha", "mhgui-helper"})


def _plain(address: str) -> str:
    """``::ffff:192.0.2.1`` as ``192.0.2.1``: a dual-stack socket's view of an IPv4 peer, as the IPv4 end sees it."""
    if address.startswith("::ffff:") and "." in address:
        return address[7:]
    return address


@dataclass(frozen=True, slots=True)
class OwnSockets:
    """What makes a socket mhgui's own (:func:`own_flow_ids`).

    ``pids``: processes whose sockets are mhgui's (this process; a helper it
    started). ``processes``: process names (``comm``, 15 characters at most) of
    mhgui's programs, for the processes whose pid the app does not know (the
    engine daemon ``mhgui-mn``, another mhgui or mhctl). ``services``:
    ``(protocol, address, port)`` of the services the app connects to (the
    mobility daemon's terminal on ``::1``/``127.0.0.1`` port 7777, a D-Bus bus
    listening on TCP); addresses as RFC 5952 text, IPv4-mapped forms are
    matched by their IPv4 address.
    """

    pids: frozenset[int] = frozenset()
    processes: frozenset[str] = frozenset()
    services: frozenset[tuple[str, str, int]] = frozenset()
    _ports: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        services = frozenset((p, _plain(a), int(port)) for p, a, port in self.services)
        object.__setattr__(self, "services", services)
        object.__setattr__(self, "pids", frozenset(self.pids))
        object.__setattr__(self, "processes", frozenset(self.processes))
        object.__setattr__(self, "_ports", frozenset(s[2] for s in services))

    def direct(self, f: Flow) -> bool:
        """Own by the flow alone: rule 1 (its process) or rule 2 (an unheld socket on a service's endpoint)."""
        if f.pid is not None and f.pid in self.pids:
            return True
        if f.process is not None and f.process in self.processes:
            return True
        if f.inode == 0 and (f.remote_port in self._ports or f.local_port in self._ports) and not f.listening:
            s = self.services
            return ((f.protocol, _plain(f.remote_address), f.remote_port) in s
                    or (f.protocol, _plain(f.local_address), f.local_port) in s)
        return False

    @staticmethod
    def key(f: Flow) -> tuple[str, str, int, str, int]:
        """(protocol, local address, local port, remote address, remote port), IPv4-mapped addresses as IPv4."""
        return (f.protocol, _plain(f.local_address), f.local_port, _plain(f.remote_address), f.remote_port)

    @staticmethod
    def mirror(f: Flow) -> tuple[str, str, int, str, int]:
        """The :meth:`key` of the other end of ``f`` when both ends are on this node."""
        return (f.protocol, _plain(f.remote_address), f.remote_port, _plain(f.local_address), f.local_port)


def own_flow_ids(flows: Iterable[Flow], own: OwnSockets | None) -> set[str]:
    """Ids of the flows that are mhgui's own, by three rules:

    1. held by a process of ``own.pids``, or one named in ``own.processes``;
    2. held by no process (``inode`` 0: TIME-WAIT, an orphaned FIN-WAIT-2,
       which ``/proc`` can never attribute) with its local or remote endpoint
       on one of ``own.services``: what is left of a connection to the
       daemon's terminal once it closed (RFC 9293 section 3.3.2: TIME-WAIT
       lasts 2 MSL, 60 s on Linux, on the side that closed first, which may be
       the daemon's);
    3. the other end of a connection that rule 1 or 2 made own (a loopback
       connection to a service on this node: the daemon's side of the
       terminal connection), whoever holds it.

    A listening or unconnected socket is own by rule 1 only. ``own`` None:
    nothing is own. Cost: one pass, O(len(flows)).
    """
    out: set[str] = set()
    if own is None:
        return out
    mirrors: set[tuple] = set()
    rest: list[Flow] = []
    for f in flows:
        if own.direct(f):
            out.add(f.id)
            if not f.listening:
                mirrors.add(own.mirror(f))
        else:
            rest.append(f)
    if mirrors:
        ports = {m[2] for m in mirrors}
        for f in rest:
            if f.local_port in ports and not f.listening and own.key(f) in mirrors:
                out.add(f.id)
    return out


def service_endpoints(protocol: str, hosts: Iterable[str], port: int) -> list[tuple[str, str, int]]:
    """``(protocol, address, port)`` for each of ``hosts`` (IP address text, or ``localhost`` for ``::1``
    and ``127.0.0.1``); host names, scoped or malformed addresses and ports outside 1..65535 are skipped."""
    if not isinstance(port, int) or not 0 < port < 65536:
        return []
    out: list[tuple[str, str, int]] = []
    for host in hosts:
        if not isinstance(host, str):
            continue
        if host == "localhost":
            out += [(protocol, "::1", port), (protocol, "127.0.0.1", port)]
            continue
        ip = _ip(host) if "%" not in host else None
        if ip is not None:
            out.append((protocol, str(ip), port))
    return out


def dbus_tcp_endpoints(address: str | None) -> list[tuple[str, str, int]]:
    """``("tcp", host, port)`` of each TCP transport in a D-Bus server address list.

    ``address``: e.g. ``unix:path=/run/dbus/system_bus_socket;tcp:host=127.0.0.1,port=5555``
    (D-Bus specification, "Server Addresses": ``;``-separated transports, ``,``-separated
    ``key=value`` pairs, values percent-escaped; ``tcp:`` and ``nonce-tcp:`` carry ``host`` and
    ``port``). ``host`` ``localhost`` gives ``::1`` and ``127.0.0.1``; other host names (which
    would need a DNS look-up) and malformed entries are skipped. Never raises.
    """
    from urllib.parse import unquote

    out: list[tuple[str, str, int]] = []
    for entry in (address or "").split(";"):
        transport, sep, rest = entry.strip().partition(":")
        if not sep or transport not in ("tcp", "nonce-tcp"):
            continue
        kv = {}
        for pair in rest.split(","):
            k, eq, v = pair.partition("=")
            if eq:
                kv[k.strip()] = unquote(v.strip())
        try:
            port = int(kv.get("port", ""))
        except ValueError:
            continue
        out += service_endpoints("tcp", [kv.get("host", "localhost")], port)
    return out
