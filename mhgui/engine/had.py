"""``mhgui-ha``: the home agent daemon (asyncio adapter around :class:`~mhgui.engine.ha.HomeAgentCore`).

Listens on UDP (default port 4191) for signalling and data from mobile nodes,
holds a TUN device (default ``mhha0``) to which the home prefix is routed, and
forwards between them. Configuration: ``/etc/mhgui/ha.toml``
(:func:`mhgui.engine.config.load_ha_config`). State directory: the restart
counter (RFC 5847) and ``bindings.json`` (the binding cache and the counters,
rewritten at most once a second when something changed, for ``mhgui-ha --status``
and monitoring).

What the host needs (README, "Use your own home agent"): IPv6 forwarding
(``net.ipv6.conf.all.forwarding=1``; keep ``accept_ra=2`` on the uplink if it
is configured by router advertisements), the UDP port open, and the home prefix
routed to this host — or, for a prefix that is on-link at the host's own link,
``home_link = "eth0"`` in the config: the daemon then answers neighbour
solicitations for each bound home address (kernel proxy NDP).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from ..atomicfile import atomic_replace
from . import config as engine_config
from .actions import Log
from .logs import daemon_parser, run_until_signal, setup_logging
from .ha import BindingChanged, Deliver, HaNode, HomeAgentCore, Send
from .tun import open_tun, write_sysctl

log = logging.getLogger("mhgui.engine.ha")

BATCH = 64  # datagrams read per wake-up
IPV6_RECVERR = 25


def next_restart_counter(state_dir: str) -> int:
    """Read, increment and persist the RFC 5847 restart counter (u32) in ``state_dir``; OSError if it cannot."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    path = os.path.join(state_dir, "restart_counter")
    try:
        with open(path, "rb") as f:
            old = int(f.read(32).strip() or b"0")
    except (FileNotFoundError, ValueError):
        old = 0
    new = (old + 1) & 0xFFFFFFFF or 1
    atomic_replace(path, lambda f: f.write(b"%d\n" % new), mode=0o600)
    return new


def _peer(addr) -> tuple[str, int]:
    host, port = addr[0], addr[1]
    return host, port


class HomeAgentDaemon:
    """Runs one home agent until ``stop`` is set. ``cfg``: a loaded ``HaConfig``."""

    def __init__(self, cfg, *, clock=time.monotonic, wall=time.time) -> None:
        self.cfg = cfg
        self.clock, self.wall = clock, wall
        self.core: HomeAgentCore | None = None
        self.tun = None
        self.socks: list[socket.socket] = []
        self._dirty = False
        self._written_counters: dict = {}
        self._proxied: set[str] = set()
        self._kernel = ThreadPoolExecutor(1, thread_name_prefix="mhgui-ha-netlink")

    # ------------------------------------------------------------------ setup
    def _nodes(self) -> list[HaNode]:
        import ipaddress
        return [HaNode(n.identity, frozenset(ipaddress.IPv6Address(h).packed for h in n.home_addresses),
                       {k.spi: k.key for k in n.keys}) for n in self.cfg.nodes]

    def _open_sockets(self) -> None:
        for addr in self.cfg.listen:
            fam = socket.AF_INET if "." in addr else socket.AF_INET6
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6 and addr in ("::", ""):
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.bind((addr or "::", self.cfg.port))
            s.setblocking(False)
            self.socks.append(s)

    def _setup_home_link(self, hoa: str, add: bool) -> None:
        """Proxy NDP for ``hoa`` on the configured home link (an on-link home prefix), and its /128 route."""
        from pyroute2 import IPRoute
        link = self.cfg.home_link
        try:
            with IPRoute() as ipr:
                idx = ipr.link_lookup(ifname=link)[0]
                ipr.neigh("add" if add else "del", dst=hoa, ifindex=idx, flags=0x08, family=socket.AF_INET6)  # NTF_PROXY
                ipr.route("replace" if add else "del", dst=f"{hoa}/128", oif=self.tun.ifindex, family=socket.AF_INET6)
            (self._proxied.add if add else self._proxied.discard)(hoa)
        except Exception as e:  # noqa: BLE001 - the binding stays; the operator reads why
            if add or hoa in self._proxied:
                log.error("proxy NDP for %s on %s: %s", hoa, link, e)

    # ------------------------------------------------------------------ run
    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.cfg
        from ..atomicfile import remove_stale_temp_files
        await asyncio.to_thread(remove_stale_temp_files, cfg.state_dir)  # left by a kill mid-write
        counter = next_restart_counter(cfg.state_dir)
        self.core = HomeAgentCore(address=cfg.address, home_prefix=cfg.home_prefix, nodes=self._nodes(),
                                  max_lifetime=cfg.max_lifetime, skew=cfg.skew, start_wall=self.wall(),
                                  restart_counter=counter, log_rate=cfg.log_rate_s)
        routes = () if cfg.home_link else (cfg.home_prefix,)
        self.tun = await asyncio.to_thread(open_tun, cfg.tun, mtu=1400, addresses=((cfg.address, 128),),
                                           routes=routes)
        if cfg.home_link:
            try:
                write_sysctl(f"net/ipv6/conf/{cfg.home_link}/proxy_ndp", "1")
            except OSError as e:
                log.error("cannot set net.ipv6.conf.%s.proxy_ndp: %s", cfg.home_link, e)
        self._open_sockets()
        _check_forwarding()
        loop = asyncio.get_running_loop()
        for s in self.socks:
            loop.add_reader(s.fileno(), self._on_udp, s)
        loop.add_reader(self.tun.fd, self._on_tun)
        log.info("home agent %s for %s listening on %s port %d (restart counter %d, %d nodes)", cfg.address,
                 cfg.home_prefix, ", ".join(cfg.listen), cfg.port, counter, len(cfg.nodes))
        self._write_status()
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
                self._apply(self.core.tick(self.clock()), None)
                if self._dirty or self.core.counters != self._written_counters:
                    self._write_status()
        finally:
            for s in self.socks:
                loop.remove_reader(s.fileno())
                s.close()
            loop.remove_reader(self.tun.fd)
            for hoa in list(self._proxied):
                await asyncio.to_thread(self._setup_home_link, hoa, False)
            self.tun.close()
            log.info("home agent stopped")

    def _on_udp(self, sock: socket.socket) -> None:
        core, now, wall = self.core, self.clock(), self.wall()
        for _ in range(BATCH):
            try:
                data, addr = sock.recvfrom(65535)
            except BlockingIOError:
                return
            except OSError as e:  # an ICMP error queued on the socket: nothing to read this time
                if e.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    continue
                log.warning("UDP receive: %s", e)
                return
            self._apply(core.datagram(data, _peer(addr), now, wall), sock)

    def _on_tun(self) -> None:
        core, now, fd = self.core, self.clock(), self.tun.fd
        for _ in range(BATCH):
            try:
                packet = os.read(fd, 65535)
            except BlockingIOError:
                return
            except OSError as e:
                log.warning("TUN read: %s", e)
                return
            self._apply(core.tun_packet(packet, now), None)

    def _sock_for(self, peer: tuple[str, int]) -> socket.socket | None:
        v4 = "." in peer[0] and ":" not in peer[0]
        for s in self.socks:
            if (s.family == socket.AF_INET) == v4:
                return s
        return self.socks[0] if self.socks else None

    def _apply(self, actions: list, sock: socket.socket | None) -> None:
        for a in actions:
            t = type(a)
            if t is Send:
                s = sock if sock is not None else self._sock_for(a.peer)
                try:
                    s.sendto(a.payload, a.peer)
                except OSError as e:
                    self.core.counters["send-failed"] += 1
                    if e.errno not in (errno.EAGAIN, errno.ENOBUFS, errno.ENETUNREACH, errno.EHOSTUNREACH):
                        log.debug("send to %s: %s", a.peer, e)
            elif t is Deliver:
                try:
                    os.write(self.tun.fd, a.packet)
                except OSError:
                    self.core.counters["tun-write-failed"] += 1
            elif t is BindingChanged:
                self._dirty = True
                if self.cfg.home_link:  # pyroute2's IPRoute cannot run inside the event loop's thread
                    self._kernel.submit(self._setup_home_link, a.hoa, a.binding is not None)
            elif t is Log:
                log.log(logging.getLevelName(a.level), "%s", a.message)

    def _write_status(self) -> None:
        self._dirty = False
        self._written_counters = self.core.counters.copy()
        now = self.clock()
        doc = {"restart_counter": self.core.restart_counter, "counters": dict(self.core.counters),
               "bindings": [{"hoa": b.hoa, "identity": b.identity, "coa": b.coa,
                             "peer": list(b.peer) if b.peer else None,
                             "seq": b.seq, "lifetime": b.lifetime, "remaining": round(b.expires - now, 1),
                             "nat": b.nat, "mcoa": b.mcoa,
                             "paths": [{"bid": p.bid, "coa": p.coa, "peer": list(p.peer) if p.peer else None,
                                        "priority": p.priority, "nat": p.nat, "lifetime": p.lifetime,
                                        "remaining": round(p.expires - now, 1)} for p in b.paths.values()],
                             "flows": [{"fid": f.fid, "priority": f.fid_priority, "bids": list(f.bid_refs),
                                        "selector": f.selector.describe()} for f in b.flows.bindings.values()]}
                            for b in self.core.bindings()]}
        try:
            atomic_replace(os.path.join(self.cfg.state_dir, "bindings.json"),
                           lambda f: f.write(json.dumps(doc, indent=1).encode()), mode=0o644, sync_dir=False)
        except OSError as e:
            log.warning("cannot write the status file: %s", e)


def _check_forwarding() -> None:
    try:
        with open("/proc/sys/net/ipv6/conf/all/forwarding") as f:
            if f.read().strip() != "1":
                log.error("IPv6 forwarding is off (net.ipv6.conf.all.forwarding=0): mobile nodes' traffic will "
                          "not be forwarded. Set it to 1 (and accept_ra=2 on an uplink configured by RAs).")
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    p = daemon_parser("mhgui-ha", "Mobile IPv6 home agent over UDP (mhgui engine).", "/etc/mhgui/ha.toml")
    p.add_argument("--status", action="store_true", help="print the running daemon's binding cache (JSON)")
    args = p.parse_args(argv)
    setup_logging("mhgui-ha", args.verbose)
    try:
        cfg = engine_config.load_ha_config(args.config)
    except engine_config.EngineConfigError as e:
        print(f"mhgui-ha: {e}", file=sys.stderr)
        return 1
    if args.check:
        print(f"{args.config}: OK ({len(cfg.nodes)} nodes)")
        return 0
    if args.status:
        try:
            with open(os.path.join(cfg.state_dir, "bindings.json")) as f:
                sys.stdout.write(f.read())
            return 0
        except OSError as e:
            print(f"mhgui-ha: no status ({e.strerror}): is the daemon running?", file=sys.stderr)
            return 1
    return run_until_signal(HomeAgentDaemon(cfg).run, log)


if __name__ == "__main__":
    sys.exit(main())
