"""``mhgui-mn``: the mobile node daemon (asyncio adapter around :class:`~mhgui.engine.mn.MobileNodeCore`).

- a TUN device (default ``mhmn0``) holds the home addresses; policy routing
  (:mod:`mhgui.engine.routing`) makes a HoA the default source of new IPv6
  connections;
- one UDP socket per uplink, bound to that uplink's care-of address and device
  (``SO_BINDTODEVICE``): the outer source is always the uplink's own CoA
  (ingress filtering, draft 6.1.2), IPv6 or IPv4 (also behind NAT44);
- links and addresses come from rtnetlink (:class:`~mhgui.sources.netlink.NetlinkSource`);
  every change is given to the core at once (movement detection);
- the control API (:mod:`mhgui.engine.mn_dbus`, D-Bus name
  ``io.github.mhgui.MHGui.MobileNode1``) calls :meth:`MobileNodeDaemon.rebind`,
  :meth:`set_preferences` and reads :meth:`bindings` / :meth:`uplinks`.

Configuration: ``/etc/mhgui/mn.toml`` (:func:`mhgui.engine.config.load_mn_config`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import ipaddress
import itertools
import logging
import os
import socket
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Callable

from . import config as engine_config
from .actions import Log
from .logs import daemon_parser, run_until_signal, setup_logging
from .mn import Changed, MobileNodeCore, RebindDone, SendOn, SetMtu, UplinkInfo, WriteTun
from .mn_actions import FlowDone
from .mn_binding import HoaBinding, UplinkPrefs
from .routing import Routing
from .tun import open_tun, set_mtu

log = logging.getLogger("mhgui.engine.mn")

BATCH = 64
SO_BINDTODEVICE = 25
STOP_WAIT = 1.0  # s to wait for deregistration BAs


def _mtu_of(name: str) -> int:
    try:
        with open(f"/sys/class/net/{name}/mtu") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1500


def uplinks_from_state(state, tun_ifindex: int | None, home_networks: list,
                       metered: tuple[str, ...] = ()) -> list[UplinkInfo]:
    """Access interfaces of a :class:`~mhgui.core.model.NodeState` as :class:`UplinkInfo` (pure but for MTUs).

    Loopback, tunnels, virtual links (bridges, macvlan...) and our own TUN are not uplinks. A care-of address is a
    global (or ULA) address, not tentative, DAD-failed, deprecated or
    temporary, outside every home prefix; IPv4: a global-scope address. Modems (wwan) and the
    interfaces named in ``metered`` are probed less often.
    """
    from ..core.model import AddressFlag, InterfaceKind
    bad = AddressFlag.TENTATIVE | AddressFlag.DADFAILED | AddressFlag.DEPRECATED | AddressFlag.TEMPORARY
    now = time.monotonic()
    by_if: dict[int, list] = {}
    for a in state.addresses.values():
        by_if.setdefault(a.ifindex, []).append(a)
    out = []
    for idx, iface in state.interfaces.items():
        if idx == tun_ifindex or iface.kind in (InterfaceKind.LOOPBACK, InterfaceKind.TUNNEL, InterfaceKind.VIRTUAL):
            continue
        coa6 = coa4 = None
        plen6 = 64
        for a in sorted(by_if.get(idx, ()), key=lambda a: a.address):
            if a.family == socket.AF_INET6:
                if coa6 or a.address_class not in ("global", "ula") or int(a.flags) & int(bad):
                    continue
                if a.preferred_until is not None and a.preferred_until <= now:
                    continue
                if any(a.ip in n for n in home_networks):
                    continue
                coa6, plen6 = a.address, a.prefixlen
            elif a.family == socket.AF_INET and coa4 is None and a.scope == 0 and not a.ip.is_loopback:
                coa4 = a.address
        out.append(UplinkInfo(idx, iface.name, iface.up, coa6, coa4, _mtu_of(iface.name),
                              iface.kind is InterfaceKind.WWAN or iface.name in metered, plen6))
    return out


class _UplinkSocket:
    __slots__ = ("sock", "key")

    def __init__(self, sock: socket.socket, key: tuple) -> None:
        self.sock, self.key = sock, key


class MobileNodeDaemon:
    """Runs the mobile node until ``stop`` is set. ``cfg``: a loaded ``MnConfig``; ``key``: the MN-HA key."""

    def __init__(self, cfg, key: bytes, path: str | None = None) -> None:
        self.cfg = cfg
        self.config_path = path
        ha = cfg.home_agent
        self.ha_addr = {}
        for a in ha.addresses:
            self.ha_addr.setdefault(ipaddress.ip_address(a).version, a)
        self.port = ha.port
        hoas = []
        for h in cfg.home_addresses:
            hoas.append(HoaBinding(ipaddress.IPv6Address(h.address).compressed, h.prefix_len,
                                   UplinkPrefs(tuple(h.preference), tuple(h.backup), tuple(h.never)),
                                   h.default_route))
        self.home_networks = [ipaddress.IPv6Interface(f"{h.address}/{h.prefix_len}").network
                              for h in cfg.home_addresses]
        p = cfg.probe
        self.core = MobileNodeCore(identity=cfg.identity, spi=cfg.spi, key=key, ha_home=ha.address,
                                   ha_families=set(self.ha_addr), hoas=hoas, lifetime=cfg.tunnel.lifetime,
                                   interval=p.interval_ms / 1000, misses=p.misses,
                                   metered_interval=p.metered_interval_ms / 1000, keepalive=p.keepalive_s,
                                   mcoa=cfg.tunnel.multiple_care_of)
        if cfg.load_sharing:
            self.core.set_weights(dict(cfg.load_sharing), 0.0, 0.0)
        self.tun = None
        self.routing: Routing | None = None
        self._socks: dict[int, _UplinkSocket] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._requests = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._listeners: list[Callable[[str, dict], None]] = []
        self.store = None
        self.netlink = None
        self.ready = asyncio.Event()
        # pyroute2's IPRoute cannot run inside an event loop: kernel changes go, in order, to one thread
        self._kernel = ThreadPoolExecutor(1, thread_name_prefix="mhgui-mn-netlink")
        self.restart_requested = False
        self._stop: asyncio.Event | None = None

    # ------------------------------------------------------------------ API for the control interface
    def now(self) -> float:
        return self._loop.time()

    def subscribe(self, listener: Callable[[str, dict], None]) -> None:
        """``listener(what, detail)`` on every :class:`Changed` (bindings, uplinks, preferences)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[str, dict], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def counters(self) -> dict[str, int]:
        """What the core counted (packets, drops by reason, BUs sent...)."""
        return dict(self.core.counters)

    def bindings(self) -> list[dict]:
        return self.core.bindings_view(self.now())

    def uplinks(self) -> list[dict]:
        return self.core.uplinks_view()

    async def rebind(self, hoa: str, ifname: str) -> RebindDone:
        """Bind ``hoa`` through ``ifname``; returns when the BA came (or the refusal, or 10 s without a BA)."""
        rid = next(self._requests)
        fut = self._loop.create_future()
        self._waiting[rid] = fut
        self._act(self.core.rebind(rid, hoa, ifname, self.now(), time.time()))
        try:
            return await fut
        finally:
            self._waiting.pop(rid, None)

    async def _request(self, start) -> FlowDone:
        rid = next(self._requests)
        fut = self._loop.create_future()
        self._waiting[rid] = fut
        self._act(start(rid))
        try:
            return await fut
        finally:
            self._waiting.pop(rid, None)

    async def add_flow(self, hoa: str, selector, uplinks) -> FlowDone:
        """Bind one flow (a TrafficSelector) of ``hoa`` to ``uplinks`` (names; several = a copy on each);
        returns when the home agent confirmed or refused it (or 10 s passed), with the reason in words."""
        return await self._request(lambda rid: self.core.add_flow(rid, hoa, selector, uplinks, self.now(),
                                                                  time.time()))

    async def change_flow(self, hoa: str, fid: int, uplinks) -> FlowDone:
        return await self._request(lambda rid: self.core.change_flow(rid, hoa, fid, uplinks, self.now(),
                                                                     time.time()))

    async def remove_flow(self, hoa: str, fid: int) -> FlowDone:
        return await self._request(lambda rid: self.core.remove_flow(rid, hoa, fid, self.now(), time.time()))

    def flows(self) -> list[dict]:
        return self.core.flows_view()

    def set_weights(self, weights: dict[str, int]) -> None:
        """Load sharing weights per uplink name (empty = off); ValueError with a sentence when invalid."""
        self._act(self.core.set_weights(weights, self.now(), time.time()))

    def set_preferences(self, hoa: str, preference, backup, never) -> None:
        """ValueError with a sentence when invalid; persisted in the config file when it changed."""
        self._act(self.core.set_preferences(hoa, preference, backup, never, self.now(), time.time()))

    def request_restart(self, stop: asyncio.Event | None = None) -> None:
        """Stop (deregistering) and start again with the configuration on disk (after ConfigureHomeAgent)."""
        self.restart_requested = True
        if self._stop is not None:
            self._stop.set()

    # ------------------------------------------------------------------ run
    async def run(self, stop: asyncio.Event) -> None:
        from ..core.state import StateStore
        from ..sources.netlink import NetlinkSource
        self._loop = asyncio.get_running_loop()
        self._stop = stop
        cfg = self.cfg
        hoas = [h.hoa for h in self.core.hoas.values()]
        run = partial(self._loop.run_in_executor, self._kernel)
        self.tun = await run(partial(open_tun, cfg.tunnel.name, mtu=cfg.tunnel.mtu or 1400,
                                     addresses=tuple((h, 128) for h in hoas)))
        default = next((h.hoa for h in self.core.hoas.values() if h.default_route), None)
        self.routing = Routing(cfg.tunnel.table, self.tun.ifindex, hoas, default)
        await run(self.routing.install)
        self._loop.add_reader(self.tun.fd, self._on_tun)
        self.store = StateStore()
        self.store.subscribe(lambda _changes: self._links_changed())
        self.netlink = NetlinkSource(self.store.apply)  # sysfs DEVTYPE tells a modem (wwan) apart
        await self.netlink.start()
        log.info("mobile node %s: home addresses %s, home agent %s (%s) port %d", cfg.identity,
                 ", ".join(hoas), cfg.home_agent.address, ", ".join(cfg.home_agent.addresses), self.port)
        self.ready.set()
        try:
            await stop.wait()
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        self._act(self.core.stop(self.now(), time.time()))
        deadline = self.now() + STOP_WAIT
        while not self.core.deregistered() and self.now() < deadline:
            await asyncio.sleep(0.02)
        if self._timer is not None:
            self._timer.cancel()
        await self.netlink.stop()
        for us in self._socks.values():
            self._loop.remove_reader(us.sock.fileno())
            us.sock.close()
        self._socks.clear()
        self._loop.remove_reader(self.tun.fd)
        await self._loop.run_in_executor(self._kernel, partial(self.routing.remove, quiet=True))
        self._kernel.shutdown(wait=True)
        self.tun.close()
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_result(RebindDone(0, "", False, 0.0, None, None, "the mobile node daemon stopped"))
        # (a FlowDone waiter reads .confirmed/.reason too: a RebindDone answers it the same way)
        log.info("mobile node stopped%s", "" if self.core.deregistered() else " (not every deregistration was acknowledged)")

    def _links_changed(self) -> None:
        infos = uplinks_from_state(self.store.state, self.tun.ifindex, self.home_networks, self.cfg.probe.metered)
        self._sync_sockets(infos)
        self._in_kernel(self.routing.coas, {f"{i.coa6}/{i.coa6_prefixlen}" for i in infos if i.coa6},
                        what="the care-of address rules")
        self._act(self.core.uplinks_changed(infos, self.now(), time.time()))

    # ------------------------------------------------------------------ sockets
    def _sync_sockets(self, infos: list[UplinkInfo]) -> None:
        want = {}
        for i in infos:
            path = self.core.path_of(i) if i.carrier else None
            if path is not None:
                want[i.ifindex] = (path[0], path[1], i.name)
        for idx in list(self._socks):
            if want.get(idx) != self._socks[idx].key:
                us = self._socks.pop(idx)
                self._loop.remove_reader(us.sock.fileno())
                us.sock.close()
        for idx, key in want.items():
            if idx in self._socks:
                continue
            fam, coa, name = key
            s = socket.socket(socket.AF_INET6 if fam == 6 else socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, name.encode())
                if fam == 6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                s.bind((coa, 0))
                s.setblocking(False)
            except OSError as e:
                s.close()
                log.warning("cannot open the UDP socket of %s (%s): %s", name, coa, e)
                continue
            self._socks[idx] = _UplinkSocket(s, key)
            self._loop.add_reader(s.fileno(), self._on_udp, idx, s)

    def _on_udp(self, ifindex: int, sock: socket.socket) -> None:
        core, now, wall = self.core, self.now(), time.time()
        for _ in range(BATCH):
            try:
                data, _addr = sock.recvfrom(65535)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    continue
                break
            self._apply(core.datagram(ifindex, data, now, wall))
        self._arm()  # once per batch: signalling may have set a timer (data never does)

    def _on_tun(self) -> None:
        core, now, fd = self.core, self.now(), self.tun.fd
        for _ in range(BATCH):
            try:
                packet = os.read(fd, 65535)
            except BlockingIOError:
                break
            except OSError as e:
                log.warning("TUN read: %s", e)
                break
            self._apply(core.tun_packet(packet, now))  # data only: no timer changes, nothing to arm

    # ------------------------------------------------------------------ actions
    def _apply(self, actions: list) -> None:
        for a in actions:
            t = type(a)
            if t is SendOn:
                us = self._socks.get(a.ifindex)
                if us is None:
                    self.core.counters["send-no-socket"] += 1
                    continue
                try:
                    us.sock.sendto(a.payload, (self.ha_addr[a.family], self.port))
                except OSError:
                    self.core.counters["send-failed"] += 1
            elif t is WriteTun:
                try:
                    os.write(self.tun.fd, a.packet)
                except OSError:
                    self.core.counters["tun-write-failed"] += 1
            elif t is Changed:
                for cb in list(self._listeners):
                    try:
                        cb(a.what, a.detail)
                    except Exception:  # noqa: BLE001 - a listener's bug must not stop the engine
                        log.exception("event listener failed")
                if a.what == "bindings" and a.detail.get("event") == "registered":
                    log.info("%s registered through %s (CoA %s%s, %d s)", a.detail["hoa"], a.detail["uplink"],
                             a.detail["coa"], ", NAT" if a.detail["nat"] else "", a.detail["lifetime"])
                elif a.what == "preferences":
                    self._persist_preferences()
            elif t is RebindDone or t is FlowDone:
                fut = self._waiting.get(a.request)
                if fut is not None and not fut.done():
                    fut.set_result(a)
            elif t is SetMtu:
                self._in_kernel(set_mtu, self.tun.ifindex, a.mtu, what=f"the tunnel MTU ({a.mtu})")
            elif t is Log:
                log.log(logging.getLevelName(a.level), "%s", a.message)

    def _act(self, actions: list) -> None:
        """Carry out ``actions``, then arm the core's next timer."""
        self._apply(actions)
        self._arm()

    def _in_kernel(self, fn, *args, what: str) -> None:
        """Run a pyroute2 change on the netlink thread; a failure is logged (the engine runs on)."""
        def done(f: Future) -> None:
            if f.exception() is not None:
                log.warning("cannot set %s: %s", what, f.exception())
        try:
            self._kernel.submit(fn, *args).add_done_callback(done)
        except RuntimeError:  # shutting down
            pass

    def _arm(self) -> None:
        when = self.core.next_timer()
        if self._timer is not None:
            if self._timer.when() <= when:
                return
            self._timer.cancel()
        if when == float("inf"):
            self._timer = None
            return
        self._timer = self._loop.call_at(max(when, self._loop.time()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._act(self.core.tick(self.now(), time.time()))

    def _persist_preferences(self) -> None:
        path = self.config_path
        if not path:
            return
        try:
            homes = tuple(dataclasses.replace(hc, preference=tuple(h.prefs.preference), backup=tuple(h.prefs.backup),
                                              never=tuple(h.prefs.never))
                          for h, hc in zip(self.core.hoas.values(), self.cfg.home_addresses))
            weights = tuple(sorted(self.core.weights.items()))
            if homes == self.cfg.home_addresses and weights == self.cfg.load_sharing:
                return
            self.cfg = dataclasses.replace(self.cfg, home_addresses=homes, load_sharing=weights)
            engine_config.write_mn_config(path, self.cfg)
        except (OSError, ValueError) as e:
            log.warning("preferences apply now but could not be saved to %s: %s", path, e)


API_RETRY_S = (1.0, 30.0)  # first and longest wait before offering the control API again


async def _keep_api(daemon, config_path: str, services: list, stop: asyncio.Event) -> None:
    """Offer the control API on the system bus, and again whenever the connection is lost (the bus restarted,
    or it dropped us): the engine never stays unreachable while it runs. Failures are logged, once per
    kind, and retried with a growing wait."""
    try:
        from .mn_dbus import serve
    except ImportError:
        log.warning("control API not available in this build")
        return
    wait, said = API_RETRY_S[0], None
    while not stop.is_set():
        try:
            service = await serve(daemon, config_path=config_path)
        except Exception as e:  # noqa: BLE001 - the engine runs on without its API
            text = str(e)
            if text != said:
                bus = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/dbus/system_bus_socket")
                log.error("control API not offered on the system bus (%s): %s. The engine runs on without it "
                          "and tries again; the app and mhctl cannot see it until then (start the system bus, "
                          "or use --no-dbus to say this is meant)", bus, e)
                said = text
            await asyncio.sleep(wait)
            wait = min(wait * 2, API_RETRY_S[1])
            continue
        services[:] = [service]
        wait, said = API_RETRY_S[0], None
        try:
            # shielded: cancelling this keeper at shutdown must not cancel dbus-fast's own future (close() awaits it)
            await asyncio.shield(service.bus.wait_for_disconnect())
            why = "closed"
        except Exception as e:  # noqa: BLE001 - dbus-fast raises what ended the connection
            why = str(e) or type(e).__name__
        if stop.is_set():
            return
        log.warning("the system bus connection of the control API was lost (%s): offering it again", why)
        await service.close()
        services.clear()
        await asyncio.sleep(API_RETRY_S[0])


def main(argv: list[str] | None = None) -> int:
    p = daemon_parser("mhgui-mn", "Mobile IPv6 mobile node over UDP (mhgui engine).",
                      engine_config.DEFAULT_MN_CONFIG)
    p.add_argument("--no-dbus", action="store_true", help="do not offer the control API on the system bus")
    args = p.parse_args(argv)
    setup_logging("mhgui-mn", args.verbose)
    try:
        cfg = engine_config.load_mn_config(args.config)
        key = engine_config.read_key_file(cfg.key_file)
    except engine_config.EngineConfigError as e:
        print(f"mhgui-mn: {e}", file=sys.stderr)
        return 1
    if args.check:
        print(f"{args.config}: OK")
        return 0
    from ..atomicfile import remove_stale_temp_files
    for d in {os.path.dirname(os.path.abspath(args.config)), os.path.dirname(os.path.abspath(cfg.key_file))}:
        remove_stale_temp_files(d)  # what a writer killed mid-write left (mn.toml, its .bak, the key)
    daemon = MobileNodeDaemon(cfg, key, args.config)

    async def _main(stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        service = None
        task = loop.create_task(daemon.run(stop))
        if not args.no_dbus:
            ready = loop.create_task(daemon.ready.wait())
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
        services: list = []
        keeper = None
        if not args.no_dbus and daemon.ready.is_set():
            keeper = loop.create_task(_keep_api(daemon, args.config, services, stop))
        try:
            await task
        finally:
            if keeper is not None:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
            for service in services:
                await service.close()

    status = run_until_signal(_main, log)
    if status == 0 and daemon.restart_requested:
        log.info("restarting with the new configuration")
        os.execv(sys.executable, [sys.executable, "-m", "mhgui.engine.mnd", *(argv if argv is not None else sys.argv[1:])])
    return status


if __name__ == "__main__":
    sys.exit(main())
