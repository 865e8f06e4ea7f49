"""``mhctl flow-bindings``: the engine's flow bindings (RFC 6089) and load sharing, from the command line.

    mhctl flow-bindings [list] [--json]
    mhctl flow-bindings add --via up1[,up0] (--remote ADDR [--remote-port N] [--local-port N] [--protocol P]
                            | --selector JSON) [--hoa HOA] [--json]
    mhctl flow-bindings change FID --via IFACE[,IFACE] [--hoa HOA] [--json]
    mhctl flow-bindings remove FID [--hoa HOA] [--json]
    mhctl flow-bindings share up0=1 up1=1 | off

``--remote`` is the correspondent, ``--local-port`` the node's own port (the selector is written as the home
agent sees the flow: RFC 6088 source = the correspondent). Several ``--via`` interfaces send the flow on each
(bicast). Exit status: 0 done, 1 refused (by the engine, the home agent or polkit: the reason is printed),
2 a request that cannot work (checked before anything is asked).
"""

from __future__ import annotations

import json
import sys

from .i18n import N_, _

__all__ = ["add_flow_parser", "run_flow_bindings"]

SCHEMA = 1
CONNECT_TIMEOUT = 3.0


def _range_arg(text: str):
    a, sep, b = text.partition("-")
    try:
        return [int(a), int(b)] if sep else int(a)
    except ValueError:
        raise ValueError(_("{text}: a port or a range like 5000-5010").format(text=repr(text))) from None


EPILOG = N_("""examples (inside the lab: mhctl lab exec -- mhctl flow-bindings ...):
  mhctl flow-bindings                                    list them, with their BIDs and load sharing
  mhctl flow-bindings add --remote 2001:db8:c0::2 --remote-port 443 --local-port 40000 --via up1
                                                         move that one TCP connection to up1
  mhctl flow-bindings add --remote 2001:db8:c0::2 --protocol udp --local-port 5060 --via up0,up1
                                                         send a call on both uplinks (bicast)
  mhctl flow-bindings change 1 --via up0                 move flow binding 1 (FID) elsewhere
  mhctl flow-bindings remove 1                           it follows its home address again
  mhctl flow-bindings share up0=1 up1=2                  spread new flows over the uplinks (share off)

The flow is named from the node's side: --remote is the correspondent (IPv6), --local-port this node's
own port; with ports and no --protocol, TCP is meant. On the wire the selector is written as the home
agent sees the flow (RFC 6088: source = the correspondent). --selector takes that JSON form directly,
e.g. '{"source_address": "2001:db8:c0::2", "protocol": "udp", "destination_port": [5060, 5070]}'.
Exit status: 0 done, 1 refused (the reason is printed), 2 a request that cannot work.""")


def add_flow_parser(sub) -> None:
    import argparse
    fb = sub.add_parser("flow-bindings", help=_("the engine's flow bindings: list, add, change, remove, share "
                                                "(move one connection, send it on two uplinks, spread flows)"),
                        epilog=_(EPILOG), formatter_class=argparse.RawDescriptionHelpFormatter)
    fb.add_argument("action", nargs="?", default="list", choices=("list", "add", "change", "remove", "share"))
    fb.add_argument("args", nargs="*", help=_("change/remove: FID; share: IFACE=WEIGHT... or off"))
    fb.add_argument("--hoa", default=None, help=_("the home address (default: the engine's first)"))
    fb.add_argument("--via", default=None, metavar="IFACE[,IFACE]", help=_("add/change: the uplink(s) to use"))
    fb.add_argument("--remote", default=None, metavar="ADDR", help=_("add: the correspondent's address"))
    fb.add_argument("--remote-port", default=None, metavar="N[-M]", help=_("add: the correspondent's port (or range)"))
    fb.add_argument("--local-port", default=None, metavar="N[-M]", help=_("add: this node's own port (or range)"))
    fb.add_argument("--protocol", default=None, help=_("add: tcp, udp, icmpv6 or a number (ports alone mean tcp)"))
    fb.add_argument("--selector", default=None, metavar="JSON", help=_("add: an RFC 6088 selector as JSON "
                                                                       "({file})").format(file="mhgui/engine/flowspec.py"))
    fb.add_argument("--json", action="store_true", help=_("machine-readable output"))
    fb.add_argument("--system-bus", metavar="ADDRESS", default=None, help=_("D-Bus address of the system bus"))


_OPTION_OF = {"source_address": "--remote", "source_port": "--remote-port", "destination_port": "--local-port",
              "next_header": "--protocol", "destination_address": "--hoa"}


def _selector(args, hoa: str):
    """The selector of ``add``; ValueError in the words of the options the user typed."""
    try:
        return _selector_of(args, hoa)
    except ValueError as e:
        text = str(e)
        if args.selector is None:
            for field, option in _OPTION_OF.items():
                text = text.replace(f"{field}:", f"{option}:")
        raise ValueError(text) from None


def _selector_of(args, hoa: str):
    from .engine.flowspec import selector_from_json
    if args.remote is not None:
        if ":" not in args.remote:
            raise ValueError(_("--remote: {address} is not an IPv6 address (the engine's home addresses are "
                               "IPv6: so are the correspondents it binds flows with)").format(address=args.remote))
        import ipaddress
        try:
            if ipaddress.IPv6Address(args.remote.split("%")[0]) == ipaddress.IPv6Address(hoa):
                raise ValueError(_("--remote is the correspondent, not this node's own home address"))
        except ipaddress.AddressValueError:
            pass  # said by the selector's own check, in its words
    if args.selector is not None:
        if any(v is not None for v in (args.remote, args.remote_port, args.local_port, args.protocol)):
            raise ValueError(_("give --selector or --remote/--remote-port/--local-port/--protocol, not both"))
        return selector_from_json(args.selector)
    if args.remote is None and args.remote_port is None and args.local_port is None:
        raise ValueError(_("say which flow: --remote ADDR (and ports), or --selector JSON"))
    sel: dict = {"destination_address": hoa}
    if args.remote is not None:
        sel["source_address"] = args.remote
    if args.remote_port is not None:
        sel["source_port"] = _range_arg(args.remote_port)
    if args.local_port is not None:
        sel["destination_port"] = _range_arg(args.local_port)
    if args.protocol is not None:
        sel["protocol"] = int(args.protocol) if args.protocol.isdigit() else args.protocol
    elif "source_port" in sel or "destination_port" in sel:
        sel["protocol"] = "tcp"
    return selector_from_json(sel)


def _fid(args) -> int:
    if len(args.args) != 1 or not args.args[0].isdigit() or not 1 <= int(args.args[0]) <= 0xFFFF:
        raise ValueError(_("flow-bindings {action} takes one FID (1..65535; see `mhctl flow-bindings`)").format(
            action=args.action))
    return int(args.args[0])


def _print_result(args, what: str, r) -> int:
    if args.json:
        print(json.dumps({"schema": SCHEMA, "action": args.action, "confirmed": r.confirmed, "fid": r.fid,
                          "elapsed_ms": round(r.elapsed_ms, 3), "reason": r.reason}))
    elif r.confirmed:
        then = (_("the flow follows its home address again") if args.action == "remove"
                else _("its packets go out on each and the first copy is kept") if what.count(",") and " via " in what
                else _("moved, the connection continues") if args.action == "change"
                else _("matching connections go through it, the others stay"))
        print(_("{what}: confirmed by the home agent in {ms} ms (FID {fid}); {then}").format(
            what=what, ms=f"{r.elapsed_ms:.1f}", fid=r.fid, then=then))
    else:
        print("mhctl: " + _("{what}: refused: {why}").format(what=what, why=r.reason), file=sys.stderr)
    return 0 if r.confirmed else 1


def _print_list(args, drv) -> None:
    flows, settings = drv.flow_bindings(), drv.flow_settings()
    if args.json:
        print(json.dumps({"schema": SCHEMA, "flow_bindings": flows, "weights": settings["weights"],
                          "limit": settings["limit"]}))
        return
    if not flows:
        print(_("no flow bindings (every flow follows its home address)"))
    for f in flows:
        where = ", ".join(f"{n} (BID {b})" for n, b in zip(f.get("bound_to") or (), f.get("bids") or ()))
        print(f"FID {f['fid']:>5}  {f['selector']}  via {', '.join(f['uplinks'])}  -> {where or '-'}  [{f['state']}]"
              + (f"  {f['error']}" if f.get("error") else ""))
    w = settings["weights"]
    print(_("load sharing: {weights}").format(weights=", ".join(f"{k}={v}" for k, v in w.items()) if w else _("off")))
    if settings["limit"]:
        print(_("limit: {limit}").format(limit=settings["limit"]))


async def run_flow_bindings(args) -> int:
    """Run ``mhctl flow-bindings``; the exit status (module docstring)."""
    from .daemons.base import STATE_CONNECTED, CapabilityError
    from .daemons.engine import EngineCallError, EngineDriver

    if args.action in ("change", "remove"):
        try:
            fid = _fid(args)
        except ValueError as e:
            print(f"mhctl: {e}", file=sys.stderr)
            return 2
    if args.action in ("add", "change") and not args.via:
        print("mhctl: " + _("flow-bindings {action} needs --via IFACE[,IFACE]").format(action=args.action),
              file=sys.stderr)
        return 2
    import asyncio  # here: `mhctl status` builds the parser and runs no loop (issue 14)
    drv = EngineDriver(bus_address=args.system_bus)
    await drv.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_TIMEOUT
        while drv.status.state != STATE_CONNECTED and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if drv.status.state != STATE_CONNECTED:
            print("mhctl: " + _("the mobility engine (mhgui-mn) does not answer: {why}").format(
                why=drv.status.error or drv.status.state), file=sys.stderr)
            return 1
        hoas = [b.get("hoa") for b in drv.raw_bindings()]
        hoa = args.hoa or (hoas[0] if hoas else None)
        if hoa is None:
            print("mhctl: " + _("the engine has no home address"), file=sys.stderr)
            return 1
        try:
            if args.action == "list":
                await drv.list_flow_bindings()
                _print_list(args, drv)
                return 0
            if args.action == "share":
                if not args.args:
                    print("mhctl: " + _("flow-bindings share IFACE=WEIGHT... (e.g. up0=1 up1=2), or share off"),
                          file=sys.stderr)
                    return 2
                weights = {}
                if args.args != ["off"]:
                    for a in args.args:
                        name, sep, w = a.partition("=")
                        if not sep or not w.isdigit():
                            print("mhctl: " + _("{arg}: IFACE=WEIGHT (e.g. up0=1 up1=1), or off").format(arg=repr(a)),
                                  file=sys.stderr)
                            return 2
                        weights[name.strip()] = int(w)
                weights = {k: v for k, v in weights.items() if v}
                await drv.set_load_sharing(weights)
                known = {u.get("name") for u in drv.uplinks()}
                for name in sorted(set(weights) - known):
                    print(_("note: {name} is not one of the engine's uplinks now: its weight is kept for when it is")
                          .format(name=name), file=sys.stderr)
                print(_("load sharing {weights}").format(
                    weights=_("off") if not weights else ", ".join(f"{k}={v}" for k, v in weights.items()))
                      + ("" if len(weights) != 1 else _(" (one uplink: new flows all go there)")))
                return 0
            via = [v.strip() for v in args.via.split(",") if v.strip()] if args.via else []
            if args.action == "add":
                try:
                    sel = _selector(args, hoa)
                except ValueError as e:
                    print("mhctl: " + _("refused: {why}").format(why=e), file=sys.stderr)
                    return 2
                return _print_result(args, f"{sel.describe()} via {', '.join(via)}",
                                     await drv.bind_flow(hoa, sel, via))
            if args.action == "change":
                return _print_result(args, f"FID {fid} via {', '.join(via)}", await drv.move_flow(hoa, fid, via))
            return _print_result(args, f"remove FID {fid}", await drv.remove_flow_binding(hoa, fid))
        except CapabilityError as e:
            print(f"mhctl: {e}", file=sys.stderr)
            return 1
        except EngineCallError as e:
            print(f"mhctl: {e}", file=sys.stderr)
            return 2 if e.error_name.endswith("InvalidArgs") else 1
    finally:
        await drv.stop()
