"""TUN devices and the kernel routing the engine daemons set up (Linux, pyroute2).

A TUN device opened with ``IFF_TUN | IFF_NO_PI`` gives one L3 packet per
``read()`` (engine.md §7). Writes before the link is up fail with EIO: the
daemons bring it up before they read or write. Everything here raises
``OSError`` (or pyroute2's ``NetlinkError``, an OSError) with the kernel's reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct

__all__ = ["Tun", "open_tun", "set_mtu", "write_sysctl"]

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_MULTI_QUEUE = 0x0100


class Tun:
    """An open TUN device: ``fd`` (non-blocking), ``name``, ``ifindex``."""

    def __init__(self, fd: int, name: str, ifindex: int) -> None:
        self.fd, self.name, self.ifindex = fd, name, ifindex

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_tun(name: str, *, mtu: int = 1400, addresses: tuple[tuple[str, int], ...] = (),
             routes: tuple[str, ...] = ()) -> Tun:
    """Create (or attach to) TUN ``name``, set ``mtu``, add ``addresses`` ((address, prefixlen), without DAD),
    bring it up and add ``routes`` (IPv6 prefixes through it). Needs CAP_NET_ADMIN."""
    from pyroute2 import IPRoute

    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        ifr = struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI)
        fcntl.ioctl(fd, TUNSETIFF, ifr)
        os.set_blocking(fd, False)
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=name)[0]
            ipr.link("set", index=idx, mtu=mtu)
            # no DAD, no router solicitations, no link-local address on a point-to-point L3 device
            for knob in ("accept_dad", "router_solicitations"):
                with contextlib.suppress(OSError):  # best effort: a missing knob changes nothing we rely on
                    write_sysctl(f"net/ipv6/conf/{name}/{knob}", "0")
            for addr, plen in addresses:
                fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
                ipr.addr("replace", index=idx, address=addr, prefixlen=plen, family=fam,
                         flags=0x02 if fam == socket.AF_INET6 else 0)  # IFA_F_NODAD
            ipr.link("set", index=idx, state="up")
            for dst in routes:
                ipr.route("replace", dst=dst, oif=idx, family=socket.AF_INET6)
        return Tun(fd, name, idx)
    except BaseException:
        os.close(fd)
        raise


def set_mtu(ifindex: int, mtu: int) -> None:
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        ipr.link("set", index=ifindex, mtu=mtu)


def write_sysctl(path: str, value: str) -> None:
    """Write ``value`` to ``/proc/sys/<path>`` (``net/ipv6/conf/eth0/proxy_ndp``); OSError when it cannot."""
    with open(f"/proc/sys/{path}", "w") as f:
        f.write(value)
