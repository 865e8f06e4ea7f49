"""Process life cycle: command line, configuration, sockets, VT, signals, exit codes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from . import config, mh
from .vt import Command, Session, VTServer, common_commands

log = logging.getLogger("umipdouble")

DEFAULT_CONFIG = "/usr/local/etc/mip6d.conf"  # $(sysconfdir)/mip6d.conf of a default ./configure
DEFAULT_VT_SERVICE = "7777"
NODE_NAMES = {"MN": "Mobile Node", "HA": "Home Agent", "CN": "Correspondent Node"}


class Stats:
    """MH message counters for the ``stats`` command."""

    def __init__(self) -> None:
        self.inputs = {t: 0 for t in mh.MH_NAMES}
        self.outputs = {t: 0 for t in mh.MH_NAMES}

    def inp(self, t: int) -> None:
        if t in self.inputs:
            self.inputs[t] += 1

    def out(self, t: int) -> None:
        if t in self.outputs:
            self.outputs[t] += 1

    def dump(self, sess: Session, rest: str) -> str:
        lines = ["Input Statistics:\n"]
        lines += [f"     {n} {mh.MH_NAMES[t]}\n" for t, n in self.inputs.items()]
        lines.append("Output Statistics:\n")
        lines += [f"     {n} {mh.MH_NAMES[t]}\n" for t, n in self.outputs.items()]
        return "".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mip6d", description="Test double of UMIP's mip6d (see umipdouble/__init__.py)")
    p.add_argument("-c", dest="config", metavar="FILE", help=f"configuration file (default {DEFAULT_CONFIG})")
    p.add_argument("--vt-service", metavar="PORT", default=DEFAULT_VT_SERVICE,
                   help="VT port or service name on localhost (default 7777)")
    p.add_argument("--ha-stand-in", action="store_true",
                   help="act as a home agent whatever NodeConfig says")
    return p


class Daemon:
    def __init__(self, conf: config.Config, args: argparse.Namespace) -> None:
        self.conf = conf
        self.args = args
        self.stats = Stats()
        self.stop_event: asyncio.Event | None = None
        self.node = None
        self.vt: VTServer | None = None

    def _reload(self) -> None:
        path = self.conf.file
        try:
            new = config.load(path, check_interfaces=False)
        except (config.ConfigError, config.OpenError) as e:
            log.error("SIGHUP: %s; keeping the old configuration", e)
            return
        if self.node is not None:
            self.node.reload_interfaces(new)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        try:
            sock = mh.MHSocket()
        except OSError:
            print("Unable to open MH socket! Do you have root permissions?", file=sys.stderr)
            return 1
        tree: dict[str, Command] = common_commands()
        tree["stats"] = Command(self.stats.dump)
        if self.conf.node == "MN":
            from .mn import MobileNode
            self.node = MobileNode(self.conf, sock, self.stats)
        elif self.conf.node == "HA":
            from .ha import HomeAgent
            self.node = HomeAgent(self.conf, sock, self.stats)
        if self.node is not None:
            tree.update(self.node.commands())
        else:  # correspondent node: an (always empty) binding cache
            tree["bc"] = Command(lambda s, r: "")
            tree["nonce"] = Command(lambda s, r: "")
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        log.info("mip6d started (%s)", NODE_NAMES[self.conf.node])
        try:
            if self.node is not None:
                await self.node.start()
            self.vt = VTServer(tree, self.args.vt_service, self.stop_event.set)
            try:
                self.vt.start()  # started last, as in main()
            except OSError as e:
                print(f"mip6d: VT: {e.strerror or e}", file=sys.stderr)
                return 1
            await self.stop_event.wait()
        finally:
            if self.vt is not None:
                self.vt.close()
            if self.node is not None:
                await self.node.stop()
            sock.close()
            log.info("mip6d stopped (%s)", NODE_NAMES[self.conf.node])
        return 0


def _setup_logging(conf: config.Config) -> None:
    handler: logging.Handler
    if conf.debug_log_file:
        handler = logging.FileHandler(conf.debug_log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    fmt = f"mip6d[{os.getpid()}]: %(message)s"
    if conf.debug_level >= 3:  # milliseconds since start, for timing handovers
        fmt = f"mip6d[{os.getpid()}] %(relativeCreated)d: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if conf.debug_level > 1 else logging.INFO if conf.debug_level > 0 else logging.WARNING)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 1
    path = args.config
    try:
        if path is None:
            if os.path.exists(DEFAULT_CONFIG):
                conf = config.load(DEFAULT_CONFIG)
            else:
                conf = config.Config(file=DEFAULT_CONFIG)  # missing default file: CN defaults, silently
        else:
            conf = config.load(path)
        if args.ha_stand_in:
            conf.node = "HA"
        if conf.node == "HA":
            config.check_ha_interfaces(conf)
    except config.OpenError as e:
        print(f"mip6d: cannot read configuration file {e}", file=sys.stderr)
        return 1
    except config.ConfigError as e:
        print(str(e), file=sys.stderr)
        return 1
    _setup_logging(conf)
    try:
        return asyncio.run(Daemon(conf, args).run())
    except KeyboardInterrupt:
        return 0
