"""Counting rules: which addresses are CoAs, and the node's (x, y, z).

The draft (section 4) defines x = active interfaces, y = HoAs, z = CoAs but
leaves the counting implicit. These are our rules, also stated in README.md:

* A **usable CoA** is a global IPv6 address (not link-local, not ULA unless the
  user allows it, not multicast or loopback) that is valid, preferred (not
  deprecated), not tentative, not DAD-failed and not temporary, on an
  interface that is up with carrier, is an **access link** and is not on a home
  link. Tunnels (UMIP puts the HoA on its own ip6tnl tunnel when away: that
  interface is the daemon's), loopback and virtual links (bridges, macvlan,
  ifb, dummy...: :attr:`InterfaceKind.VIRTUAL`, known by the link's type from
  netlink ``IFLA_INFO_KIND`` or NetworkManager's ``DeviceType``, never by its
  name) are not access links. Temporary (RFC 8981 privacy) addresses are listed
  but are never CoAs.
* An address of a **VPN** (``NodeState.vpn_addresses``: NetworkManager's active
  VPN connections, whose addresses may sit on the access interface itself when
  the VPN has no interface of its own, as IPsec does) is the VPN's, never a CoA.
* A deprecated address that the mobility daemon still has bound is shown as
  ``coa-deprecated`` and counted until its valid lifetime ends.
* **z** counts distinct (interface, prefix) pairs holding a usable CoA: the
  draft ties CoAs to links and prefixes (Figure 1: "number of IPv6 links is
  equal to the number of CoAs"; section 4: "multiple prefixes advertised on a
  link may lead to the node building several CoAs on that link"), so two
  addresses in one /64 are one CoA, two prefixes on one link are two.
* **x** counts access interfaces up with carrier that hold a usable CoA or are
  on a home link.
* **y** counts configured HoAs. A HoA is **at home** when an access interface
  that is up with carrier carries a valid, non-tentative address in its home
  prefix (draft 6.2.3); such an interface is a **home link**.
* With a daemon that takes **IPv4 care-of addresses** (RFC 5555, also behind
  NAT44: ``DaemonCapabilities.ipv4_coas``, ``analyse(..., ipv4_coas=True)``),
  an IPv4 address of global scope (private RFC 1918 ones too, reached through
  NAT44; not link-local 169.254/16, loopback or multicast) on such an interface
  is a usable CoA as well. It adds to z (and x) only on an interface without a
  usable IPv6 CoA: the engine registers an uplink with IPv6 first, so a
  dual-stack link is one path.

Cost: linear in the number of addresses whatever their prefix lengths (the
prefixes of each interface are indexed once, so a /128 finds its on-link prefix
in at most one lookup per distinct prefix length). :class:`Analyser` keeps that
index and the roles between calls and redoes only what changed since its last
call (addresses, interfaces, lifetimes that ended, bound CoAs, VPN addresses):
its answer is always equal to :func:`analyse` of the same state at the same time.
"""

from __future__ import annotations

import heapq
import ipaddress
from itertools import repeat
from dataclasses import dataclass, field
from typing import Mapping

from ..i18n import _
from .model import Address, AddressFlag, AddressKey, HomeAddress, InterfaceKind, NodeState

AF_INET6 = 10

# Address roles, as in the UI and in `mhctl status --json`.
ROLE_HOA = "hoa"
ROLE_COA = "coa"
ROLE_COA_DEPRECATED = "coa-deprecated"
ROLE_HOME_LINK = "home-link"
ROLE_TEMPORARY = "temporary"
ROLE_TENTATIVE = "tentative"
ROLE_LINK_LOCAL = "link-local"
ROLE_VPN = "vpn"
ROLE_UNUSABLE = "unusable"
ROLE_OTHER = "other"

ROLES = (ROLE_HOA, ROLE_COA, ROLE_COA_DEPRECATED, ROLE_HOME_LINK, ROLE_TEMPORARY,
         ROLE_TENTATIVE, ROLE_LINK_LOCAL, ROLE_VPN, ROLE_UNUSABLE, ROLE_OTHER)

#: kinds of interface that are no access links: they never hold a CoA, are never a home link, never count in x
NON_ACCESS_KINDS = frozenset({InterfaceKind.TUNNEL, InterfaceKind.LOOPBACK, InterfaceKind.VIRTUAL})
_NON_ACCESS = NON_ACCESS_KINDS


@dataclass(frozen=True, slots=True)
class AddressRole:
    """The role of one address and a one-line reason for the user."""

    role: str
    reason: str
    counted: bool  # contributes to z


@dataclass(frozen=True, slots=True)
class HomeStatus:
    hoa: HomeAddress
    at_home: bool
    home_ifindex: int | None  # the interface on the home link, when at home


@dataclass(frozen=True, slots=True)
class Analysis:
    """Result of :func:`analyse`.

    ``x``, ``y``, ``z``: counts; ``roles``: role per address key;
    ``coa_prefixes``: the (ifindex, prefix) pairs counted in z (IPv4 prefixes only with ``ipv4_coas``),
    ``coa_prefix_ids`` the same with each prefix as (family, network as an int, length), cheaper to use;
    ``active``: ifindexes counted in x; ``home_links``: ifindexes on a home link;
    ``coa_keys``: ifindex -> the keys of the addresses counted in z on it;
    ``coa_deadline``: the earliest end of a preferred or valid lifetime of a counted address after
    the analysis' time (seconds, model clock), None when none ends.
    """

    x: int
    y: int
    z: int
    roles: dict[AddressKey, AddressRole]
    #: the (ifindex, prefix) pairs counted in z, prefixes as (family, network as an int, length)
    coa_prefix_ids: frozenset[tuple[int, tuple[int, int, int]]]
    active: frozenset[int]
    home_links: frozenset[int]
    homes: tuple[HomeStatus, ...]
    coa_keys: Mapping[int, frozenset[AddressKey]] = field(default_factory=dict)
    coa_deadline: float | None = None
    _networks: Mapping[tuple, ipaddress.IPv4Network | ipaddress.IPv6Network] = field(
        default_factory=dict, compare=False, repr=False)
    _coa_prefixes: frozenset | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def at_home(self) -> bool:
        """True when at least one HoA is on its home link."""
        return any(h.at_home for h in self.homes)

    @property
    def coa_prefixes(self) -> frozenset[tuple[int, ipaddress.IPv6Network | ipaddress.IPv4Network]]:
        """The (ifindex, prefix) pairs counted in z, as network objects (made on first use: hashing
        thousands of them would cost more than the rest of an incremental analysis)."""
        got = self._coa_prefixes
        if got is None:
            got = frozenset((i, self._networks[p] if p in self._networks else ipaddress.IPv6Network(p[1:]))
                            for i, p in self.coa_prefix_ids)
            object.__setattr__(self, "_coa_prefixes", got)
        return got


def analyse(state: NodeState, now: float, *, allow_ula: bool = False, ipv4_coas: bool = False) -> Analysis:
    """Apply the counting rules (module docstring) to ``state`` at time ``now`` (seconds, model clock).

    ``allow_ula``: unique local addresses may be CoAs (the user's setting); ``ipv4_coas``: the
    connected daemon registers IPv4 care-of addresses (RFC 5555), so IPv4 addresses count too.
    Linear in the number of addresses. To analyse one state again and again as it changes, keep an
    :class:`Analyser`: same answer, work proportional to the change.
    """
    return Analyser().analyse(state, now, allow_ula=allow_ula, ipv4_coas=ipv4_coas)


# --------------------------------------------------------------------------- roles
_TENTATIVE, _DADFAILED = int(AddressFlag.TENTATIVE), int(AddressFlag.DADFAILED)
_HOME, _TEMPORARY, _DEPRECATED = int(AddressFlag.HOMEADDRESS), int(AddressFlag.TEMPORARY), int(AddressFlag.DEPRECATED)
#: the only flags a role depends on (the others would only split groups of equal addresses)
_ROLE_FLAGS = _TENTATIVE | _DADFAILED | _HOME | _TEMPORARY | _DEPRECATED

# What a role depends on, split in two so that the role is computed once per distinct pair:
# the address' own facts (its "signature", as of the analysis' time) and its interface's (the "context").
#   signature: (family, flags, address class, is a HoA, VPN name or None, valid lifetime over,
#               preferred lifetime over, bound by the daemon, IPv4 scope not global, IPv4 unspecified)
#   context:   (interface kind or None when unknown, up, on a home link, link has a counted IPv6 CoA)


def _signature(a: Address, now: float, hoa_ips: set, bound: frozenset[str], vpn: Mapping[str, str]) -> tuple:
    flags = int(a.flags) & _ROLE_FLAGS
    v = a.valid_until
    valid_over = v is not None and v <= now
    if a.family == AF_INET6:
        p = a.preferred_until
        return (AF_INET6, flags, a.address_class, bool(hoa_ips) and a.ip in hoa_ips, vpn.get(a.address), valid_over,
                p is not None and p <= now, a.address in bound, False, False)
    return (a.family, flags, a.address_class, False, vpn.get(a.address), valid_over, False, False,
            a.scope != 0, a.ip.is_unspecified)


def _expiry(a: Address, now: float) -> float | None:
    """When the role of ``a`` can next change by time alone: its next lifetime end after ``now``."""
    p, v = a.preferred_until, a.valid_until
    if p is not None and p > now:
        return v if v is not None and now < v < p else p
    return v if v is not None and v > now else None


def _no(role: str, reason: str) -> AddressRole:
    return AddressRole(role, reason, False)


def _role_of(sig: tuple, ctx: tuple, allow_ula: bool, ipv4_coas: bool) -> AddressRole:
    family, flags, cls, is_hoa, vpn, valid_over, pref_over, bound, scoped, unspecified = sig
    kind, up, on_home_link, with_v6 = ctx
    if vpn is not None:
        return _no(ROLE_VPN, _("address of the VPN connection {name} (NetworkManager): the VPN's own "
                             "address, not a care-of address").format(name=repr(vpn)))
    if family != AF_INET6:
        if not ipv4_coas:
            return _no(ROLE_OTHER, _("IPv4 address: Mobile IPv6 care-of addresses are IPv6"))
        return _role_v4(flags, cls, valid_over, scoped, unspecified, kind, up, on_home_link, with_v6)
    if flags & _DADFAILED:
        return _no(ROLE_UNUSABLE, _("duplicate address detection failed: another node uses this address"))
    if is_hoa or flags & _HOME:
        return _no(ROLE_HOA, _("home address (permanent address of the mobile node)"))
    if flags & _TENTATIVE:
        return _no(ROLE_TENTATIVE, _("tentative: duplicate address detection has not finished"))
    if cls == "link-local":
        return _no(ROLE_LINK_LOCAL, _("link-local: not routable beyond the link"))
    not_access = _not_access(kind, cls)
    if not_access:
        return _no(ROLE_OTHER, not_access)
    if cls == "multicast":
        return _no(ROLE_OTHER, _("multicast"))
    if on_home_link:
        return _no(ROLE_HOME_LINK, _("on a home link: addresses here are not care-of addresses (draft 6.2.3)"))
    if flags & _TEMPORARY:
        return _no(ROLE_TEMPORARY, _("temporary (privacy) address: listed, never a care-of address"))
    if cls == "ula" and not allow_ula:
        return _no(ROLE_OTHER, _("unique local address (ULA): not a care-of address unless allowed in settings"))
    if cls not in ("global", "ula"):
        return _no(ROLE_OTHER, _("not a global address"))
    if not up:
        return _no(ROLE_UNUSABLE, _("interface is down or has no carrier"))
    if valid_over:
        return _no(ROLE_UNUSABLE, _("valid lifetime ended"))
    if flags & _DEPRECATED or pref_over:
        if bound:
            return AddressRole(ROLE_COA_DEPRECATED, _("deprecated but still bound by the mobility daemon: "
                                                                 "counted until its valid lifetime ends"), True)
        return _no(ROLE_UNUSABLE, _("deprecated (preferred lifetime ended): not used for new bindings"))
    return AddressRole(ROLE_COA, _("usable care-of address"), True)


def _not_access(kind: InterfaceKind | None, cls: str) -> str | None:
    """Why an address on an interface of this kind is no CoA, or None for an access link."""
    if kind is None:
        return _("interface unknown")
    if kind is InterfaceKind.LOOPBACK or cls == "loopback":
        return _("loopback")
    if kind is InterfaceKind.TUNNEL:
        return _("on a tunnel (the mobility daemon's, not an access link)")
    if kind is InterfaceKind.VIRTUAL:
        return _("on a virtual link (bridge, macvlan, ifb, dummy...): not an access link")
    return None


def _role_v4(flags: int, cls: str, valid_over: bool, scoped: bool, unspecified: bool, kind, up: bool,
             on_home_link: bool, with_v6: bool) -> AddressRole:
    """The role of an IPv4 address with a daemon that takes IPv4 care-of addresses (RFC 5555)."""
    if flags & _DADFAILED:
        return _no(ROLE_UNUSABLE, _("duplicate address detection failed: another node uses this address"))
    if flags & _TENTATIVE:
        return _no(ROLE_TENTATIVE, _("tentative: duplicate address detection has not finished"))
    if cls == "link-local":
        return _no(ROLE_LINK_LOCAL, _("link-local (169.254.0.0/16): not routable beyond the link"))
    not_access = _not_access(kind, cls)
    if not_access:
        return _no(ROLE_OTHER, not_access)
    if cls == "multicast" or unspecified:
        return _no(ROLE_OTHER, _("not a unicast address"))
    if scoped:
        return _no(ROLE_OTHER, _("not a global-scope address"))
    if on_home_link:
        return _no(ROLE_HOME_LINK, _("on a home link: addresses here are not care-of addresses (draft 6.2.3)"))
    if not up:
        return _no(ROLE_UNUSABLE, _("interface is down or has no carrier"))
    if valid_over:
        return _no(ROLE_UNUSABLE, _("valid lifetime ended"))
    if with_v6:  # a dual-stack uplink is one path: its IPv4 CoA is the engine's fallback, not another CoA
        return _no(ROLE_COA, _("IPv4 care-of address (RFC 5555), used when the home agent has no IPv6 "
                             "address: not counted, this link counts by its IPv6 one"))
    if cls == "global":
        return AddressRole(ROLE_COA, _("usable IPv4 care-of address (RFC 5555)"), True)
    return AddressRole(ROLE_COA, _("usable IPv4 care-of address (RFC 5555), private: the home agent is "
                                 "reached through NAT44"), True)


# --------------------------------------------------------------------------- the incremental analyser
#: the prefix of a /128 whose on-link prefix is looked up once every address of the batch is in
_PENDING = (0, 0, -1)


def _pid(a: Address) -> tuple:
    """A prefix as a cheap dictionary key: (family, network as an int, length)."""
    net = a.network
    return (a.family, int(net.network_address), net.prefixlen)


class _Entry:
    """One address as last analysed."""

    __slots__ = ("key", "addr", "group", "prefix", "expiry")

    def __init__(self, key: AddressKey, addr: Address, group: _Group, prefix, expiry: float | None) -> None:
        self.key, self.addr, self.group, self.prefix, self.expiry = key, addr, group, prefix, expiry

    def __lt__(self, other: _Entry) -> bool:  # heap ties
        return id(self) < id(other)


class _Group:
    """The addresses of one interface with one signature: they all have the same role."""

    __slots__ = ("link", "sig", "v6", "keys", "role", "prefixes", "exp")

    def __init__(self, link: _Link, sig: tuple) -> None:
        self.link, self.sig, self.v6 = link, sig, sig[0] == AF_INET6
        self.keys: dict[AddressKey, None] = {}  # an ordered set
        self.role: AddressRole | None = None  # None until its interface is next processed
        self.prefixes: dict = {}  # on-link prefix -> how many of the keys
        self.exp: list = []  # heap of (expiry, entry), stale ones dropped lazily

    @property
    def counted(self) -> bool:
        return self.role is not None and self.role.counted

    def count_prefix(self, prefix, n: int) -> None:
        c = self.prefixes.get(prefix, 0) + n
        if c:
            self.prefixes[prefix] = c
        else:
            del self.prefixes[prefix]

    def deadline(self, entries: dict) -> float | None:
        """The earliest expiry of its addresses (stale heap items are dropped here)."""
        exp = self.exp
        while exp and entries.get(exp[0][1].key) is not exp[0][1]:
            heapq.heappop(exp)
        return exp[0][0] if exp else None

    def set_role(self, role: AddressRole, roles: dict) -> bool:
        """Give every address of the group ``role`` (in ``roles`` too); when the group joins or leaves z,
        count its prefixes in or out of its link's, in one pass (a group can hold thousands).
        Returns whether the link's set of counted prefixes changed."""
        old = self.role
        self.role = role
        if old is role or old == role:
            return False
        roles.update(dict.fromkeys(self.keys, role))
        if (old is not None and old.counted) == role.counted:
            return False
        link = self.link
        coa = link.coa
        size = len(coa)
        if role.counted:
            for p, n in self.prefixes.items():
                coa[p] = coa.get(p, 0) + n
        else:
            for p, n in self.prefixes.items():
                c = coa[p] - n
                if c:
                    coa[p] = c
                else:
                    del coa[p]
        if self.v6:
            link.v6_counted += len(self.keys) if role.counted else -len(self.keys)
        link.coa_keys = None
        if len(coa) == size:
            return False
        link.coa_ids = None
        return True


class _Link:
    """What is kept per interface (ifindex): its groups and the index of its IPv6 prefixes."""

    __slots__ = ("ifindex", "groups", "nets", "lens", "s128", "pending", "v6_counted", "coa", "coa_ids", "coa_keys",
                 "prefixes_changed")

    def __init__(self, ifindex: int) -> None:
        self.ifindex = ifindex
        self.groups: dict[tuple, _Group] = {}
        #: IPv6 prefixes shorter than /128 of this interface's addresses: length -> network int -> count
        self.nets: dict[int, dict[int, int]] = {}
        self.lens: list[int] | None = []  # the lengths in ``nets``, longest first (None: to sort again)
        self.s128: dict[AddressKey, None] = {}  # the IPv6 /128 addresses, whose prefix depends on ``nets``
        self.pending: list[AddressKey] = []  # /128s added since the last call, their prefix not found yet
        self.v6_counted = 0  # IPv6 addresses counted in z
        self.coa: dict[tuple, int] = {}  # prefix id -> addresses counted in z with it
        self.coa_ids: frozenset | None = frozenset()  # {(ifindex, prefix id)} of ``coa`` (None: to build again)
        self.coa_keys: frozenset[AddressKey] | None = frozenset()  # None: to build again
        self.prefixes_changed = False

    def add_net(self, plen: int, n: int) -> None:
        by_len = self.nets.setdefault(plen, {})
        c = by_len.get(n, 0)
        by_len[n] = c + 1
        if not c:
            self.lens = None
            self.prefixes_changed = True

    def remove_net(self, plen: int, n: int) -> None:
        by_len = self.nets[plen]
        c = by_len[n] - 1
        if c:
            by_len[n] = c
            return
        del by_len[n]
        if not by_len:
            del self.nets[plen]
        self.lens = None
        self.prefixes_changed = True

    def coa_add(self, prefix, n: int) -> bool:
        """Count ``n`` more addresses of ``prefix`` in z; whether the prefix is new to z."""
        c = self.coa.get(prefix, 0)
        self.coa[prefix] = c + n
        if c:
            return False
        self.coa_ids = None
        return True

    def coa_sub(self, prefix, n: int) -> bool:
        """Count ``n`` addresses of ``prefix`` out of z; whether the prefix left z."""
        c = self.coa[prefix] - n
        if c:
            self.coa[prefix] = c
            return False
        del self.coa[prefix]
        self.coa_ids = None
        return True

    def rederive(self, entries: dict) -> bool:
        """Find the on-link prefix of the /128s added since the last call; of every /128 of the
        interface when its prefixes changed. Returns whether its set of counted prefixes changed."""
        keys = self.s128 if self.prefixes_changed else self.pending
        self.prefixes_changed = False
        self.pending = []
        changed = False
        for key in keys:
            e = entries.get(key)
            if e is None:  # added and removed again within the batch
                continue
            new = self.prefix_of_128(e.addr)
            old = e.prefix
            if new == old:
                continue
            g = e.group
            if old is not _PENDING:
                g.count_prefix(old, -1)
            g.count_prefix(new, 1)
            if g.counted:
                if old is not _PENDING:
                    changed |= self.coa_sub(old, 1)
                changed |= self.coa_add(new, 1)
            e.prefix = new
        return changed

    def prefix_of_128(self, a: Address) -> tuple:
        """The on-link prefix (as :func:`_pid`) of a /128 (DHCPv6 IA_NA, RFC 8415; NetworkManager
        installs them so), which carries none of its own: the most specific shorter prefix of another
        address of this interface that contains it, else its /64 (RFC 4291 section 2.5.4: global
        interface identifiers are 64 bits). At most one lookup per distinct prefix length."""
        lens = self.lens
        if lens is None:
            lens = self.lens = sorted(self.nets, reverse=True)
        ip = int(a.ip)
        for plen in lens:
            shift = 128 - plen
            n = (ip >> shift) << shift
            if n in self.nets[plen]:
                return (AF_INET6, n, plen)
        return (AF_INET6, (ip >> 64) << 64, 64)


class Analyser:
    """:func:`analyse`, kept up to date: call :meth:`analyse` after each change of the state.

    Between two calls it redoes only what changed: the addresses added, removed or replaced (a
    changed :class:`~mhgui.core.model.Address` is a new object: the store replaces, never mutates),
    the interfaces that changed (all their addresses' roles, one computation per group of addresses
    with the same facts), addresses whose lifetime ended meanwhile, CoAs bound or unbound, VPN
    addresses; other inputs (the settings, the HoAs, a step back in time, another state object)
    start it from scratch. The answer is always equal to ``analyse(state, now, ...)``.
    Not thread-safe; the returned :class:`Analysis` is never changed afterwards.
    """

    def __init__(self) -> None:
        self._opts: tuple | None = None
        self._state: NodeState | None = None
        self._reset()

    def _reset(self) -> None:
        self._entries: dict[AddressKey, _Entry] = {}
        self._links: dict[int, _Link] = {}
        self._roles: dict[AddressKey, object] = {}
        self._coa_frozen: frozenset | None = frozenset()  # every link's ``coa_ids`` (None: to build again)
        self._nets: dict[tuple, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}  # prefix id -> network
        self._pids: dict[tuple, tuple] = {}  # prefix id -> the same (one object per prefix)
        self._heap: list = []  # (expiry, entry): when roles may change by time alone
        self._home_cands: dict[AddressKey, HomeAddress] = {}  # addresses in a home prefix
        self._home: dict[int, frozenset[HomeAddress]] = {}
        self._memo: dict[tuple, AddressRole] = {}
        self._addrs: dict[AddressKey, Address] = {}
        self._ifaces: dict = {}
        self._bound: frozenset[str] = frozenset()
        self._vpn: dict[str, str] = {}
        self._now = float("-inf")
        self._dirty: set[int] = set()
        self._last: Analysis | None = None

    # ---- the one entry point
    def analyse(self, state: NodeState, now: float, *, allow_ula: bool = False, ipv4_coas: bool = False) -> Analysis:
        """The :class:`Analysis` of ``state`` at ``now`` (as :func:`analyse`)."""
        opts = (allow_ula, ipv4_coas, state.home_addresses)
        if opts != self._opts or state is not self._state or now < self._now:
            self._reset()
            self._opts, self._state = opts, state
            hoas = state.home_addresses
            self._hoa_ips = {ipaddress.ip_address(h.address) for h in hoas}
            self._hoa_nets = [(h, h.network) for h in hoas]
            self._allow_ula, self._ipv4_coas = allow_ula, ipv4_coas
        self._now = now
        changed = self._sync(state, now)
        if not changed and self._last is not None:
            return self._last
        self._last = self._result(state)
        return self._last

    def _sync(self, state: NodeState, now: float) -> bool:
        """Bring the kept roles up to ``state`` at ``now``; whether anything may have changed."""
        redo: dict[AddressKey, None] = {}  # an ordered set: the table's order is the memory's order
        # the daemon's bound CoAs and the VPNs' addresses: only the addresses named change
        bound, vpn = state.bound_coas, state.vpn_addresses
        if bound != self._bound or vpn != self._vpn:
            names = set(bound ^ self._bound)
            names.update(a for a in vpn.keys() | self._vpn.keys() if vpn.get(a) != self._vpn.get(a))
            self._bound, self._vpn = bound, dict(vpn)
            if names:  # rare (a rebind, a VPN up or down): a scan beats keeping an index up to date
                redo.update((k, None) for k, e in self._entries.items() if e.addr.address in names)
        # addresses added, removed or replaced
        cur, old = state.addresses, self._addrs
        removed: list[AddressKey] = []
        if len(cur) != len(old) or cur != old:
            get = old.get
            new_or_changed = [k for k, a in cur.items() if get(k) is not a]
            added = sum(1 for k in new_or_changed if k not in old)
            if len(old) + added != len(cur):
                removed = list(old.keys() - cur.keys())
            for k in removed:
                del old[k]
            for k in new_or_changed:
                old[k] = cur[k]
            redo.update(dict.fromkeys(new_or_changed))
        # lifetimes that ended since the last call
        heap = self._heap
        while heap and heap[0][0] <= now:
            _t, e = heapq.heappop(heap)
            if self._entries.get(e.key) is e:
                redo[e.key] = None
        if len(heap) > 2 * len(self._entries) + 64:
            self._heap = heap = [(e.expiry, e) for e in self._entries.values() if e.expiry is not None]
            heapq.heapify(heap)
        for k in removed:
            self._drop(k)
        for k in redo:
            if k in self._entries:
                self._drop(k)
            a = cur.get(k)
            if a is not None:
                self._add(k, a, now)
        changed = bool(redo or removed)
        # interfaces
        ifaces = state.interfaces
        if ifaces != self._ifaces:
            changed = True
            for i in ifaces.keys() | self._ifaces.keys():
                if ifaces.get(i) != self._ifaces.get(i):
                    self._dirty.add(i)
            self._ifaces = dict(ifaces)
        # home links, from the addresses in a home prefix
        home = self._home_links(ifaces, now)
        if home != self._home:
            changed = True
            self._dirty.update(i for i in home.keys() | self._home.keys() if (i in home) != (i in self._home))
            self._home = home
        for link in self._links.values():
            if (link.prefixes_changed or link.pending) and link.rederive(self._entries):
                self._coa_frozen = None
        dirty, self._dirty = self._dirty, set()
        for i in dirty:
            link = self._links.get(i)
            if link is not None:
                self._refresh_link(link, ifaces.get(i))
        return changed or bool(dirty)

    # ---- per address
    def _add(self, key: AddressKey, a: Address, now: float) -> None:
        link = self._links.get(a.ifindex)
        if link is None:
            link = self._links[a.ifindex] = _Link(a.ifindex)
        sig = _signature(a, now, self._hoa_ips, self._bound, self._vpn)
        # a VPN's address is the VPN's: it gives the link no on-link prefix and makes it no home link
        if a.family == AF_INET6 and sig[4] is None:
            if a.prefixlen < 128:
                prefix = self._prefix_id(a)
                link.add_net(a.prefixlen, prefix[1])
            else:
                link.s128[key] = None
                link.pending.append(key)
                prefix = _PENDING
            for h, net in self._hoa_nets:
                if a.ip in net:
                    self._home_cands[key] = h
                    break
        else:
            prefix = self._prefix_id(a)
        g = link.groups.get(sig)
        if g is None:
            g = link.groups[sig] = _Group(link, sig)
        g.keys[key] = None
        if prefix is not _PENDING:  # a pending /128 joins its prefix's count in _Link.rederive
            g.count_prefix(prefix, 1)
        e = _Entry(key, a, g, prefix, _expiry(a, now))
        self._entries[key] = e
        if g.role is not None:
            self._roles[key] = g.role
            if g.role.counted:
                if prefix is not _PENDING and link.coa_add(prefix, 1):
                    self._coa_frozen = None
                link.v6_counted += g.v6
                link.coa_keys = None
        if e.expiry is not None:
            item = (e.expiry, e)
            heapq.heappush(self._heap, item)
            heapq.heappush(g.exp, item)
        self._dirty.add(a.ifindex)

    def _drop(self, key: AddressKey) -> None:
        e = self._entries.pop(key)
        a, g = e.addr, e.group
        link = g.link
        del g.keys[key]
        pending = e.prefix is _PENDING
        if not pending:
            g.count_prefix(e.prefix, -1)
        self._roles.pop(key, None)
        if g.counted:
            if not pending and link.coa_sub(e.prefix, 1):
                self._coa_frozen = None
            link.v6_counted -= g.v6
            link.coa_keys = None
        if not g.keys:
            del link.groups[g.sig]
        elif len(g.exp) > 2 * len(g.keys) + 8:
            g.exp = [(x.expiry, x) for x in (self._entries[k] for k in g.keys) if x.expiry is not None]
            heapq.heapify(g.exp)
        if a.family == AF_INET6 and g.sig[4] is None:
            if a.prefixlen < 128:
                link.remove_net(a.prefixlen, e.prefix[1])
            else:
                link.s128.pop(key, None)
        self._home_cands.pop(key, None)
        self._dirty.add(a.ifindex)
        if not link.groups and not link.nets:
            del self._links[link.ifindex]

    def _prefix_id(self, a: Address) -> tuple:
        """:func:`_pid` of ``a``, one tuple per prefix (every address keeps its own otherwise)."""
        p = _pid(a)
        got = self._pids.get(p)
        if got is None:
            got = self._pids[p] = p
            self._nets[p] = a.network
        return got

    def _refresh_link(self, link: _Link, iface) -> None:
        """Give every group of ``link`` the role its interface gives it now (IPv6 first: an IPv4
        address' role depends on whether the link has a counted IPv6 CoA)."""
        kind = iface.kind if iface is not None else None
        up = iface.up if iface is not None else False
        on_home = link.ifindex in self._home
        v4 = []
        for g in list(link.groups.values()):
            if g.v6:
                self._set_role(g, (kind, up, on_home, False))
            else:
                v4.append(g)
        with_v6 = link.v6_counted > 0
        for g in v4:
            self._set_role(g, (kind, up, on_home, with_v6))

    def _set_role(self, g: _Group, ctx: tuple) -> None:
        mk = (g.sig, ctx)
        role = self._memo.get(mk)
        if role is None:
            role = self._memo[mk] = _role_of(g.sig, ctx, self._allow_ula, self._ipv4_coas)
        if g.set_role(role, self._roles):
            self._coa_frozen = None

    def _home_links(self, ifaces, now: float) -> dict[int, frozenset[HomeAddress]]:
        """ifindex -> the HoAs whose home link it is: an up access interface with a live address in a
        home prefix (valid, not tentative, not DAD-failed)."""
        home: dict[int, set[HomeAddress]] = {}
        for key, h in self._home_cands.items():
            a = self._entries[key].addr
            iface = ifaces.get(a.ifindex)
            if iface is None or not iface.up or iface.kind in _NON_ACCESS:
                continue
            if int(a.flags) & (_TENTATIVE | _DADFAILED):
                continue
            if a.valid_until is not None and a.valid_until <= now:
                continue
            home.setdefault(a.ifindex, set()).add(h)
        return {i: frozenset(hs) for i, hs in home.items()}

    # ---- the answer
    def _result(self, state: NodeState) -> Analysis:
        hoas = state.home_addresses
        ifaces = state.interfaces
        coa_links = [link for link in self._links.values() if link.coa]
        home = self._home
        active = set()
        for i in {link.ifindex for link in coa_links} | home.keys():
            iface = ifaces.get(i)
            if iface is not None and iface.up and iface.kind not in _NON_ACCESS:
                active.add(i)
        coa_keys = {}
        deadline = None
        for link in coa_links:
            if link.coa_keys is None:
                link.coa_keys = frozenset().union(*(g.keys for g in link.groups.values() if g.counted))
            coa_keys[link.ifindex] = link.coa_keys
            for g in link.groups.values():
                if g.counted:
                    t = g.deadline(self._entries)
                    if t is not None and (deadline is None or t < deadline):
                        deadline = t
        if self._coa_frozen is None:
            for link in coa_links:
                if link.coa_ids is None:
                    link.coa_ids = frozenset(zip(repeat(link.ifindex), link.coa))
            self._coa_frozen = frozenset().union(*(link.coa_ids for link in coa_links))  # reuses the hashes
        homes = []
        for h in hoas:
            where = min((i for i, hs in home.items() if h in hs), default=None)
            homes.append(HomeStatus(h, where is not None, where))
        return Analysis(
            x=len(active), y=len(hoas), z=len(self._coa_frozen), roles=dict(self._roles),
            coa_prefix_ids=self._coa_frozen, active=frozenset(active), home_links=frozenset(home),
            homes=tuple(homes), coa_keys=coa_keys, coa_deadline=deadline, _networks=self._nets,
        )
