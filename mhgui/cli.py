"""``mhctl``: the command-line companion of mhgui (same core, no Qt).

    mhctl status [--json] [--mip6d-conf PATH]
    mhctl monitor [--json] [--mip6d-conf PATH]
    mhctl flows [--json]

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
import time

from . import __version__
from .core.report import render_text, status, taxonomy
from .core.state import Change
from .daemons.base import plan_when_ready
from .runtime import ConfigError, Runtime, choose_driver


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--mip6d-conf", metavar="PATH", default=None,
                   help="UMIP configuration file to read home addresses from (default /etc/mip6d.conf; "
                        "a path given here must exist)")
    p.add_argument("--settings", metavar="PATH", default=None, help="the app's settings file (default: XDG config dir)")
    p.add_argument("--no-networkmanager", action="store_true", help="use netlink only")
    p.add_argument("--system-bus", metavar="ADDRESS", default=None, help="D-Bus address of the system bus")


def _count(text: str) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {n}")
    return n


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mhctl", description="Multihomed Mobile IPv6 node: status and events.")
    p.add_argument("--version", action="version", version=f"mhctl {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("status", help="print the node's interfaces, addresses, taxonomy and draft scenario")
    _common(s)
    m = sub.add_parser("monitor", help="print one line per change until interrupted")
    _common(m)
    b = sub.add_parser("bindings", help="the mobility daemon's binding table (mhgui's engine, or UMIP mip6d's "
                                        "terminal)")
    _common(b)
    r = sub.add_parser("rebind", help="bind a home address through an interface (mip6d: restarts it; "
                                      "mhgui's engine: that HoA alone, no restart)")
    _common(r)
    r.add_argument("hoa", help="the home address, e.g. 2001:db8:1::100")
    r.add_argument("interface", help="the interface to use, e.g. wlan0")
    r.add_argument("--yes", action="store_true", help="do not ask before restarting the daemon")
    r.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the acknowledgement (30)")
    f = sub.add_parser("flows", help="the node's TCP and UDP flows: interface, local address role, movability")
    _common(f)
    f.add_argument("--all", action="store_true", help="also connections that are closing (TIME-WAIT...)")
    mv = sub.add_parser("move", help="move a flow (its id from `mhctl flows`) to an interface, saying what that means")
    _common(mv)
    mv.add_argument("flow", help="the flow's id, e.g. 'tcp [2001:db8:a::5]:40000 [2001:db8:f::1]:443'")
    mv.add_argument("interface")
    mv.add_argument("--yes", action="store_true", help="do what is offered without asking")
    ru = sub.add_parser("rules", help="steering rules: list (default), add DEST IFACE, edit ID IFACE, remove ID")
    _common(ru)
    ru.add_argument("action", nargs="?", default="list", choices=("list", "add", "edit", "remove"))
    ru.add_argument("args", nargs="*", help="add: DESTINATION INTERFACE; edit: ID INTERFACE; remove: ID")
    lg = sub.add_parser("log", help="the failovers the mhgui window recorded, with their timings")
    lg.add_argument("--json", action="store_true", help="machine-readable output (a JSON list, oldest first)")
    lg.add_argument("--file", metavar="PATH", default=None,
                    help="the journal (default $XDG_STATE_HOME/mhgui/failover.jsonl)")
    lg.add_argument("-n", "--last", type=_count, default=0, metavar="N", help="only the last N failovers")
    from .lab.cli import add_lab_parser
    add_lab_parser(sub)
    for sp in (s, m, b, r, f, mv, ru):
        sp.add_argument("--vt-port", type=int, default=7777, metavar="N",
                        help="port of mip6d's terminal on localhost (its --vt-service; default 7777)")
    return p


async def _runtime(args, vt_port: int | None = ...) -> Runtime:
    """The runtime with the node's mobility daemon: mhgui's engine when it runs, else UMIP (choose_driver)."""
    port = args.vt_port if vt_port is ... else vt_port
    daemon = await choose_driver(args.system_bus, vt_port=port)
    return Runtime(mip6d_conf=args.mip6d_conf, settings_file=args.settings,
                   system_bus=args.system_bus, use_networkmanager=not args.no_networkmanager,
                   vt_port=port, daemon=daemon)


async def _daemon_settled(rt: Runtime, timeout: float = 3.0) -> None:
    """Wait until the daemon driver has connected (and polled once) or said why not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while rt.daemon.status.state in ("starting", "stopped", "reconnecting") and loop.time() < deadline:
        await asyncio.sleep(0.02)
    if rt.daemon.connected:
        await rt.daemon.refresh()


def daemon_json(rt: Runtime) -> dict:
    """``{"daemon": {...}, "bindings": [...]}`` as ``mhctl bindings --json`` prints it (README)."""
    st = rt.daemon.status
    now = rt.clock()
    return {
        "daemon": {"name": st.name, "node": st.node, "reachable": st.reachable, "state": st.state,
                   "error": st.error},
        "bindings": [b.to_json(now) for b in rt.daemon.bindings()],
    }


async def _bindings(args) -> int:
    rt = await _runtime(args)
    try:
        await rt.start(strict=True)
        await _daemon_settled(rt)
        rt.push_live()
        out = daemon_json(rt)
    finally:
        await rt.stop()
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    d = out["daemon"]
    if not d["reachable"]:
        print(f"{d['name']}: not reachable ({d['state']}): {d['error'] or 'no answer'}")
        return 0
    print(f"{d['name']} ({'mobile node' if d['node'] == 'mn' else 'home agent' if d['node'] == 'ha' else d['node']})")
    if not out["bindings"]:
        print("  no bindings")
    for b in out["bindings"]:
        rem = "?" if b["lifetime_remaining"] is None else f"{b['lifetime_remaining']}s"
        life = f"  lifetime {rem}/{b['lifetime']}s" if b["lifetime"] is not None else ""
        bid = f" BID {b['bid']}" if b["bid"] is not None else ""
        print(f"  {b['hoa']} → {b['coa']}{bid} via {b['interface'] or '?'}  HA {b['peer']}  "
              f"{b['state']}{life}  seq {b['seq']}")
    return 0


def rebind_json(hoa: str, interface: str, plan, result) -> dict:
    """What ``mhctl rebind --json`` prints: ``confirmed`` (bool), ``elapsed_ms`` (from the request to the
    home agent's acknowledgement as the daemon measured it; None when nothing was sent), ``coa`` (the
    CoA now bound, or None), ``interface``, ``hoa``, ``moves`` (every HoA that moved with it),
    ``restart_required``, ``reason`` (why not, or None), ``rolled_back``, ``daemon`` (driver name)."""
    return {
        "confirmed": bool(result is not None and result.confirmed),
        "elapsed_ms": None if result is None else round(result.elapsed_ms, 1),
        "coa": None if result is None else result.new_coa,
        "interface": plan.interface if plan is not None else interface,
        "hoa": plan.hoa if plan is not None else hoa,
        "moves": list(plan.moves) if plan is not None else [],
        "restart_required": bool(plan is not None and plan.restart_required),
        "reason": (result.reason if result is not None else plan.refusal if plan is not None else None),
        "rolled_back": bool(result is not None and result.rolled_back),
    }


async def _rebind(args) -> int:
    rt = await _runtime(args)
    rt.daemon.rebind_timeout = args.timeout
    out = sys.stderr if args.json else sys.stdout  # with --json, stdout holds only the JSON object
    plan = result = None
    try:
        await rt.start(strict=True)
        await _daemon_settled(rt)
        plan = await plan_when_ready(rt.daemon, args.hoa, args.interface,
                                     lambda: (rt.store.state, rt.analysis()),
                                     on_wait=lambda why: print(f"waiting: {why}", file=out, flush=True))
        if not plan.allowed:
            if args.json:
                print(json.dumps({**rebind_json(args.hoa, args.interface, plan, None), "daemon": rt.daemon.name},
                                 indent=2))
            print(f"mhctl: cannot bind {args.hoa} through {args.interface}: {plan.refusal}", file=sys.stderr)
            return 1
        if plan.restart_required:
            print(f"Binding through {plan.interface} moves every home address (UMIP picks one interface for all): "
                  + ", ".join(plan.moves), file=out)
        else:
            print(f"Binding {plan.hoa} through {plan.interface} ({rt.daemon.name}, no restart).", file=out)
        for n in plan.notes:
            if not n.startswith("mip6d restarts:"):  # said just below
                print(f"  {n}", file=out)
        if plan.restart_required:
            print("mip6d is restarted: every binding is interrupted for a few seconds "
                  "(initial delay, router discovery, Binding Update and Acknowledgement).", file=out)
        if not args.yes:
            if not sys.stdin.isatty():
                print("mhctl: not confirmed (use --yes when not on a terminal)", file=sys.stderr)
                return 1
            if input("Go ahead? [y/N] ").strip().lower() not in ("y", "yes"):
                return 1
        result = await rt.daemon.rebind(plan)
    finally:
        await rt.stop()
    if args.json:
        print(json.dumps({**rebind_json(args.hoa, args.interface, plan, result), "daemon": rt.daemon.name}, indent=2))
    if result.confirmed:
        print(f"confirmed in {result.elapsed_ms:.0f} ms: {plan.hoa} is bound to {result.new_coa} on {plan.interface}"
              + ("" if plan.restart_required else " (no restart)"), file=out)
        return 0
    print(f"mhctl: rebind failed after {result.elapsed_ms:.0f} ms: {result.reason}"
          + (" (the previous configuration was restored)" if result.rolled_back else ""), file=sys.stderr)
    return 1


async def _status(args) -> int:
    rt = await _runtime(args)
    try:
        await rt.start(strict=True)
        if rt.daemon is not None and rt.daemon.name == "engine":
            await _daemon_settled(rt)  # its capabilities decide what counts (IPv4 CoAs)
        s = status(rt.store, rt.clock(), allow_ula=rt.allow_ula, caps=rt.caps, access=rt.access_problems(),
                   analysis=rt.analysis())
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
    rt = await _runtime(args)
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


def flows_json(table, classifier) -> dict:
    """``mhctl flows --json`` (README): ``{"flows": [...], "process_visibility", "process_visibility_reason"}``."""
    from .core.flows import flow_json, sort_key
    flows = sorted(table.flows.values(), key=sort_key)
    return {
        "flows": [flow_json(f, classifier.classify(f)) for f in flows],
        "process_visibility": table.process_visibility,
        "process_visibility_reason": table.visibility_reason or None,
    }


async def _flows(args) -> int:
    from .core.flows import Classifier
    from .sources.flows import FlowSource
    rt = await _runtime(args, args.vt_port or None)
    src = FlowSource()
    try:
        await rt.start(strict=True)
        bindings = []
        if rt.daemon is not None:
            await _daemon_settled(rt)
            # a binding's CoA is looked up in the live model by the classifier itself
            bindings = rt.daemon.bindings()
        try:
            table = await src.poll()
        except OSError as e:
            print(f"mhctl: cannot read the kernel's socket table: {e}", file=sys.stderr)
            return 1
        classifier = Classifier(rt.store.state, rt.analysis(), bindings)
    finally:
        await src.stop()
        await rt.stop()
    out = flows_json(table, classifier)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    from .core.flows import CLOSING_STATES
    rows = [("PROTO", "STATE", "LOCAL", "REMOTE", "INTERFACE", "ROLE", "MOVABLE", "PROCESS")]
    shown = [f for f in out["flows"] if args.all or not (f["protocol"] == "tcp" and f["state"] in CLOSING_STATES)]
    hidden = len(out["flows"]) - len(shown)
    for f in shown:
        def ep(e):
            a = e["address"]
            return f"[{a}]:{e['port']}" if ":" in a else f"{a}:{e['port']}"
        proc = f"{f['process']}[{f['pid']}]" if f["pid"] is not None else "?"
        iface = f["interface"] or ("unknown" if f["local_role"] == "hoa" else "-")
        rows.append((f["protocol"], f["state"], ep(f["local"]), ep(f["remote"]), iface, f["local_role"],
                     f["movable"], proc))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    if hidden:
        print(f"({hidden} closing connection(s) not shown: --all shows them)")
    print("To move one: mhctl move 'PROTO LOCAL REMOTE' INTERFACE, e.g. "
          "mhctl move 'tcp [2001:db8:a::5]:40000 [2001:db8:f::1]:443' wlan0")
    if out["process_visibility"] != "full":
        print(f"processes: {out['process_visibility']}: {out['process_visibility_reason']}")
    for p in table.problems:
        print(f"note: {p}")
    return 0


async def _rules(args) -> int:
    """Steering rules through the privileged helper (README, "Steering rules")."""
    from .helper.client import HelperClient, HelperError
    usage = {"add": 2, "edit": 2, "remove": 1, "list": 0}
    if len(args.args) != usage[args.action]:
        print(f"mhctl: rules {args.action} takes {usage[args.action]} argument(s)", file=sys.stderr)
        return 2
    try:
        async with HelperClient(args.system_bus) as helper:
            if args.action == "add":
                rid = await helper.add_steering_rule(args.args[0], args.args[1])
                new = next((r for r in await helper.list_steering_rules() if r["id"] == rid), {})
                print(f"added {rid}: new connections to {args.args[0]} go through {args.args[1]}"
                      + ("" if new.get("in_kernel", True) else f" — not in the kernel yet: {new.get('status')}"))
            elif args.action == "edit":
                rid, iface = args.args
                old = next((r for r in await helper.list_steering_rules() if r["id"] == rid), None)
                if old is None:
                    print(f"mhctl: no steering rule {rid}", file=sys.stderr)
                    return 1
                await helper.remove_steering_rule(rid)
                try:
                    new = await helper.add_steering_rule(old["destinations"], iface)
                except HelperError:
                    await helper.add_steering_rule(old["destinations"], old["interface"])  # put it back
                    raise
                print(f"{rid} replaced by {new}: new connections to {', '.join(old['destinations'])} go through {iface}")
            elif args.action == "remove":
                await helper.remove_steering_rule(args.args[0])
                print(f"removed {args.args[0]}")
            rules = await helper.list_steering_rules()
    except HelperError as e:
        print(f"mhctl: {e}", file=sys.stderr)
        return 1
    if args.action != "list":
        return 0
    if args.json:
        print(json.dumps({"rules": rules}, indent=2))
        return 0
    if not rules:
        print("no steering rules")
    for r in rules:
        state = "in the kernel" if r["in_kernel"] else f"NOT in the kernel: {r['status'] or 'unknown'}"
        print(f"{r['id']}  {', '.join(r['destinations'])} → {r['interface']}  ({state})")
    return 0


async def _move(args) -> int:
    """Say what moving the flow means, then do what can be done (rebind or steering rule), after asking."""
    from .core.flows import Classifier
    from .core.moves import move_outcome
    from .helper.client import HelperClient, HelperError
    from .sources.flows import FlowSource
    rt = await _runtime(args)
    src = FlowSource()
    try:
        await rt.start(strict=True)
        await _daemon_settled(rt)
        table = await src.poll()
        an = rt.analysis()
        classifier = Classifier(rt.store.state, an, rt.daemon.bindings() if rt.daemon else [])
        flow = table.flows.get(args.flow)
        if flow is None:
            print(f"mhctl: no flow {args.flow!r} (see mhctl flows)", file=sys.stderr)
            return 1
        others = [(f, classifier.classify(f)) for f in table.flows.values()]
        out = move_outcome(flow, classifier.classify(flow), args.interface, rt.store.state, an, rt.caps, others)
        print(out.summary)
        if out.action == "refuse":
            return 1
        if not args.yes and not (sys.stdin.isatty() and input("Go ahead? [y/N] ").strip().lower() in ("y", "yes")):
            print("mhctl: not done (use --yes when not on a terminal)", file=sys.stderr)
            return 1
        if out.action == "steer":
            try:
                async with HelperClient(args.system_bus) as helper:
                    rid = await helper.add_steering_rule(out.destination, out.interface)
            except HelperError as e:
                print(f"mhctl: {e}", file=sys.stderr)
                return 1
            print(f"steering rule {rid}: new connections to {out.destination} go through {out.interface}")
            return 0
        if out.action == "rebind":
            plan = await plan_when_ready(rt.daemon, out.hoa, out.interface, lambda: (rt.store.state, rt.analysis()))
            if not plan.allowed:
                print(f"mhctl: {plan.refusal}", file=sys.stderr)
                return 1
            result = await rt.daemon.rebind(plan)
            print(f"confirmed in {result.elapsed_ms:.0f} ms" if result.confirmed else f"failed: {result.reason}")
            return 0 if result.confirmed else 1
        print("mhctl: the daemon cannot install flow bindings", file=sys.stderr)
        return 1
    finally:
        await src.stop()
        await rt.stop()


def _ms(d: object) -> str:
    ok = isinstance(d, (int, float)) and not isinstance(d, bool) and abs(d) < 1e9
    return f"{d * 1000:.0f} ms" if ok else "-"


def format_log_entry(e: dict) -> str:
    """One line of ``mhctl log``: when, who, from → to, why, and the times after the link event."""
    wall = e.get("wall") if isinstance(e.get("wall"), dict) else {}
    t = wall.get("decision")
    try:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if isinstance(t, (int, float)) else "?"
    except (OverflowError, ValueError, OSError):  # a hand-edited or corrupt journal line
        when = "?"
    when = f"{when:19}"
    after = e.get("after_trigger") if isinstance(e.get("after_trigger"), dict) else {}
    who = e.get("by") if e.get("by") in ("mhgui", "daemon", "mhgui+daemon") else "?"
    move = f"{e.get('from') or '(none)'} -> {e.get('to') or '(none)'}"
    hoas = e.get("hoas") if isinstance(e.get("hoas"), list) else []
    parts = [when, f"{who:12}", f"{move:24}", f"{str(e.get('reason'))[:16]:16}",
             f"decision {_ms(after.get('decision'))}", f"BU {_ms(after.get('bu'))}", f"ack {_ms(after.get('ack'))}"]
    if hoas:
        parts.append("HoA " + ", ".join(str(h) for h in hoas))
    return "  ".join(parts)


def _log(args) -> int:
    from .sources.journal import default_path, read_journal

    path = args.file or default_path()
    got = read_journal(path)
    if got.error:
        print(f"mhctl: {got.error}", file=sys.stderr)
        return 1
    if got.skipped:
        print(f"mhctl: {got.skipped} unreadable line(s) in {path} skipped", file=sys.stderr)
    entries = got.entries[-args.last:] if args.last > 0 else got.entries
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        print(f"no failover recorded yet ({path} is written by the mhgui window)")
        return 0
    print("when                 by            from -> to                reason            times after the link event")
    for e in entries:
        print(format_log_entry(e))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.cmd == "lab":  # namespaces and daemons: no loop, no sources
        from .lab.cli import run_lab
        return run_lab(args)
    if args.cmd == "log":  # reads a file: no loop, no sources
        try:
            return _log(args)
        except BrokenPipeError:
            return 0
    try:
        run = {"status": _status, "monitor": _monitor, "bindings": _bindings, "rebind": _rebind,
               "flows": _flows, "rules": _rules, "move": _move}[args.cmd]
        return asyncio.run(run(args))
    except ConfigError as e:
        print(f"mhctl: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
