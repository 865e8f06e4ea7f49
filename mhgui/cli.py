"""``mhctl``: the command-line companion of mhgui (same core, no Qt).

    mhctl status [--json] [--mip6d-conf PATH]
    mhctl monitor [--json] [--mip6d-conf PATH]

Exit status: 0 success; 1 a configuration file is malformed or missing (one
line on stderr naming the file and line); 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import os
import signal
import sys

from . import __version__
from .core.report import render_text, status, taxonomy
from .core.state import Change
from .runtime import ConfigError, Runtime


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--mip6d-conf", metavar="PATH", default=None,
                   help="UMIP configuration file to read home addresses from (default /etc/mip6d.conf; "
                        "a path given here must exist)")
    p.add_argument("--settings", metavar="PATH", default=None, help="the app's settings file (default: XDG config dir)")
    p.add_argument("--no-networkmanager", action="store_true", help="use netlink only")
    p.add_argument("--system-bus", metavar="ADDRESS", default=None, help="D-Bus address of the system bus")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mhctl", description="Multihomed Mobile IPv6 node: status and events.")
    p.add_argument("--version", action="version", version=f"mhctl {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("status", help="print the node's interfaces, addresses, taxonomy and draft scenario")
    _common(s)
    m = sub.add_parser("monitor", help="print one line per change until interrupted")
    _common(m)
    return p


def _runtime(args) -> Runtime:
    return Runtime(mip6d_conf=args.mip6d_conf, settings_file=args.settings,
                   system_bus=args.system_bus, use_networkmanager=not args.no_networkmanager)


async def _status(args) -> int:
    rt = _runtime(args)
    try:
        await rt.start(strict=True)
        s = status(rt.store, rt.clock(), allow_ula=rt.allow_ula, caps=rt.caps)
    finally:
        await rt.stop()
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(render_text(s))
    return 0


def monitor_event(rt: Runtime, c: Change, tax: dict) -> dict:
    """One ``mhctl monitor --json`` line for a change (README, "mhctl monitor")."""
    st = rt.store.state
    iface = None
    if c.ifindex is not None:
        obj = st.interfaces.get(c.ifindex) or c.before or c.after
        iface = getattr(obj, "name", None)
    address = None
    if c.key is not None:
        address = f"{c.key.address}/{c.key.prefixlen}"
    elif c.kind.startswith("router-"):
        address = c.after or c.before
    ev = {
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
        "event": c.kind, "interface": iface, "ifindex": c.ifindex, "address": address,
        "taxonomy": tax,
    }
    if c.detail:
        ev["detail"] = c.detail
    if c.key is not None and c.kind != "address-removed":
        a = st.addresses.get(c.key)
        if a is not None:
            from .core.model import flag_names
            ev["flags"] = flag_names(a.flags, a.family)
    return ev


async def _monitor(args) -> int:
    rt = _runtime(args)
    out = sys.stdout
    ready = False

    def on_changes(changes: list[Change]) -> None:
        if not ready or stop.is_set():
            return
        try:
            write(changes)
        except BrokenPipeError:  # the reader went away (`mhctl monitor | head -1`): end quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)
            stop.set()

    def write(changes: list[Change]) -> None:
        tax = taxonomy(rt.analysis(), rt.caps)
        for c in changes:
            ev = monitor_event(rt, c, tax)
            if args.json:
                out.write(json.dumps(ev) + "\n")
            else:
                what = ev["address"] or ev.get("detail", "")
                out.write(f"{ev['time']} {tax['label']:<8} {ev['event']:<22} {ev['interface'] or '':<15} {what}\n")
        out.flush()

    stop = asyncio.Event()
    rt.store.subscribe(on_changes)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await rt.start(strict=True)
        ready = True
        on_changes([Change("snapshot", detail="initial state")])
        await stop.wait()
    finally:
        await rt.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(_status(args) if args.cmd == "status" else _monitor(args))
    except ConfigError as e:
        print(f"mhctl: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
