"""Network-namespace labs for tests: real kernels, real veth pairs (needs root).

``Lab`` builds a node namespace with uplinks, each a veth pair whose other end
sits in a peer namespace. Everything is removed on ``close()``.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess

import pytest

_counter = itertools.count()


def netns_available() -> str | None:
    """None when namespaces can be made here, else the reason."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "needs iproute2"
    return None


#: what ``mhctl lab up`` (:mod:`mhgui.lab`) needs besides root
LAB_TOOLS = ("ip", "nft", "sysctl", "dbus-daemon", "dbus-send")


def lab_why_not(tools: tuple[str, ...] = LAB_TOOLS) -> str | None:
    """None when a lab can be made here (root, and every one of ``tools`` on PATH), else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    missing = [t for t in tools if shutil.which(t) is None]
    return f"needs {', '.join(missing)}" if missing else None


def run(*cmd: str, check: bool = True, input: str | None = None) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, input=input)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return p.stdout


class Lab:
    """A node namespace ``self.ns`` and a peer namespace ``self.peer``."""

    def __init__(self, tag: str = "t") -> None:
        n = f"{os.getpid()}-{next(_counter)}"
        self.ns = f"mh-{tag}-{n}"
        self.peer = f"mh-{tag}p-{n}"
        run("ip", "netns", "add", self.ns)
        run("ip", "netns", "add", self.peer)
        for ns in (self.ns, self.peer):
            self.sysctl("net.ipv6.conf.default.accept_dad=0", ns=ns)
            self.sysctl("net.ipv6.conf.all.accept_dad=0", ns=ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")

    def sysctl(self, setting: str, ns: str | None = None) -> None:
        run("ip", "netns", "exec", ns or self.ns, "sysctl", "-qw", setting)

    def ip(self, *args: str, ns: str | None = None, check: bool = True) -> str:
        return run("ip", "-n", ns or self.ns, *args, check=check)

    def uplink(self, name: str, peer_name: str | None = None, up: bool = True) -> int:
        """veth ``name`` in the node namespace ↔ ``peer_name`` in the peer one; returns the node-side ifindex."""
        peer_name = peer_name or f"p-{name}"
        run("ip", "-n", self.ns, "link", "add", name, "type", "veth", "peer", "name", peer_name, "netns", self.peer)
        if up:
            self.ip("link", "set", name, "up")
            self.ip("link", "set", peer_name, "up", ns=self.peer)
        return self.ifindex(name)

    def ifindex(self, name: str, ns: str | None = None) -> int:
        return json.loads(self.ip("-j", "link", "show", "dev", name, ns=ns))[0]["ifindex"]

    def addresses(self, family: str = "-6") -> dict[tuple[int, str, int], frozenset[str]]:
        """``ip -j addr show``: (ifindex, address, prefixlen) -> flag names as in our model."""
        out = {}
        names = ("tentative", "dadfailed", "deprecated", "temporary", "mngtmpaddr", "nodad",
                 "noprefixroute", "home", "optimistic")
        for link in json.loads(self.ip("-j", family, "addr", "show")):
            for a in link.get("addr_info", []):
                flags = {n for n in names if a.get(n)}
                if not a.get("dynamic"):
                    flags.add("permanent")
                out[(link["ifindex"], a["local"], a["prefixlen"])] = frozenset(flags)
        return out

    def close(self) -> None:
        run("ip", "netns", "del", self.ns, check=False)
        run("ip", "netns", "del", self.peer, check=False)


@pytest.fixture
def lab():
    why = netns_available()
    if why:
        pytest.skip(why)
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()
