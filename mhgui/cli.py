"""``mhctl``: the command-line companion of mhgui (same core, no Qt).

    mhctl status [--json] [--mip6d-conf PATH]
    mhctl monitor [--json] [--mip6d-conf PATH]
    mhctl bindings | rebind HOA IFACE | flows [--all] | move FLOW IFACE | rules | log | flow-bindings | lab

Every command takes the common options (``--json``, ``--mip6d-conf``, ``--settings``,
``--no-networkmanager``, ``--system-bus``, ``--vt-port``); those a command has no use for are accepted
and ignored, so one set of options works with all of them. ``--json`` prints one JSON object (``monitor``:
one a line) whose ``"schema"`` is :data:`SCHEMA`. The manual page (resources/mhctl.1) and the shell
completions (resources/completions/) are generated from :func:`parser` by scripts/mhctl-docs.

Exit status: 0 success; 1 a configuration file is malformed or missing (one
line on stderr naming the file and line); 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from typing import TYPE_CHECKING

from . import __version__
from .i18n import N_, _

# Each command imports what it uses (issue 14): `mhctl status` loads no Qt, no daemon driver it does
# not talk to, no helper client, no flows or lab modules (tests/test_cli.py checks its sys.modules).
if TYPE_CHECKING:
    from .core.state import Change
    from .runtime import Runtime
    from .status_fast import StatusPicture


#: the version of every ``--json`` output's shape (its top-level ``"schema"``); raised when a key changes
#: meaning or goes away (new keys do not raise it)
SCHEMA = 1

#: the options of the commands that read the node: (flag, add_argument keywords)
_COMMON: tuple[tuple[str, dict], ...] = (
#: (the help texts are marked with N_ and translated when the parser is made: :func:`_kw`)
    ("--json", dict(action="store_true", help=N_("machine-readable output: one JSON object with \"schema\": 1"))),
    ("--mip6d-conf", dict(metavar="PATH", default=None,
                          help=N_("UMIP configuration file to read home addresses from (default /etc/mip6d.conf; "
                                  "a path given here must exist)"))),
    ("--settings", dict(metavar="PATH", default=None, help=N_("the app's settings file (default: XDG config dir)"))),
    ("--no-networkmanager", dict(action="store_true", help=N_("use netlink only"))),
    ("--system-bus", dict(metavar="ADDRESS", default=None, help=N_("D-Bus address of the system bus"))),
)
_VT_PORT = ("--vt-port", dict(type=int, default=7777, metavar="N",
                              help=N_("port of mip6d's terminal on localhost (its --vt-service; default 7777)")))


def _kw(kw: dict) -> dict:
    """``kw`` with its help text in the user's language."""
    return dict(kw, help=_(kw["help"])) if "help" in kw else kw


def _common(p: argparse.ArgumentParser) -> None:
    for flag, kw in _COMMON:
        p.add_argument(flag, **_kw(kw))


def _accept_common(p: argparse.ArgumentParser, command: str) -> None:
    """Give ``p`` the common options it lacks, accepted and not used: a script passes the same options to
    every command (``mhctl log --mip6d-conf PATH`` is not an error)."""
    for flag, kw in _COMMON + (_VT_PORT,):
        if flag not in p._option_string_actions:
            p.add_argument(flag, **dict(kw, help=_("accepted as by the other commands; {command} does not use it")
                                        .format(command=command)))


def _dump(obj: dict) -> str:
    """``obj`` as ``--json`` prints it: one object, ``"schema"`` first."""
    return json.dumps({"schema": SCHEMA, **obj}, indent=2)


def _count(text: str) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(_("must be 0 or more, not {n}").format(n=n))
    return n


def parser(*, lab: bool = True) -> argparse.ArgumentParser:
    """mhctl's argument parser; ``lab=False`` leaves out the ``lab`` command (its parser imports the lab).
    Its ``commands`` attribute names the commands it parses."""
    p = argparse.ArgumentParser(prog="mhctl", description=_("Multihomed Mobile IPv6 node: status and events."))
    p.add_argument("--version", action="version", version=f"mhctl {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("status", help=_("print the node's interfaces, addresses, taxonomy and draft scenario"))
    _common(s)
    m = sub.add_parser("monitor", help=_("print one line per change (and per failover, with where from and "
                                         "where to) until interrupted"))
    _common(m)
    m._option_string_actions["--json"].help = _("machine-readable output: one JSON object a line, each with "
                                                "\"schema\": 1")
    b = sub.add_parser("bindings", help=_("the mobility daemon's binding table (mhgui's engine, or UMIP mip6d's "
                                          "terminal)"))
    _common(b)
    r = sub.add_parser("rebind", help=_("bind a home address through an interface (mip6d: restarts it; "
                                        "mhgui's engine: that HoA alone, no restart)"))
    _common(r)
    r.add_argument("hoa", help=_("the home address, e.g. {example}").format(example="2001:db8:1::100"))
    r.add_argument("interface", help=_("the interface to use, e.g. {example}").format(example="wlan0"))
    r.add_argument("--yes", action="store_true", help=_("do not ask before restarting the daemon"))
    r.add_argument("--timeout", type=float, default=30.0, help=_("seconds to wait for the acknowledgement (30)"))
    f = sub.add_parser("flows", help=_("the node's TCP and UDP flows: interface, local address role, movability"))
    _common(f)
    f.add_argument("--all", action="store_true",
                   help=_("also connections that are closing (TIME-WAIT...) and mhgui's own (its connections to "
                          "the mobility daemon's terminal and what is left of them, D-Bus over TCP, the engine's)"))
    mv = sub.add_parser("move", help=_("move a flow (its id from `mhctl flows`) to an interface, saying what that "
                                   "means"))
    _common(mv)
    mv.add_argument("flow", help=_("the flow's id, e.g. {example}").format(
        example="'tcp [2001:db8:a::5]:40000 [2001:db8:f::1]:443'"))
    mv.add_argument("interface")
    mv.add_argument("--yes", action="store_true", help=_("do what is offered without asking"))
    ru = sub.add_parser("rules", help=_("steering rules: list (default), add DEST IFACE, edit ID IFACE, remove ID"))
    _common(ru)
    ru.add_argument("action", nargs="?", default="list", choices=("list", "add", "edit", "remove"))
    ru.add_argument("args", nargs="*", help=_("add: DESTINATION INTERFACE (or INTERFACE alone with --protocol, "
                                              "--ports or --app); edit: ID INTERFACE; remove: ID"))
    ru.add_argument("--source", metavar="PREFIX", default=None,
                    help=_("add/edit: take the source address from this prefix (or address) of the interface, "
                           "and leave through the router that advertised it (two providers on one link)"))
    ru.add_argument("--protocol", choices=("tcp", "udp"), default=None,
                    help=_("add: only connections of this protocol (new connections are marked and masqueraded "
                           "to the interface's address)"))
    ru.add_argument("--ports", metavar="PORTS", default=None,
                    help=_("add: only connections to these destination ports, e.g. {example} (TCP and UDP "
                           "unless --protocol)").format(example="443,8000-8100"))
    ru.add_argument("--app", metavar="APP", dest="application", default=None,
                    help=_("add: only connections of this application, in every user session (app:ID, e.g. "
                           "app:firefox, or cgroup:PATH under the cgroup2 root; a bare ID is app:ID)"))
    lg = sub.add_parser("log", help=_("the failovers the mhgui window recorded, with their timings"))
    lg.add_argument("--json", action="store_true",
                    help=_("machine-readable output: one JSON object, {{\"schema\": 1, \"file\", \"skipped\", "
                           "\"failovers\": [...] oldest first}}").format())
    lg.add_argument("--file", metavar="PATH", default=None,
                    help=_("the journal (default {path})").format(path="$XDG_STATE_HOME/mhgui/failover.jsonl"))
    lg.add_argument("-n", "--last", type=_count, default=0, metavar="N", help=_("only the last N failovers"))
    _accept_common(lg, "log")
    from .cli_flows import add_flow_parser
    add_flow_parser(sub)
    _accept_common(sub.choices["flow-bindings"], "flow-bindings")
    if lab:
        from .lab.cli import add_lab_parser
        add_lab_parser(sub)
    for sp in (s, m, b, r, f, mv, ru):
        sp.add_argument(_VT_PORT[0], **_kw(_VT_PORT[1]))
    p.commands = frozenset(sub.choices)
    return p


async def _runtime(args, vt_port: int | None = ...) -> Runtime:
    """The runtime with the node's mobility daemon: mhgui's engine when it runs, else UMIP (choose_driver)."""
    from .runtime import Runtime, choose_driver
    port = args.vt_port if vt_port is ... else vt_port
    daemon = await choose_driver(args.system_bus, vt_port=port)
    return Runtime(mip6d_conf=args.mip6d_conf, settings_file=args.settings,
                   system_bus=args.system_bus, use_networkmanager=not args.no_networkmanager,
                   vt_port=port, daemon=daemon)


async def _daemon_settled(rt: Runtime, timeout: float = 3.0) -> None:
    """Wait until the daemon driver has connected (and polled once) or said why not."""
    import asyncio
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
    from .core.report import binding_line
    rt = await _runtime(args)
    try:
        await rt.start(strict=True)
        await _daemon_settled(rt)
        rt.push_live()
        out = daemon_json(rt)
    finally:
        await rt.stop()
    if args.json:
        print(_dump(out))
        return 0
    d = out["daemon"]
    if not d["reachable"]:
        print(_("{name}: not reachable ({state}): {error}").format(name=d["name"], state=d["state"],
                                                                   error=d["error"] or _("no answer")))
        return 0
    role = _("mobile node") if d["node"] == "mn" else _("home agent") if d["node"] == "ha" else d["node"]
    print(f"{d['name']} ({role})")
    if not out["bindings"]:
        print("  " + _("no bindings"))
    for b in out["bindings"]:
        print("  " + binding_line(b))
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
    from .daemons.base import plan_when_ready
    rt = await _runtime(args)
    rt.daemon.rebind_timeout = args.timeout
    out = sys.stderr if args.json else sys.stdout  # with --json, stdout holds only the JSON object
    plan = result = None
    try:
        await rt.start(strict=True)
        await _daemon_settled(rt)
        plan = await plan_when_ready(rt.daemon, args.hoa, args.interface,
                                     lambda: (rt.store.state, rt.analysis()),
                                     on_wait=lambda why: print(_("waiting: {why}").format(why=why), file=out, flush=True))
        if not plan.allowed:
            if args.json:
                print(_dump({**rebind_json(args.hoa, args.interface, plan, None), "daemon": rt.daemon.name}))
            print("mhctl: " + _("cannot bind {hoa} through {interface}: {why}").format(
                hoa=args.hoa, interface=args.interface, why=plan.refusal), file=sys.stderr)
            return 1
        if plan.restart_required:
            print(_("Binding through {interface} moves every home address (UMIP picks one interface for all): "
                    "{hoas}").format(interface=plan.interface, hoas=", ".join(plan.moves)), file=out)
        else:
            print(_("Binding {hoa} through {interface} ({daemon}, no restart).").format(
                hoa=plan.hoa, interface=plan.interface, daemon=rt.daemon.name), file=out)
        for n in plan.notes:
            if not n.startswith("mip6d restarts:"):  # said just below
                print(f"  {n}", file=out)
        if plan.restart_required:
            print(_("mip6d is restarted: every binding is interrupted for a few seconds "
                    "(initial delay, router discovery, Binding Update and Acknowledgement)."), file=out)
        if not args.yes:
            if not sys.stdin.isatty():
                print("mhctl: " + _("not confirmed (use --yes when not on a terminal)"), file=sys.stderr)
                return 1
            if not _confirmed(input(_("Go ahead? [y/N] "))):
                return 1
        result = await rt.daemon.rebind(plan)
    finally:
        await rt.stop()
    if args.json:
        print(_dump({**rebind_json(args.hoa, args.interface, plan, result), "daemon": rt.daemon.name}))
    if result.confirmed:
        print(_("confirmed in {ms} ms: {hoa} is bound to {coa} on {interface}").format(
            ms=f"{result.elapsed_ms:.0f}", hoa=plan.hoa, coa=result.new_coa, interface=plan.interface)
              + ("" if plan.restart_required else _(" (no restart)")), file=out)
        return 0
    print("mhctl: " + _("rebind failed after {ms} ms: {why}").format(ms=f"{result.elapsed_ms:.0f}", why=result.reason)
          + (_(" (the previous configuration was restored)") if result.rolled_back else ""), file=sys.stderr)
    return 1


def _confirmed(answer: str) -> bool:
    """A yes to "Go ahead? [y/N]": y or yes, or the user's language's own (its translation of "y" and "yes")."""
    a = answer.strip().lower()
    return a in ("y", "yes") or a in (_("y").lower(), _("yes").lower())


def _status_fast(args, prepared=None) -> StatusPicture | None:
    """:func:`mhgui.status_fast.collect` for these options; None when only the full path can answer.
    ``$MHCTL_STATUS_PATH``: ``runtime`` = the full path alone, with the rtnetlink source (pyroute2) as the
    window uses it; ``fast`` = the fast path or an error saying why not (both for tests and benchmarks).
    ``prepared``: :func:`mhgui.status_fast.prepare`'s result (or the Fallback it raised), None: done here."""
    mode = os.environ.get("MHCTL_STATUS_PATH", "")
    if mode == "runtime":
        return None
    from .status_fast import Fallback, collect
    try:
        if isinstance(prepared, Fallback):
            raise prepared
        return collect(mip6d_conf=args.mip6d_conf, settings_file=args.settings, system_bus=args.system_bus,
                       use_networkmanager=not args.no_networkmanager, vt_port=args.vt_port, prepared=prepared)
    except Fallback as e:
        if mode == "fast":
            raise SystemExit("mhctl: " + _("the fast status path cannot answer: {why}").format(why=e)) from None
        return None


async def _status(args) -> int:
    """``mhctl status`` on the full path (the runtime: asyncio, netlink, D-Bus, the daemon's driver):
    :func:`mhgui.core.report.status` plus the daemon's state and binding table (``"daemon": {"name",
    "connected", "state", "error"}``, ``"bindings"``: as ``mhctl bindings``, [] when no daemon answers).
    :func:`_main` tries :mod:`mhgui.status_fast` first, which gives the same picture without them."""
    print_status(await status_picture(args), as_json=args.json)
    return 0


async def status_picture(args) -> StatusPicture:
    """The :class:`~mhgui.status_fast.StatusPicture` of the full path (the runtime's sources and driver)."""
    from .core.report import status
    from .status_fast import StatusPicture
    rt = await _runtime(args)
    if os.environ.get("MHCTL_STATUS_PATH") != "runtime":
        # one read of the kernel's tables through iproute2's JSON, not pyroute2's socket and decoder (issue 14)
        from .sources.iproute_json import IpJsonOnce
        rt.netlink = IpJsonOnce(rt.store.apply, rt.netlink, clock=rt.clock)
    bindings: list[dict] = []
    objs: tuple = ()
    uplinks = None
    try:
        await rt.start(strict=True)
        if rt.daemon is not None:
            # the engine's capabilities decide what counts (IPv4 CoAs); either daemon's first answer (or
            # why none: nothing on the terminal's port is said at once) gives the binding table
            await _daemon_settled(rt)
            if rt.daemon.connected:
                rt.push_live()
                now = rt.clock()
                objs = tuple(rt.daemon.bindings())
                bindings = [b.to_json(now) for b in objs]
                if callable(getattr(rt.daemon, "uplinks", None)):
                    uplinks = rt.daemon.uplinks()
        an = rt.analysis()
        s = status(rt.store, rt.clock(), allow_ula=rt.allow_ula, caps=rt.caps, access=rt.access_problems(),
                   analysis=an)
        st = rt.daemon.status if rt.daemon is not None else None
        state, sources = rt.store.state, dict(rt.store.sources)
    finally:
        await rt.stop()
    s["daemon"] = {**s["daemon"], "state": st.state if st else None, "error": st.error if st else None}
    s["bindings"] = bindings
    return StatusPicture(report=s, state=state, sources=sources, analysis=an, bindings=objs, uplinks=uplinks,
                         daemon=st)


def print_status(p: StatusPicture, *, as_json: bool = False) -> None:
    """Print ``mhctl status`` from either path's picture: ``p.report`` as JSON (schema :data:`SCHEMA`), or as
    text (:func:`mhgui.core.report.render_text`). The one place the status is formatted: ``p`` also holds
    the node state, the analysis, the daemon's bindings, uplinks and status for lines made from them."""
    from .core.headline import node_headline
    d = p.daemon
    engine = d is not None and getattr(d, "name", None) == "engine"
    # the node's one answer, as the window and the tray give it (issue 15.1)
    answer = node_headline(p.state, p.analysis, bindings=p.bindings, uplinks=p.uplinks, daemon=d,
                           daemon_configured=bool(p.state.home_addresses), sources=p.sources,
                           engine_available=bool(engine and d.reachable),
                           daemon_seen=False)  # (a one-shot: a daemon that does not answer is "not running")
    from .core.action_commands import LAB_PREFIX_ENV, action_command
    # what to type for it (a terminal cannot press the window's button): the same command the window shows
    command = None if answer.action is None else action_command(
        answer.action.id, getattr(d, "name", None), os.environ.get(LAB_PREFIX_ENV))
    if as_json:
        print(_dump({**p.report, "headline": {
            "level": answer.level, "text": answer.text, "detail": answer.detail, "interface": answer.interface,
            "action": None if answer.action is None else {"id": answer.action.id, "label": answer.action.label,
                                                           "command": command}}}))
        return
    from .core.report import render_text
    first, _nl, rest = render_text(p.report).partition("\n")  # the taxonomy stays the first line
    todo = "" if answer.action is None else answer.action.label + (f": {command}" if command else "")
    node = _("Node: {text}").format(text=answer.text) + (f" ({answer.detail})" if answer.detail else "") + (
        (_(" — to fix: {todo}") if answer.level in ("warning", "error") else
         _(" — next: {todo}")).format(todo=todo) if answer.action is not None else "")
    print("\n".join(x for x in (first, node, rest) if x))


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
        "schema": SCHEMA, "time": _now_iso(),
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


def _now_iso() -> str:
    import datetime as _dt  # here: `mhctl status` has no use for it (issue 14)
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def failover_event(rt: Runtime, e, tax: dict) -> dict:
    """One ``mhctl monitor --json`` line for a failover (a :class:`~mhgui.core.failover.FailoverEntry`
    recorded, or its timings filled in): ``"event": "failover"``, ``"from"``/``"to"`` (interface names, None
    = no interface), ``"interface"``/``"ifindex"`` (the one moved to), ``"hoas"``, ``"by"``, ``"reason"``,
    ``"acknowledged"`` (every HoA moved is registered again), ``"failover"`` (the entry's id; the same id
    comes again when its timings fill in) and ``"after_trigger"`` (seconds from the link event to the
    decision, the Binding Update, the acknowledgement; None = not seen)."""
    j = e.to_json()
    ifindex = next((i.ifindex for i in rt.store.state.interfaces.values() if i.name == e.to_interface), None)
    return {"schema": SCHEMA, "time": _now_iso(), "event": "failover", "interface": e.to_interface,
            "ifindex": ifindex, "address": None, "from": e.from_interface, "to": e.to_interface,
            "hoas": list(e.hoas), "by": e.by, "reason": e.reason, "acknowledged": e.ack_time is not None,
            "failover": e.id, "after_trigger": j["after_trigger"], "taxonomy": tax}


def monitor_text(ev: dict) -> str:
    """One ``mhctl monitor`` line (without ``--json``) for a :func:`monitor_event` or :func:`failover_event`."""
    if ev["event"] == "failover":
        hoas = f"  HoA {', '.join(ev['hoas'])}" if ev["hoas"] else ""
        none = _("(none)")
        what = (f"{ev['from'] or none} -> {ev['to'] or none}{hoas}  ({ev['by']}: {ev['reason']}"
                + (_(", acknowledged") if ev["acknowledged"] else "") + ")")
    else:
        what = ev["address"] or ev.get("detail", "")
    return f"{ev['time']} {ev['taxonomy']['label']:<8} {ev['event']:<22} {ev['interface'] or '':<15} {what}"


#: store changes that date a move the daemon makes next (as the window's failover policy notes them)
_TRIGGERS = ("link-down", "link-up", "link-removed")


async def _monitor(args) -> int:
    """``mhctl monitor``: one line per store change, and one per failover the mobility daemon makes (seen in
    its binding update list, or reported by mhgui's engine) with where from and where to. Nothing is acted
    on: the failovers are the daemon's own, timed from the link event that explains them."""
    import asyncio
    from .core.failover import FailoverLog
    from .core.report import taxonomy
    from .core.state import Change
    from .daemons.base import BindingsChanged, DaemonMoved
    rt = await _runtime(args)
    out = sys.stdout
    ready = False
    moves = FailoverLog()

    def emit(make) -> None:
        if not ready or stop.is_set():
            return
        try:
            tax = taxonomy(rt.analysis(), rt.caps)
            for ev in make(tax):
                out.write((json.dumps(ev) if args.json else monitor_text(ev)) + "\n")
            out.flush()
        except BrokenPipeError:  # the reader went away (`mhctl monitor | head -1`): end quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)
            stop.set()

    def on_changes(changes: list[Change]) -> None:
        for c in changes:
            if c.kind in _TRIGGERS and c.ifindex is not None:
                name = getattr(rt.store.state.interfaces.get(c.ifindex) or c.after or c.before, "name", None)
                if name:
                    moves.note_trigger(name, c.kind, rt.clock())
                    if rt.daemon is not None and c.kind != "link-removed":
                        rt.daemon.hurry(10.0)  # a move may follow: poll its binding update list closely
        emit(lambda tax: [monitor_event(rt, c, tax) for c in changes])

    def on_daemon(ev) -> None:
        if isinstance(ev, DaemonMoved):
            entries = [moves.record_move(ev.hoa, ev.from_interface, ev.to_interface, ev.reason, ev.first_bu_at,
                                         ev.bu_at, ev.ack_at, rt.clock())]
        elif isinstance(ev, BindingsChanged) and not getattr(rt.daemon, "reports_moves", False):
            entries = moves.observe_bindings(ev.bindings, rt.clock())  # the first call sets the baseline
        else:
            return
        if entries:
            emit(lambda tax: [failover_event(rt, e, tax) for e in entries])

    stop = asyncio.Event()
    rt.store.subscribe(on_changes)
    if rt.daemon is not None:
        rt.daemon.subscribe(on_daemon)
    loop = asyncio.get_running_loop()
    import signal
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await rt.start(strict=True)
        ready = True
        emit(lambda tax: [monitor_event(rt, Change("snapshot", detail="initial state"), tax)])
        await stop.wait()
    finally:
        await rt.stop()
    return 0


def flows_json(table, classifier, own: set[str] | frozenset[str] = frozenset(), flow_bindings=()) -> dict:
    """``mhctl flows --json`` (README): ``{"flows": [...], "process_visibility", "process_visibility_reason",
    "own_hidden"}``; the flows whose id is in ``own`` (mhgui's own) are left out and counted in ``own_hidden``.
    ``flow_bindings``: the engine's (``EngineDriver.flow_bindings()``); a connection bound alone (RFC 6089)
    gets ``flow_binding``: ``{"fid", "bound_to", "bids"}``."""
    from .core.flows import flow_json, sort_key
    flows = sorted((f for f in table.flows.values() if f.id not in own), key=sort_key)
    listed = [flow_json(f, classifier.classify(f)) for f in flows]
    if flow_bindings:
        from .core.moves import bound_flows, flow_match_key
        fbs = bound_flows(flow_bindings)
        for out, fl in zip(listed, flows):
            fb = fbs.get(flow_match_key(fl)) if out["local_role"] == "hoa" else None
            if fb is not None:
                out["flow_binding"] = {"fid": fb.get("fid"), "bound_to": fb.get("bound_to"), "bids": fb.get("bids")}
    return {
        "flows": listed,
        "process_visibility": table.process_visibility,
        "process_visibility_reason": table.visibility_reason or None,
        "own_hidden": len(table.flows) - len(flows),
    }


async def _flows(args) -> int:
    from .core.flows import Classifier, own_flow_ids
    from .sources.flows import FlowSource, own_sockets
    rt = await _runtime(args, args.vt_port or None)
    src = FlowSource()
    try:
        await rt.start(strict=True)
        bindings, flow_bindings = [], []
        if rt.daemon is not None:
            await _daemon_settled(rt)
            # a binding's CoA is looked up in the live model by the classifier itself
            bindings = rt.daemon.bindings()
            flow_bindings = rt.daemon.flow_bindings()
        try:
            table = await src.poll()
        except OSError as e:
            print("mhctl: " + _("cannot read the kernel's socket table: {why}").format(why=e), file=sys.stderr)
            return 1
        classifier = Classifier(rt.store.state, rt.analysis(), bindings)
        # mhgui's own sockets (this mhctl, the window, the engine; TIME-WAIT remains of terminal connections)
        own = set() if args.all else own_flow_ids(table.flows.values(), own_sockets(rt.daemon, [args.system_bus]))
    finally:
        await src.stop()
        await rt.stop()
    out = flows_json(table, classifier, own, flow_bindings)
    if args.json:
        print(_dump(out))
        return 0
    from .core.flows import CLOSING_STATES
    rows = [(_("PROTO"), _("STATE"), _("LOCAL"), _("REMOTE"), _("INTERFACE"), _("ROLE"), _("MOVABLE"), _("PROCESS"))]
    shown = [f for f in out["flows"] if args.all or not (f["protocol"] == "tcp" and f["state"] in CLOSING_STATES)]
    hidden = len(out["flows"]) - len(shown)
    for f in shown:
        def ep(e):
            a = e["address"]
            return f"[{a}]:{e['port']}" if ":" in a else f"{a}:{e['port']}"
        proc = f"{f['process']}[{f['pid']}]" if f["pid"] is not None else "?"
        iface = f["interface"] or (_("unknown") if f["local_role"] == "hoa" else "-")
        if f.get("flow_binding"):
            iface = f"{'+'.join(f['flow_binding']['bound_to'] or ())} (FID {f['flow_binding']['fid']})"
        rows.append((f["protocol"], f["state"], ep(f["local"]), ep(f["remote"]), iface, f["local_role"],
                     f["movable"], proc))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    if hidden:
        print(_("({n} closing connection(s) not shown: --all shows them)").format(n=hidden))
    if out["own_hidden"]:
        print(_("({n} of mhgui's own connection(s) not shown: --all shows them)").format(n=out["own_hidden"]))
    print(_("To move one: {command}, e.g. {example}").format(
        command="mhctl move 'PROTO LOCAL REMOTE' INTERFACE",
        example="mhctl move 'tcp [2001:db8:a::5]:40000 [2001:db8:f::1]:443' wlan0"))
    if out["process_visibility"] != "full":
        print(_("processes: {visibility}: {why}").format(visibility=out["process_visibility"],
                                                         why=out["process_visibility_reason"]))
    for p in table.problems:
        print(_("note: {note}").format(note=p))
    return 0


def _rule_request(destinations, interface: str, source: str | None, selectors: dict | None = None) -> dict:
    req: dict = {"destination": destinations} if isinstance(destinations, str) else \
        {"destinations": list(destinations)}
    req["interface"] = interface
    if source:
        req["source"] = source
    req.update({k: v for k, v in (selectors or {}).items() if v})
    return req


async def _rules(args) -> int:
    """Steering rules through the privileged helper (README, "Steering rules").

    A rule that could never match is refused before the helper is asked
    (:func:`mhgui.core.steering.check_request`, the helper's own check): exit 2.
    What only the helper can check (the interface exists, a router takes the
    source) comes back as its error: exit 1.
    """
    from .core.steering import SteeringError, check_request
    from .helper.client import HelperClient, HelperError
    from .core.steering_selectors import describe_rule
    selectors = {"protocol": args.protocol, "ports": args.ports, "application": args.application}
    usage = {"add": 2, "edit": 2, "remove": 1, "list": 0}
    if args.action == "add" and any(selectors.values()) and len(args.args) == 1:
        args.args = [[], args.args[0]]  # no destination: the selectors alone
    if len(args.args) != usage[args.action]:
        print("mhctl: " + _("rules {action} takes {n} argument(s)").format(action=args.action, n=usage[args.action]),
              file=sys.stderr)
        return 2
    if args.source is not None and args.action not in ("add", "edit"):
        print("mhctl: " + _("--source goes with rules add or edit"), file=sys.stderr)
        return 2
    if any(selectors.values()) and args.action != "add":
        print("mhctl: " + _("--protocol, --ports and --app go with rules add (edit keeps the rule's own)"),
              file=sys.stderr)
        return 2
    if args.action == "add":
        try:
            check_request(_rule_request(args.args[0], args.args[1], args.source, selectors))
        except SteeringError as e:
            print("mhctl: " + _("refused: {why}").format(why=e), file=sys.stderr)
            return 2
    try:
        async with HelperClient(args.system_bus) as helper:
            if args.action == "add":
                rid = await helper.add_steering_rule(args.args[0], args.args[1], source=args.source, **selectors)
                new = next((r for r in await helper.list_steering_rules() if r["id"] == rid), {})
                what = describe_rule(new) if new else args.args[0]
                print(_("added {id}: new connections to {what} go through {interface}").format(
                    id=rid, what=what, interface=args.args[1])
                      + (_(" from {source}").format(source=args.source) if args.source else "")
                      + (f" ({new['status']})" if new.get("in_kernel", True) and new.get("status") else "")
                      + ("" if new.get("in_kernel", True) else
                         _(" — not in the kernel yet: {why}").format(why=new.get("status"))))
            elif args.action == "edit":
                rid, iface = args.args
                old = next((r for r in await helper.list_steering_rules() if r["id"] == rid), None)
                if old is None:
                    print("mhctl: " + _("no steering rule {id}").format(id=rid), file=sys.stderr)
                    return 1
                # the old source belongs to the old interface: kept only when the interface stays
                source = args.source or (old.get("source") or None if iface == old["interface"] else None)
                # the rule's own selectors go with it (protocol, ports, application)
                kept = {k: old.get(k) or None for k in ("protocol", "ports", "application")}
                try:
                    check_request(_rule_request(old["destinations"], iface, source, kept))
                except SteeringError as e:
                    print("mhctl: " + _("refused: {why}").format(why=e), file=sys.stderr)
                    return 2
                await helper.remove_steering_rule(rid)
                try:
                    new = await helper.add_steering_rule(old["destinations"], iface, source=source, **kept)
                except HelperError:
                    try:  # put it back
                        await helper.add_steering_rule(old["destinations"], old["interface"],
                                                       source=old.get("source") or None, **kept)
                    except HelperError as e:
                        print("mhctl: " + _("the previous rule could not be put back either: {why}").format(why=e),
                              file=sys.stderr)
                    raise
                print(_("{id} replaced by {new}: new connections to {what} go through {interface}").format(
                    id=rid, new=new, what=describe_rule(old), interface=iface)
                      + (_(" from {source}").format(source=source) if source else ""))
            elif args.action == "remove":
                await helper.remove_steering_rule(args.args[0])
                print(_("removed {id}").format(id=args.args[0]))
            rules = await helper.list_steering_rules()
    except HelperError as e:
        print(f"mhctl: {e}", file=sys.stderr)
        return 1
    if args.action != "list":
        return 0
    if args.json:
        print(_dump({"rules": rules}))
        return 0
    if not rules:
        print(_("no steering rules"))
    for r in rules:
        if r["in_kernel"]:
            state = _("in the kernel") + (f"; {r['status']}" if r.get("status") else "")
        else:
            state = _("NOT in the kernel: {why}").format(why=r["status"] or _("unknown"))
        source = _(" from {source}").format(source=r["source"]) if r.get("source") else ""
        print(f"{r['id']}  {describe_rule(r)} → {r['interface']}{source}  ({state})")
    return 0


async def _move(args) -> int:
    """Say what moving the flow means, then do what can be done (rebind, steering rule or flow binding), after
    asking. With ``--json`` the sentences go to stderr and stdout holds one object (README): ``{"schema",
    "flow", "interface", "action"`` (refuse, rebind, steer, flow-binding; None: no such flow), ``"summary",
    "done"`` (bool), ``"reason"`` (why not, or None), ``"rule"`` (steer: the rule's id), ``"elapsed_ms"``
    (rebind, flow-binding: to the home agent's acknowledgement), ``"fid"`` (flow-binding)``}``."""
    res: dict = {"flow": args.flow, "interface": args.interface, "action": None, "summary": None, "done": False,
                 "reason": None, "rule": None, "elapsed_ms": None, "fid": None}
    rc = await _move_steps(args, res)
    if args.json:
        print(_dump(res))
    return rc


async def _move_steps(args, res: dict) -> int:
    from .core.flows import Classifier
    from .core.moves import bound_flows, flow_match_key, move_outcome
    from .daemons.base import plan_when_ready
    from .helper.client import HelperClient, HelperError
    from .sources.flows import FlowSource
    out_file = sys.stderr if args.json else sys.stdout  # with --json, stdout holds only the JSON object

    def say(text: str) -> None:
        print(text, file=out_file)

    def fail(why: str, text: str | None = None) -> int:
        res["reason"] = why
        print(f"mhctl: {text or why}", file=sys.stderr)
        return 1

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
            return fail(f"no flow {args.flow!r} (see mhctl flows)",  # (the JSON's reason stays English)
                        _("no flow {flow} (see mhctl flows)").format(flow=repr(args.flow)))
        others = [(f, classifier.classify(f)) for f in table.flows.values()]
        bound = bound_flows(rt.daemon.flow_bindings() if rt.daemon is not None else ()).get(flow_match_key(flow))
        out = move_outcome(flow, classifier.classify(flow), args.interface, rt.store.state, an, rt.caps, others,
                           bound_to=tuple(bound.get("bound_to") or ()) if bound else ())
        res["action"], res["summary"] = out.action, out.summary
        say(out.summary)
        if out.action == "refuse":
            res["reason"] = out.summary
            return 1
        if not args.yes and not (sys.stdin.isatty() and _confirmed(input(_("Go ahead? [y/N] ")))):
            return fail("not confirmed", _("not done (use --yes when not on a terminal)"))
        if out.action == "steer":
            try:
                async with HelperClient(args.system_bus) as helper:
                    rid = await helper.add_steering_rule(out.destination, out.interface)
            except HelperError as e:
                return fail(str(e))
            res["done"], res["rule"] = True, rid
            say(_("steering rule {id}: new connections to {destination} go through {interface}").format(
                id=rid, destination=out.destination, interface=out.interface))
            return 0
        if out.action == "rebind":
            plan = await plan_when_ready(rt.daemon, out.hoa, out.interface, lambda: (rt.store.state, rt.analysis()))
            if not plan.allowed:
                return fail(plan.refusal)
            result = await rt.daemon.rebind(plan)
            res["done"], res["elapsed_ms"] = result.confirmed, round(result.elapsed_ms, 1)
            res["reason"] = None if result.confirmed else result.reason
            say(_("confirmed in {ms} ms").format(ms=f"{result.elapsed_ms:.0f}") if result.confirmed
                else _("failed: {why}").format(why=result.reason))
            return 0 if result.confirmed else 1
        # flow-binding: this connection alone, confirmed by the home agent (RFC 6089)
        r = await (rt.daemon.move_flow(out.hoa, bound["fid"], out.interfaces) if bound
                   else rt.daemon.bind_flow(out.hoa, out.selector, out.interfaces))
        res["elapsed_ms"], res["fid"] = round(r.elapsed_ms, 1), r.fid
        if r.confirmed:
            res["done"] = True
            say(_("moved, the connection continues: confirmed by the home agent in {ms} ms "
                  "(flow binding {fid}; `mhctl flow-bindings` lists it)").format(ms=f"{r.elapsed_ms:.0f}", fid=r.fid))
            return 0
        return fail(r.reason, _("not moved: {why}").format(why=r.reason))
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
    who = e.get("by") if e.get("by") in ("user", "mhgui", "daemon", "mhgui+daemon", "system") else "?"
    move = f"{e.get('from') or '(none)'} -> {e.get('to') or '(none)'}"
    hoas = e.get("hoas") if isinstance(e.get("hoas"), list) else []
    # the reason whole ("probes: home agent unreachable" was cut to "probes: home age"), padded for the usual ones
    parts = [when, f"{who:12}", f"{move:24}", f"{str(e.get('reason')):16}",
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
        print("mhctl: " + _("{n} unreadable line(s) in {path} skipped").format(n=got.skipped, path=path),
              file=sys.stderr)
    entries = got.entries[-args.last:] if args.last > 0 else got.entries
    if args.json:  # an object, like every command's (it was a bare list before schema 1)
        print(_dump({"file": path, "skipped": got.skipped, "failovers": entries}))
        return 0
    if not entries:
        print(_("no failover recorded yet ({path} is written by the mhgui window)").format(path=path))
        return 0
    # the column titles, as wide as format_log_entry's columns
    when, by, move, reason = _("when"), _("by"), _("from -> to"), _("reason")
    print(f"{when:19}  {by:12}  {move:24}  {reason:16}  " + _("times after the link event"))
    for e in entries:
        print(format_log_entry(e))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one mhctl command; its exit status. ``argv`` None: this process is ``mhctl`` (the arguments
    are ``sys.argv``, and the process ends after this returns, see :func:`_exiting`)."""
    if argv is None:
        try:
            return _main(sys.argv[1:])
        finally:
            _exiting()
    return _main(list(argv))


def _exiting() -> None:
    """The program is about to exit: freeze the heap, so that the interpreter's last garbage collections
    skip the few hundred modules' objects (about 20 ms of a `mhctl status` here; atexit handlers and
    buffered output are not affected)."""
    import gc
    gc.freeze()


def _main(argv: list[str]) -> int:
    # the lab's parser (and its modules) only for `mhctl lab`, `mhctl --help` and a mistyped command's message
    p = parser(lab=False)
    args = (p if argv and argv[0] in p.commands else parser()).parse_args(argv)
    if args.cmd == "lab":  # namespaces and daemons: no loop, no sources
        from .lab.cli import run_lab
        return run_lab(args)
    if args.cmd == "flow-bindings":  # the engine's API only: no sources
        import asyncio
        from .cli_flows import run_flow_bindings
        try:
            return asyncio.run(run_flow_bindings(args))
        except BrokenPipeError:
            return 0
    if args.cmd == "log":  # reads a file: no loop, no sources
        try:
            return _log(args)
        except BrokenPipeError:
            return 0
    prepared = None
    if args.cmd == "status" and os.environ.get("MHCTL_STATUS_PATH", "") != "runtime":
        # the cheap checks, and `ip` started, before the core is imported: it runs meanwhile (issue 14)
        from .status_fast import Fallback, prepare
        try:
            prepared = prepare(mip6d_conf=args.mip6d_conf, system_bus=args.system_bus, vt_port=args.vt_port,
                               use_networkmanager=not args.no_networkmanager)
        except Fallback as e:
            prepared = e
    from .sources.config import ConfigError
    try:
        if args.cmd == "status":
            picture = _status_fast(args, prepared)
            if picture is not None:  # nothing needed the loop, D-Bus or pyroute2 (issue 14)
                print_status(picture, as_json=args.json)
                return 0
        import asyncio
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
