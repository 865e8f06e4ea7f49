"""The lab's network: a pure description (:class:`Topology`) and the commands that build and change it.

Six namespaces, named ``{prefix}-{role}``::

    mn  up0 ──veth── dn0 ar1 wan0 ──veth── ar1 ┐
        up1 ──veth── dn0 ar2 wan0 ──veth── ar2 ├ inet ── ha  wan0 (home agent)
                         (NAT44)               └       ── cn  wan0 (correspondent)

ar1 is an IPv6 access router, ar2 an IPv4-only one with NAT44; both drop (and
count) IPv6 packets sourced from the home prefix, as an ISP's ingress filter
does. inet routes the home prefix to the home agent. Everything here shells out
to ``ip``, ``sysctl`` and ``nft``; a failing command raises :class:`LabError`
naming it.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field

__all__ = [
    "CN_ADDRESS", "HA_ADDRESSES", "HA_HOME_ADDRESS", "HOA", "HOME_PREFIX", "IDENTITY", "PORT", "SPI",
    "NFT_TABLE", "ROLES", "UPLINKS", "LabError", "Topology", "Uplink", "blackhole", "build", "counter",
    "cut", "delete_namespaces", "lab_namespaces", "restore", "run", "uplink", "uplink_state", "validate_prefix",
]

HOME_PREFIX = "2001:db8:10::/64"
HOA = "2001:db8:10::42"
HA_HOME_ADDRESS = "2001:db8:10::1"
HA_ADDRESSES = ("2001:db8:f0::10", "203.0.113.10")
CN_ADDRESS = "2001:db8:c0::2"
PORT = 4191
IDENTITY = "mn1@lab.mhgui.invalid"
SPI = 256

#: the nftables table (family inet) the lab puts in each access router
NFT_TABLE = "mhlab"
ROLES = ("mn", "ar1", "ar2", "inet", "ha", "cn")
_PREFIX_RE = re.compile(r"[a-z0-9-]{1,8}")


class LabError(RuntimeError):
    """A lab operation failed; the message says which command and why."""


def validate_prefix(prefix: str) -> str:
    """``prefix`` if it is 1..8 of lowercase letters, digits and '-', else ValueError."""
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"invalid lab prefix {prefix!r}: use 1 to 8 lowercase letters, digits or '-'")
    return prefix


def run(argv: list[str] | tuple[str, ...], *, input: str | None = None, check: bool = True,
        timeout: float = 30) -> subprocess.CompletedProcess:
    """Run ``argv`` capturing its output; LabError naming the command when it fails (if ``check``)."""
    try:
        p = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise LabError(f"`{argv[0]}` is not installed (needed for: {' '.join(argv)})") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout} s") from None
    if check and p.returncode != 0:
        detail = (p.stderr or p.stdout).strip() or "no output"
        raise LabError(f"`{' '.join(argv)}` failed (exit {p.returncode}): {detail}")
    return p


def _batch(argv: list[str], lines: list[str]) -> None:
    """``ip ... -batch -`` with ``lines``; on failure the error names the failing line."""
    p = run([*argv, "-batch", "-"], input="\n".join(lines) + "\n", check=False)
    if p.returncode != 0:
        err = p.stderr.strip()
        m = re.search(r"Command failed -:(\d+)", err)
        line = lines[int(m.group(1)) - 1] if m and 0 < int(m.group(1)) <= len(lines) else "; ".join(lines)
        raise LabError(f"`{' '.join(argv)} {line}` failed: {err or 'no output'}")


@dataclass(frozen=True)
class Uplink:
    """One of the mobile node's uplinks: interface ``name`` in the MN, its router's side ``router_interface``."""
    name: str
    family: int
    coa: str
    gateway: str
    router_role: str
    router_interface: str = "dn0"
    nat: bool = False

    def as_dict(self, prefix: str) -> dict:
        return {"name": self.name, "family": self.family, "coa": self.coa, "gateway": self.gateway,
                "router_netns": f"{prefix}-{self.router_role}", "router_interface": self.router_interface,
                "nat": self.nat}


UPLINKS = (
    Uplink("up0", 6, "2001:db8:a1::2", "2001:db8:a1::1", "ar1"),
    Uplink("up1", 4, "192.0.2.2", "192.0.2.1", "ar2", nat=True),
)


def uplink(name: str) -> Uplink:
    for u in UPLINKS:
        if u.name == name:
            return u
    raise LabError(f"unknown uplink {name!r}: the lab has {', '.join(u.name for u in UPLINKS)}")


# an access router's filter: ingress drop of the home prefix, and a set of blackholed interfaces
_ROUTER_NFT = f"""table inet {NFT_TABLE} {{
  counter home_ingress {{ }}
  counter blackhole {{ }}
  set blackholed {{ type ifname; }}
  chain forward {{ type filter hook forward priority 0; policy accept;
    iifname @blackholed counter name "blackhole" drop
    oifname @blackholed counter name "blackhole" drop
    ip6 saddr {HOME_PREFIX} counter name "home_ingress" drop
  }}
  chain input {{ type filter hook input priority 0; policy accept;
    iifname @blackholed counter name "blackhole" drop
  }}
}}
"""
_NAT44_NFT = """table ip nat {
  chain postrouting { type nat hook postrouting priority 100; policy accept;
    oifname "wan0" masquerade
  }
}
"""

# every namespace: no DAD (addresses usable at once), addresses survive a link going down (cut/restore)
_BASE_SYSCTLS = ("net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.accept_dad=0",
                 "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.all.keep_addr_on_down=1",
                 "net.ipv6.conf.default.keep_addr_on_down=1")
_V6_FORWARDING = "net.ipv6.conf.all.forwarding=1"
_V4_FORWARDING = "net.ipv4.ip_forward=1"


@dataclass
class Node:
    """What one namespace gets: sysctls (set before its links exist), addresses, routes, an nft ruleset."""
    role: str
    sysctls: list[str] = field(default_factory=lambda: list(_BASE_SYSCTLS))
    addresses: list[tuple[str, str]] = field(default_factory=list)  # (interface, address/len)
    routes: list[str] = field(default_factory=list)  # arguments of `ip route add`
    nft: str = ""


class Topology:
    """The lab for ``prefix``: namespaces, veth pairs, addresses, routes and filters. No side effects."""

    def __init__(self, prefix: str) -> None:
        self.prefix = validate_prefix(prefix)
        n = {r: Node(r) for r in ROLES}
        n["mn"].addresses += [("up0", "2001:db8:a1::2/64"), ("up1", "192.0.2.2/24")]
        n["mn"].routes += ["default via 2001:db8:a1::1 dev up0", "default via 192.0.2.1 dev up1"]
        n["ar1"].sysctls.append(_V6_FORWARDING)
        n["ar1"].addresses += [("dn0", "2001:db8:a1::1/64"), ("wan0", "2001:db8:f1::2/64")]
        n["ar1"].routes += ["default via 2001:db8:f1::1 dev wan0"]
        n["ar1"].nft = _ROUTER_NFT
        # IPv4 only: IPv6 is off before the links come, so they get no address at all (not even link-local)
        n["ar2"].sysctls += ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
                             _V4_FORWARDING]
        n["ar2"].addresses += [("dn0", "192.0.2.1/24"), ("wan0", "198.51.100.2/24")]
        n["ar2"].routes += ["default via 198.51.100.1 dev wan0"]
        n["ar2"].nft = _ROUTER_NFT + _NAT44_NFT
        n["inet"].sysctls += [_V6_FORWARDING, _V4_FORWARDING]
        n["inet"].addresses += [("ar1", "2001:db8:f1::1/64"), ("ar2", "198.51.100.1/24"),
                                ("ha", "2001:db8:f0::1/64"), ("ha", "203.0.113.1/24"), ("cn", "2001:db8:c0::1/64")]
        n["inet"].routes += [f"{HOME_PREFIX} via {HA_ADDRESSES[0]} dev ha", "2001:db8:a1::/64 via 2001:db8:f1::2 dev ar1"]
        n["ha"].sysctls.append(_V6_FORWARDING)
        n["ha"].addresses += [("wan0", f"{HA_ADDRESSES[0]}/64"), ("wan0", f"{HA_ADDRESSES[1]}/24")]
        n["ha"].routes += ["default via 2001:db8:f0::1 dev wan0", "default via 203.0.113.1 dev wan0"]
        n["cn"].addresses += [("wan0", f"{CN_ADDRESS}/64")]
        n["cn"].routes += ["default via 2001:db8:c0::1 dev wan0"]
        self.nodes = n
        #: veth pairs: (role, interface) <-> (role, interface)
        self.veths = [(("mn", "up0"), ("ar1", "dn0")), (("mn", "up1"), ("ar2", "dn0")),
                      (("ar1", "wan0"), ("inet", "ar1")), (("ar2", "wan0"), ("inet", "ar2")),
                      (("ha", "wan0"), ("inet", "ha")), (("cn", "wan0"), ("inet", "cn"))]

    def netns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    @property
    def namespaces(self) -> list[str]:
        return [self.netns(r) for r in ROLES]

    def interfaces(self, role: str) -> list[str]:
        return [i for pair in self.veths for (r, i) in pair if r == role]

    def link_commands(self) -> list[str]:
        """``ip -batch`` lines (host namespace) creating every veth pair directly in its two namespaces."""
        return [f"link add {ai} netns {self.netns(a)} type veth peer name {bi} netns {self.netns(b)}"
                for (a, ai), (b, bi) in self.veths]

    def node_commands(self, role: str) -> list[str]:
        """``ip -n <ns> -batch`` lines for ``role``: links up, addresses (IPv6 without DAD), routes."""
        node = self.nodes[role]
        lines = ["link set lo up"] + [f"link set {i} up" for i in self.interfaces(role)]
        for ifname, addr in node.addresses:
            lines.append(f"addr add {addr} dev {ifname}" + (" nodad" if ":" in addr else ""))
        lines += [f"route add {r}" for r in node.routes]
        return lines


def lab_namespaces(prefix: str) -> list[str]:
    """Existing namespaces of the lab ``prefix``: ``{prefix}-<word>``, the word without '-' (so that
    prefix ``a`` never matches lab ``a-b``'s ``a-b-mn``)."""
    out = run(["ip", "-j", "netns", "list"]).stdout.strip()
    names = [e.get("name", "") for e in json.loads(out)] if out else []
    pat = re.compile(re.escape(prefix) + r"-[a-z0-9]+")
    return sorted(n for n in names if pat.fullmatch(n))


def delete_namespaces(prefix: str) -> list[str]:
    """Delete the lab's namespaces (see :func:`lab_namespaces`); returns their names."""
    names = lab_namespaces(prefix)
    if names:
        _batch(["ip", "-force"], [f"netns del {n}" for n in names])
    return names


def build(topo: Topology) -> None:
    """Create the namespaces, links, addresses, routes and filters. The caller cleans up on LabError."""
    for ns in topo.namespaces:
        run(["ip", "netns", "add", ns])
    for role in ROLES:
        run(["ip", "netns", "exec", topo.netns(role), "sysctl", "-qw", *topo.nodes[role].sysctls])
    _batch(["ip"], topo.link_commands())
    for role in ROLES:
        _batch(["ip", "-n", topo.netns(role)], topo.node_commands(role))
        if topo.nodes[role].nft:
            run(["ip", "netns", "exec", topo.netns(role), "nft", "-f", "-"], input=topo.nodes[role].nft)


def _router(prefix: str, name: str) -> tuple[str, Uplink]:
    u = uplink(name)
    ns = f"{validate_prefix(prefix)}-{u.router_role}"
    if ns not in lab_namespaces(prefix):
        raise LabError(f"lab {prefix!r} is not up (no namespace {ns}); start it with `mhctl lab up --prefix {prefix}`")
    return ns, u


def cut(prefix: str, name: str) -> None:
    """Carrier loss on uplink ``name``: its router's side goes down, the MN's veth loses carrier."""
    ns, u = _router(prefix, name)
    run(["ip", "-n", ns, "link", "set", u.router_interface, "down"])


def blackhole(prefix: str, name: str) -> None:
    """Uplink ``name`` stays up, but its router drops (and counts) everything from or to the MN's side."""
    ns, u = _router(prefix, name)
    run(["ip", "netns", "exec", ns, "nft", "add", "element", "inet", NFT_TABLE, "blackholed",
         f'{{ "{u.router_interface}" }}'])


def restore(prefix: str, name: str) -> None:
    """Undo :func:`cut` and :func:`blackhole` on uplink ``name``."""
    ns, u = _router(prefix, name)
    run(["ip", "-n", ns, "link", "set", u.router_interface, "up"])
    run(["ip", "netns", "exec", ns, "nft", "flush", "set", "inet", NFT_TABLE, "blackholed"])


def uplink_state(prefix: str, name: str) -> dict:
    """``{"cut": bool, "blackholed": bool}`` for uplink ``name`` (read from its router)."""
    ns, u = _router(prefix, name)
    link = json.loads(run(["ip", "-n", ns, "-j", "link", "show", "dev", u.router_interface]).stdout)[0]
    nft = json.loads(run(["ip", "netns", "exec", ns, "nft", "-j", "list", "set", "inet", NFT_TABLE,
                          "blackholed"]).stdout)
    elems = [e["set"].get("elem", []) for e in nft["nftables"] if "set" in e]
    return {"cut": "UP" not in link.get("flags", []),
            "blackholed": any(u.router_interface in es for es in elems)}


def counter(prefix: str, role: str, name: str) -> int:
    """Packets counted so far by the named nft counter (``home_ingress``, ``blackhole``) in router ``role``."""
    ns = f"{validate_prefix(prefix)}-{role}"
    out = json.loads(run(["ip", "netns", "exec", ns, "nft", "-j", "list", "counter", "inet", NFT_TABLE,
                          name]).stdout)
    return sum(e["counter"]["packets"] for e in out["nftables"] if "counter" in e)
