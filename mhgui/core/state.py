"""Events from the sources and the store that applies them.

Data flows one way: sources (netlink, NetworkManager, config) turn what they
see into the events below and hand them to :meth:`StateStore.apply`; the store
updates :class:`~mhgui.core.model.NodeState` and tells subscribers what changed
as a list of :class:`Change`. No Qt, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Union

from .model import Address, AddressKey, HomeAddress, Interface, InterfaceKind, NodeState, address_changed


# --------------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class LinkUpsert:
    """RTM_NEWLINK: a link appeared or changed (netlink fields only)."""

    iface: Interface


@dataclass(frozen=True, slots=True)
class LinkRemoved:
    """RTM_DELLINK."""

    ifindex: int


@dataclass(frozen=True, slots=True)
class AddressUpsert:
    """RTM_NEWADDR."""

    address: Address


@dataclass(frozen=True, slots=True)
class AddressRemoved:
    """RTM_DELADDR."""

    key: AddressKey


@dataclass(frozen=True, slots=True)
class RoutersSnapshot:
    """Every IPv6 default router as (ifindex, router) pairs: replaces the previous set."""

    routers: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class NetlinkSnapshot:
    """A full dump (after start-up or a lost event, e.g. ENOBUFS): replaces all netlink data."""

    interfaces: tuple[Interface, ...]
    addresses: tuple[Address, ...]
    routers: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class NmDevice:
    """What NetworkManager says of one device (``org.freedesktop.NetworkManager.Device``).

    ``state`` is ``NMDeviceState`` (10 unmanaged ... 100 activated, 120 failed).
    """

    path: str
    ifindex: int
    name: str
    kind: InterfaceKind
    state: int
    managed: bool | None = None
    #: Ip6Config AddressData as ("addr", prefix) pairs; () when Ip6Config is "/" (no config)
    ip6_addresses: tuple[tuple[str, int], ...] = ()
    #: ``Device.Wired.Carrier`` etc. where the device has one, else None
    carrier: bool | None = None
    #: ``IpInterface``: the data interface once activated (a modem's wwan0 or ppp0), else ""
    ip_interface: str = ""


@dataclass(frozen=True, slots=True)
class NmDeviceRemoved:
    path: str


@dataclass(frozen=True, slots=True)
class NmVpn:
    """One active VPN connection of NetworkManager (``Connection.Active`` with ``Vpn`` true).

    ``addresses``: its own ``Ip4Config``/``Ip6Config`` AddressData as ("addr", prefix) pairs. A VPN
    without an interface of its own (IPsec) has them on the access interface it runs over.
    """

    path: str
    name: str
    addresses: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class NmVpnsSet:
    """Every active VPN connection NetworkManager lists; replaces the previous set."""

    vpns: tuple[NmVpn, ...]


@dataclass(frozen=True, slots=True)
class NmSnapshot:
    """Every device NetworkManager lists (GetDevices); replaces the previous set."""

    devices: tuple[NmDevice, ...]


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """Health of a source. ``source``: "networkmanager" or "netlink".

    networkmanager: running | stopped | absent | no-access;
    netlink: ok | resyncing | no-access. ``detail`` is a sentence for the user.
    """

    source: str
    status: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class HomeAddressesSet:
    """Configured HoAs (from mip6d.conf and the app's settings) and notes for the user."""

    home_addresses: tuple[HomeAddress, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BoundCoAsSet:
    """CoAs the mobility daemon has bound (its binding update list)."""

    coas: frozenset[str]


Event = Union[
    LinkUpsert, LinkRemoved, AddressUpsert, AddressRemoved,
    NetlinkSnapshot, RoutersSnapshot, NmDevice, NmDeviceRemoved, NmSnapshot, SourceStatus, HomeAddressesSet, BoundCoAsSet,
    NmVpnsSet,
]


def merge_dump(dump: NetlinkSnapshot, events: Iterable[Event]) -> NetlinkSnapshot:
    """The kernel's tables at the end of a re-dump: ``dump`` with the netlink events that arrived meanwhile.

    ``events``: every link and address event received from the bind of the event socket until
    the dump ended, oldest first (other events are ignored; default routes are re-read apart).
    A dump is not atomic: each entry shows its key at the moment the dump passed it, and the
    kernel queues an event after making its change. So for a key that any of these events
    touches, the last such event is at least as new as the dump's entry and wins; a key no event
    touched is as the dump shows it (an address present before and in the dump is unchanged).
    ``RTM_DELLINK`` takes the link's addresses with it. Links and addresses keep the dump's
    order, keys first seen in an event follow in event order. The dump must be consistent (no
    ``NLM_F_DUMP_INTR``, rtnetlink(7)): an interrupted dump can skip entries.
    """
    links = {i.ifindex: i for i in dump.interfaces}
    addrs = {a.key: a for a in dump.addresses}
    for ev in events:
        match ev:
            case LinkUpsert(iface):
                links[iface.ifindex] = iface
            case LinkRemoved(ifindex):
                links.pop(ifindex, None)
                for key in [k for k in addrs if k.ifindex == ifindex]:
                    del addrs[key]
            case AddressUpsert(addr):
                addrs[addr.key] = addr
            case AddressRemoved(key):
                addrs.pop(key, None)
    return NetlinkSnapshot(tuple(links.values()), tuple(addrs.values()), dump.routers)


# --------------------------------------------------------------------------- changes
@dataclass(frozen=True, slots=True)
class Change:
    """One observable change.

    ``kind``: link-added, link-removed, link-up, link-down, link-changed,
    address-added, address-removed, address-changed, router-added,
    router-removed, source-lost, source-back, source-changed, home-addresses-changed, vpn-changed.
    ``before``/``after`` are the old and new objects where they apply. An address whose lifetimes
    alone were restarted or count on is updated without a change
    (:func:`~mhgui.core.model.address_changed`).
    """

    kind: str
    ifindex: int | None = None
    key: AddressKey | None = None
    before: object = None
    after: object = None
    detail: str = ""


Listener = Callable[[list[Change]], None]


@dataclass
class StateStore:
    """Applies events to a :class:`NodeState` and notifies subscribers."""

    state: NodeState = field(default_factory=NodeState)
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: NetworkManager's view, by D-Bus object path
    nm_devices: dict[str, NmDevice] = field(default_factory=dict)
    #: links exactly as netlink reported them, before NetworkManager's view is merged in
    netlink_links: dict[int, Interface] = field(default_factory=dict)
    _listeners: list[Listener] = field(default_factory=list)

    # ---- subscription
    def subscribe(self, listener: Listener, *, first: bool = False) -> Callable[[], None]:
        """Call ``listener(changes)`` after every event that changed something; returns an unsubscribe function.

        ``first``: before the listeners subscribed so far (a cache that later ones read must hear first).
        """
        if first:
            self._listeners.insert(0, listener)
        else:
            self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def apply(self, event: Event) -> list[Change]:
        """Apply one event; returns (and publishes) the changes it made, possibly none."""
        changes = self._dispatch(event)
        if changes:
            for listener in list(self._listeners):
                listener(changes)
        return changes

    def apply_all(self, events: Iterable[Event]) -> list[Change]:
        """Apply each event in turn, publishing each one's changes on their own; returns them all."""
        out: list[Change] = []
        for e in events:
            out.extend(self.apply(e))
        return out

    def apply_batch(self, events: Iterable[Event]) -> list[Change]:
        """Apply ``events`` in order and publish their changes as one list (one call per subscriber).

        The state afterwards is the same as after :meth:`apply_all`; subscribers hear once, so a
        burst (5,000 addresses from netlink) costs them one batch instead of 5,000. The changes are
        in event order; a key may appear more than once (added, then changed, then removed).
        ``TypeError`` for something that is not an event, after publishing what came before it.
        """
        changes: list[Change] = []
        try:
            for e in events:
                changes.extend(self._dispatch(e))
        finally:
            if changes:
                for listener in list(self._listeners):
                    listener(changes)
        return changes

    # ---- internals
    def _dispatch(self, ev: Event) -> list[Change]:
        match ev:
            case LinkUpsert(iface):
                return self._upsert_link(iface)
            case LinkRemoved(ifindex):
                return self._remove_link(ifindex)
            case AddressUpsert(addr):
                return self._upsert_addr(addr)
            case AddressRemoved(key):
                old = self.state.addresses.pop(key, None)
                return [Change("address-removed", key.ifindex, key, before=old)] if old else []
            case NetlinkSnapshot():
                return self._reconcile(ev)
            case RoutersSnapshot(routers):
                return self._reconcile_routers(routers)
            case NmDevice():
                return self._nm_upsert(ev)
            case NmDeviceRemoved(path):
                dev = self.nm_devices.pop(path, None)
                return self._nm_detach(dev) if dev else []
            case NmSnapshot(devices):
                out: list[Change] = []
                keep = {d.path for d in devices}
                for path in [p for p in self.nm_devices if p not in keep]:
                    out += self._nm_detach(self.nm_devices.pop(path))
                for d in devices:
                    out += self._nm_upsert(d)
                return out
            case SourceStatus(source, status, detail):
                return self._source_status(source, status, detail)
            case HomeAddressesSet(hoas, notes):
                if hoas == self.state.home_addresses and notes == self.notes:
                    return []
                before = self.state.home_addresses
                self.state.home_addresses = hoas
                self.notes = notes
                return [Change("home-addresses-changed", before=before, after=hoas)]
            case BoundCoAsSet(coas):
                if coas == self.state.bound_coas:
                    return []
                self.state.bound_coas = coas
                return [Change("home-addresses-changed", detail="bound CoAs")]
            case NmVpnsSet(vpns):
                return self._set_vpns({a: v.name for v in vpns for a, _ in v.addresses})
        raise TypeError(f"not an event: {ev!r}")

    def _merge_nm(self, iface: Interface) -> Interface:
        for dev in self.nm_devices.values():
            if dev.ifindex == iface.ifindex:
                # NetworkManager knows Wi-Fi and modems; netlink's guess yields to it
                if dev.kind is not InterfaceKind.OTHER:
                    iface = iface.with_(kind=dev.kind, kind_source="networkmanager")
                return iface.with_(nm_state=dev.state, nm_managed=dev.managed)
        return iface

    def _upsert_link(self, raw: Interface) -> list[Change]:
        self.netlink_links[raw.ifindex] = raw
        return self._set_link(self._merge_nm(raw))

    def _set_link(self, iface: Interface) -> list[Change]:
        old = self.state.interfaces.get(iface.ifindex)
        if old == iface:
            return []
        self.state.interfaces[iface.ifindex] = iface
        if old is None:
            return [Change("link-added", iface.ifindex, after=iface)]
        if old.up != iface.up:
            return [Change("link-up" if iface.up else "link-down", iface.ifindex, before=old, after=iface)]
        return [Change("link-changed", iface.ifindex, before=old, after=iface)]

    def _remove_link(self, ifindex: int) -> list[Change]:
        self.netlink_links.pop(ifindex, None)
        old = self.state.interfaces.pop(ifindex, None)
        out: list[Change] = []
        for key in [k for k in self.state.addresses if k.ifindex == ifindex]:
            out.append(Change("address-removed", ifindex, key, before=self.state.addresses.pop(key)))
        for r in self.state.routers.pop(ifindex, frozenset()):
            out.append(Change("router-removed", ifindex, before=r))
        if old is not None:
            out.append(Change("link-removed", ifindex, before=old))
        return out

    def _upsert_addr(self, addr: Address) -> list[Change]:
        old = self.state.addresses.get(addr.key)
        if old == addr:
            return []
        self.state.addresses[addr.key] = addr
        if old is not None and not address_changed(old, addr):
            return []  # only the lifetimes were restarted or counted on: kept, not announced
        kind = "address-added" if old is None else "address-changed"
        return [Change(kind, addr.ifindex, addr.key, before=old, after=addr)]

    def _reconcile(self, snap: NetlinkSnapshot) -> list[Change]:
        out: list[Change] = []
        new_links = {i.ifindex: i for i in snap.interfaces}
        for ifindex in [i for i in self.state.interfaces if i not in new_links]:
            out += self._remove_link(ifindex)
        for iface in snap.interfaces:
            out += self._upsert_link(iface)
        new_addrs = {a.key: a for a in snap.addresses}
        for key in [k for k in self.state.addresses if k not in new_addrs]:
            out.append(Change("address-removed", key.ifindex, key, before=self.state.addresses.pop(key)))
        for a in snap.addresses:
            out += self._upsert_addr(a)
        return out + self._reconcile_routers(snap.routers)

    def _reconcile_routers(self, routers: tuple[tuple[int, str], ...]) -> list[Change]:
        out: list[Change] = []
        new_routers: dict[int, set[str]] = {}
        for ifindex, r in routers:
            new_routers.setdefault(ifindex, set()).add(r)
        for ifindex in set(self.state.routers) | set(new_routers):
            old = self.state.routers.get(ifindex, frozenset())
            new = frozenset(new_routers.get(ifindex, ()))
            out += [Change("router-removed", ifindex, before=r) for r in sorted(old - new)]
            out += [Change("router-added", ifindex, after=r) for r in sorted(new - old)]
            if new:
                self.state.routers[ifindex] = new
            else:
                self.state.routers.pop(ifindex, None)
        return out

    def _nm_upsert(self, dev: NmDevice) -> list[Change]:
        old = self.nm_devices.get(dev.path)
        if old == dev:
            return []
        self.nm_devices[dev.path] = dev
        out: list[Change] = []
        if old is not None and old.ifindex != dev.ifindex:
            out += self._relink(old.ifindex)
        return out + self._relink(dev.ifindex)

    def _nm_detach(self, dev: NmDevice) -> list[Change]:
        return self._relink(dev.ifindex)

    def _relink(self, ifindex: int) -> list[Change]:
        raw = self.netlink_links.get(ifindex)
        return [] if raw is None else self._set_link(self._merge_nm(raw))

    def _set_vpns(self, vpn_addresses: dict[str, str]) -> list[Change]:
        if vpn_addresses == self.state.vpn_addresses:
            return []
        self.state.vpn_addresses = vpn_addresses
        names = sorted(set(vpn_addresses.values()))
        return [Change("vpn-changed", detail="VPN addresses: " + (", ".join(names) if names else "none"))]

    def _source_status(self, source: str, status: str, detail: str) -> list[Change]:
        old = self.sources.get(source)
        if old == (status, detail):
            return []
        self.sources[source] = (status, detail)
        healthy = {"running", "ok"}
        if source == "networkmanager" and status != "running":
            # NetworkManager's device data is stale now: forget it
            paths = list(self.nm_devices)
            out: list[Change] = []
            for p in paths:
                out += self._nm_detach(self.nm_devices.pop(p))
            out += self._set_vpns({})
        else:
            out = []
        was_ok = old is not None and old[0] in healthy
        if old is not None and was_ok and status not in healthy:
            kind = "source-lost"
        elif old is not None and not was_ok and status in healthy:
            kind = "source-back"
        else:
            kind = "source-changed"
        return out + [Change(kind, detail=f"{source}: {status}" + (f" ({detail})" if detail else ""))]
