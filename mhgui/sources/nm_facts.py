"""NetworkManager's device types as mhgui's interface kinds, without D-Bus or asyncio: shared by its source
(:mod:`mhgui.sources.networkmanager`) and ``mhctl status``'s fast path (:mod:`mhgui.status_bus`)."""

from __future__ import annotations

from ..core.model import InterfaceKind

__all__ = ["DEVICE_KINDS", "device_kind"]

#: ``NMDeviceType`` numbers (NetworkManager's ``nm-dbus-interface.h``, enum
#: ``NMDeviceType``) mapped to our kinds; every other type is ``OTHER`` (an access
#: link of no particular kind: bond, VLAN, team, InfiniBand, Bluetooth, ADSL, PPP...).
DEVICE_KINDS: dict[int, InterfaceKind] = {
    1: InterfaceKind.ETHERNET,  # NM_DEVICE_TYPE_ETHERNET
    20: InterfaceKind.ETHERNET,  # NM_DEVICE_TYPE_VETH
    2: InterfaceKind.WIFI,  # NM_DEVICE_TYPE_WIFI
    8: InterfaceKind.WWAN,  # NM_DEVICE_TYPE_MODEM
    16: InterfaceKind.TUNNEL,  # NM_DEVICE_TYPE_TUN (OpenVPN, wireguard-go...)
    17: InterfaceKind.TUNNEL,  # NM_DEVICE_TYPE_IP_TUNNEL (ip6tnl, sit, gre, ...)
    29: InterfaceKind.TUNNEL,  # NM_DEVICE_TYPE_WIREGUARD
    32: InterfaceKind.LOOPBACK,  # NM_DEVICE_TYPE_LOOPBACK (NetworkManager >= 1.42)
    # virtual links, no access links
    13: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_BRIDGE
    18: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_MACVLAN (macvtap too)
    19: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_VXLAN
    22: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_DUMMY
    24: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_OVS_INTERFACE
    25: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_OVS_PORT
    26: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_OVS_BRIDGE
    31: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_VRF
    34: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_IPVLAN (NetworkManager >= 1.52)
    35: InterfaceKind.VIRTUAL,  # NM_DEVICE_TYPE_GENEVE (NetworkManager >= 1.58)
}


def device_kind(device_type: int) -> InterfaceKind:
    """Our :class:`InterfaceKind` for an ``NMDeviceType`` number (see :data:`DEVICE_KINDS`)."""
    return DEVICE_KINDS.get(device_type, InterfaceKind.OTHER)
