"""``mhctl lab``: start, change and stop the Mobile IPv6 test lab (needs root).

    mhctl lab up [--json] [--prefix P] [--no-daemons]
    mhctl lab down [--prefix P]
    mhctl lab restart [--prefix P]                              (its daemons, e.g. after one died)
    mhctl lab cut|restore|blackhole UPLINK [--prefix P]       (UPLINK: up0 or up1)
    mhctl lab exec [--user U] [--prefix P] -- COMMAND...
    mhctl lab status [--json] [--prefix P]

Hook: ``add_lab_parser(subparsers)`` adds the ``lab`` subcommand, ``run_lab(args)`` runs it. Exit
status: 0 success; 1 the lab failed (one message on stderr); 2 usage error; ``exec`` passes its
command's status through. Also runnable alone: ``python -m mhgui.lab.cli up``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import warnings

from . import DEFAULT_PREFIX, UPLINKS, Lab, LabError
from .topology import validate_prefix

__all__ = ["add_lab_parser", "main", "run_lab"]


def _prefix(text: str) -> str:
    try:
        return validate_prefix(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_lab_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``lab`` and its subcommands to ``subparsers`` (from ``add_subparsers``); returns its parser."""
    from ..i18n import _
    lab = subparsers.add_parser("lab", help=_("a Mobile IPv6 test lab in network namespaces (root)"),
                                description=_("A Mobile IPv6 test lab: mobile node, two access routers "
                                              "(IPv6; IPv4 with NAT44), core router, home agent, correspondent."))
    prefix_help = _("namespace prefix: 1-8 of a-z, 0-9, '-' (default {prefix})").format(prefix=DEFAULT_PREFIX)
    lab.add_argument("--prefix", type=_prefix, default=DEFAULT_PREFIX, help=prefix_help)
    sub = lab.add_subparsers(dest="lab_cmd", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        # SUPPRESS: `lab --prefix x up` keeps x (a subparser default would overwrite it)
        p.add_argument("--prefix", type=_prefix, default=argparse.SUPPRESS, help=prefix_help)
        return p

    up = add("up", _("build the lab and start its bus and daemons"))
    up.add_argument("--json", action="store_true", help=_("machine-readable output"))
    up.add_argument("--no-daemons", action="store_true", help=_("only the network and the bus"))
    up.add_argument("--multiple-care-of", action="store_true",
                    help=_("the mobile node registers both uplinks at once (RFC 5648): move single connections, "
                           "bicast, load sharing"))
    up.add_argument("--allow-user", metavar="U", action="append", default=[],
                    help=_("a user (name or uid) the lab's polkit authority allows mhgui's actions (repeatable)"))
    add("down", _("stop the lab and remove everything it made (also after a crash)"))
    add("restart", _("stop and start the lab's daemons (home agent, mobile node), e.g. after one died"))
    for name, help in (("cut", _("carrier loss on an uplink (its router's side goes down)")),
                       ("restore", _("undo cut and blackhole on an uplink")),
                       ("blackhole", _("an uplink stays up but its router drops everything from and to it"))):
        add(name, help).add_argument("uplink", choices=[u.name for u in UPLINKS])
    ex = add("exec", _("run a command in the mobile node's namespace, on the lab's bus"))
    ex.add_argument("--user", metavar="U", default=None, help=_("run as this user (name or uid)"))
    ex.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    st = add("status", _("what of the lab is up"))
    st.add_argument("--json", action="store_true", help=_("machine-readable output"))
    return lab


def _prefix_opt(prefix: str) -> str:
    """`` --prefix P`` when ``prefix`` is not the default lab's (hints must name the lab they are about)."""
    from . import DEFAULT_PREFIX
    return "" if prefix == DEFAULT_PREFIX else f" --prefix {prefix}"


def _print_up(info) -> None:
    from ..i18n import _
    d = info.as_dict()
    print(_("lab {prefix} is up (state in {dir})").format(prefix=info.prefix, dir=info.state_dir))
    print(_("  mobile node    netns {netns}, home address {hoa}").format(netns=d["mn_netns"], hoa=d["hoa"]))
    for u in d["uplinks"]:
        nat = ", NAT44" if u["nat"] else ""
        print(f"    {u['name']}  IPv{u['family']} {u['coa']} via {u['router_netns']}{nat}")
    print(_("  home agent     netns {netns}, {addresses} port {port}").format(
        netns=d["ha_netns"], addresses=_(" and ").join(d["ha_addresses"]), port=d["ha_port"]))
    print(_("  correspondent  netns {netns}, {address}").format(netns=d["cn_netns"], address=d["cn_address"]))
    print(_("  bus            {address}").format(address=info.bus_address))
    if info.daemons:
        print(_("  daemons        home agent pid {ha}, mobile node pid {mn}").format(ha=info.pids.get("ha"),
                                                                                   mn=info.pids.get("mn")))
    flag = "" if info.prefix == DEFAULT_PREFIX else f" --prefix {info.prefix}"
    print(_("try: {try_command}; stop with: {stop_command}").format(
        try_command=f"mhctl lab exec{flag} -- mhctl bindings", stop_command=f"mhctl lab down{flag}"))


def _print_status(st: dict) -> None:
    from ..i18n import _
    if not st["up"]:
        print(_("lab {prefix}: not up").format(prefix=st["prefix"]))
        return
    print(_("lab {prefix}: up").format(prefix=st["prefix"])
          + ("" if st["state_file"] else _(" (no state file: run mhctl lab down)")))
    print(_("  namespaces: {names}").format(names=" ".join(st["namespaces"]) or _("none")))
    if st["missing_namespaces"]:
        print(_("  missing:    {names}").format(names=" ".join(st["missing_namespaces"])))
    for name, p in st["processes"].items():
        alive = _("running") if p["alive"] else _("not running")
        print(f"  {name:<4} pid {p['pid']}: {alive}")
    if st["mn_registered"] is not None:
        print(_("  mobile node on the bus: {answer}").format(answer=_("yes") if st["mn_registered"] else _("no")))
    for u in st["uplinks"]:
        state = _("cut") if u["cut"] else _("blackholed") if u["blackholed"] else _("up")
        print(f"  {u['name']}: {state}")


def _exec(args) -> int:
    cmd = list(args.command)
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    rc = Lab.exec_in_mn(args.prefix, cmd, user=args.user).returncode
    return 128 - rc if rc < 0 else rc


def _uid(user: str) -> int:
    """A user name or number to a uid; LabError when there is no such user."""
    import pwd
    try:
        return int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
    except KeyError:
        from ..i18n import _
        raise LabError(_("no user {user} on this machine").format(user=repr(user))) from None


def run_lab(args: argparse.Namespace) -> int:
    """Run ``mhctl lab ...`` parsed by the parser :func:`add_lab_parser` made."""
    from ..i18n import _
    p = args.prefix
    try:
        if args.lab_cmd == "up":
            info = Lab.up(p, daemons=not args.no_daemons, allow_uids=tuple(_uid(u) for u in args.allow_user),
                          mcoa=args.multiple_care_of)
            # the bus and daemons are meant to outlive this process: no "still running" at exit
            warnings.filterwarnings("ignore", message=r"subprocess \d+ is still running", category=ResourceWarning)
            if args.json:
                print(json.dumps(info.as_dict(), indent=2))
            else:
                _print_up(info)
        elif args.lab_cmd == "down":
            print(f"lab {p}: " + (_("removed") if Lab.down(p) else _("nothing to remove")))
        elif args.lab_cmd == "restart":
            Lab.stop_daemons(p)
            info = Lab.start_daemons(p)
            warnings.filterwarnings("ignore", message=r"subprocess \d+ is still running", category=ResourceWarning)
            print(_("lab {prefix}: daemons restarted (home agent pid {ha}, mobile node pid {mn})").format(
                prefix=p, ha=info.pids.get("ha"), mn=info.pids.get("mn")))
        elif args.lab_cmd in ("cut", "restore", "blackhole"):
            getattr(Lab, args.lab_cmd)(p, args.uplink)
            undo = f"mhctl lab restore{_prefix_opt(p)} {args.uplink}"
            print({"cut": _("lab {prefix}: {uplink} cut (its router's side is down: carrier lost); "
                            "`{command}` undoes it"),
                   "blackhole": _("lab {prefix}: {uplink} blackholed (the link stays up, its router drops "
                                  "everything); `{command}` undoes it"),
                   "restore": _("lab {prefix}: {uplink} restored")}[args.lab_cmd].format(
                prefix=p, uplink=args.uplink, command=undo))
        elif args.lab_cmd == "exec":
            return _exec(args)
        elif args.lab_cmd == "status":
            st = Lab.status(p)
            if args.json:
                print(json.dumps(st, indent=2))
            else:
                _print_status(st)
        return 0
    except LabError as e:
        print(f"mhctl lab {args.lab_cmd}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


def main(argv: list[str] | None = None) -> int:
    """``python -m mhgui.lab.cli ...``: the same as ``mhctl lab ...``."""
    parser = argparse.ArgumentParser(prog="mhctl")
    add_lab_parser(parser.add_subparsers(dest="cmd", required=True))
    return run_lab(parser.parse_args(["lab", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
