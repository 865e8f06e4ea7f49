"""What kind of link an interface is, from rtnetlink's link facts and sysfs (no I/O but :func:`read_devtype`).

Shared by the rtnetlink source (:mod:`mhgui.sources.netlink`) and the iproute2 JSON reader
(:mod:`mhgui.sources.iproute_json`); imports neither asyncio nor pyroute2.
"""

from __future__ import annotations

import os

from ..core.model import InterfaceKind

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000

# ARPHRD_* (include/uapi/linux/if_arp.h)
ARPHRD_ETHER = 1
ARPHRD_PPP = 512
ARPHRD_RAWIP = 519
ARPHRD_TUNNEL, ARPHRD_TUNNEL6, ARPHRD_LOOPBACK, ARPHRD_SIT, ARPHRD_IPGRE, ARPHRD_IP6GRE = 768, 769, 772, 776, 778, 823
ARPHRD_NONE = 0xFFFE
_TUNNEL_TYPES = {ARPHRD_TUNNEL, ARPHRD_TUNNEL6, ARPHRD_SIT, ARPHRD_IPGRE, ARPHRD_IP6GRE}
_TUNNEL_KINDS = {"ip6tnl", "ipip", "sit", "gre", "ip6gre", "gretap", "ip6gretap", "vti", "vti6", "wireguard", "ipip6",
                 "xfrm", "tun"}
#: IFLA_INFO_KIND of virtual links that are no access links (a bridge, macvlan or ipvlan carries
#: containers' or VMs' networks, ifb mirrors ingress traffic, dummy/vrf/vxlan are local or overlays)
VIRTUAL_KINDS = frozenset({"bridge", "macvlan", "macvtap", "ipvlan", "ipvtap", "ifb", "dummy", "vrf", "vxlan",
                           "geneve", "bareudp", "nlmon", "netdevsim", "vcan", "vxcan", "openvswitch"})


def link_kind(ifi_type: int, info_kind: str | None, devtype: str | None) -> InterfaceKind:
    """Interface kind from ``ifi_type`` (ARPHRD_*), ``IFLA_INFO_KIND`` and sysfs ``DEVTYPE``.

    ``devtype`` is the ``DEVTYPE=`` line of ``/sys/class/net/NAME/uevent``
    ("wlan", "wwan", "bridge", ...), or None when unknown.
    """
    if ifi_type == ARPHRD_LOOPBACK:
        return InterfaceKind.LOOPBACK
    if devtype == "wlan":
        return InterfaceKind.WIFI
    if devtype == "wwan" or ifi_type == ARPHRD_RAWIP:
        return InterfaceKind.WWAN
    # tun/tap devices (OpenVPN, wireguard-go...) and IP-less links are VPNs, not access links
    if ifi_type in _TUNNEL_TYPES or ifi_type == ARPHRD_NONE or (info_kind or "") in _TUNNEL_KINDS:
        return InterfaceKind.TUNNEL
    if info_kind in VIRTUAL_KINDS:
        return InterfaceKind.VIRTUAL
    if ifi_type == ARPHRD_ETHER and info_kind in (None, "veth"):
        return InterfaceKind.ETHERNET
    return InterfaceKind.OTHER


def ifname_text(raw) -> str:
    """An interface name as text: the kernel allows any bytes but ``/``, ``:`` and white space;
    bytes that are not UTF-8 are shown as ``\\xNN`` escapes."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "backslashreplace")
    return str(raw)


def read_devtype(ifname: str | bytes) -> str | None:
    """``DEVTYPE`` from ``/sys/class/net/IFNAME/uevent`` (blocking: call in an executor)."""
    name = os.fsencode(ifname)
    if not name or b"/" in name or name in (b".", b".."):
        return None
    try:
        with open(b"/sys/class/net/" + name + b"/uevent", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("DEVTYPE="):
                    return line.strip().split("=", 1)[1]
    except OSError:
        return None
    return None
