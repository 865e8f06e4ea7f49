"""Runs mhgui's TrayController in its own process for tests/test_tray.py (xcb under Xvfb, private session bus).

stdin, one command a line: ``state NAME`` (ok, backup, no-coa, no-daemon: a new
snapshot, then refresh()), ``quietly NAME`` (a new snapshot, no refresh()), ``popup X Y`` (show the context menu as a popup,
for a screenshot), ``quit``. stdout, one event a line: ``READY available=B close-keeps-running=B``,
``ICON available=B`` (an icon was built), ``AVAILABLE B``, ``PREFER IFNAME``,
``OPEN``, ``TOGGLE``, ``QUIT``, ``SHOWN`` (the menu is about to show).

The snapshots are built by mhgui.core.trayview from a real model: eth0
(primary) and wlan0 (backup) with CoAs and routers, one HoA bound through
eth0 (or wlan0 in the "backup" state).
"""

from __future__ import annotations

import asyncio
import signal
import sys


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def views():
    from mhgui.core.analysis import analyse
    from mhgui.core.bindings import Binding, BindingState
    from mhgui.core.capabilities import DaemonCapabilities
    from mhgui.core.failover import Preferences
    from mhgui.core.model import Address, HomeAddress, Interface, InterfaceKind, NodeState
    from mhgui.core.steering import SteeringRule, parse_destination
    from mhgui.core.trayview import build_tray_view

    def state(links_up=("eth0", "wlan0")):
        ifs = {2: Interface(2, "eth0", InterfaceKind.ETHERNET, True, True, "eth0" in links_up,
                            "up" if "eth0" in links_up else "down"),
               3: Interface(3, "wlan0", InterfaceKind.WIFI, True, True, "wlan0" in links_up,
                            "up" if "wlan0" in links_up else "down")}
        addrs = [Address(2, "2001:db8:a::10", 64), Address(3, "2001:db8:b::10", 64)]
        return NodeState(interfaces=ifs, addresses={a.key: a for a in addrs},
                         routers={2: frozenset({"fe80::1"}), 3: frozenset({"fe80::2"})},
                         home_addresses=(HomeAddress("2001:db8:1::100", 64, "2001:db8:1::1", "eth0"),))

    prefs = Preferences(order=("eth0", "wlan0"), backup=frozenset({"wlan0"}))
    caps = DaemonCapabilities(name="umip", connected=True, per_hoa_choice=False)
    rule = SteeringRule("r1", (parse_destination("2001:db8:99::/64"),), "eth0", 0.0)

    def bound(coa, iface):
        return (Binding("2001:db8:1::100", coa, "2001:db8:1::1", state=BindingState.REGISTERED,
                        flags=("A", "H"), interface=iface),)

    out_ = {}
    st = state()
    out_["ok"] = build_tray_view(st, analyse(st, 0.0), prefs=prefs, policy_current="eth0",
                                 bindings=bound("2001:db8:a::10", "eth0"), caps=caps, daemon_name="mip6d",
                                 daemon_configured=True, daemon_reachable=True, following_rules=(rule,))
    st = state(("wlan0",))
    out_["backup"] = build_tray_view(st, analyse(st, 0.0), prefs=prefs, policy_current="wlan0",
                                     bindings=bound("2001:db8:b::10", "wlan0"), caps=caps,
                                     daemon_name="mip6d", daemon_configured=True, daemon_reachable=True)
    st = state(())
    out_["no-coa"] = build_tray_view(st, analyse(st, 0.0), prefs=prefs, caps=caps, daemon_name="mip6d",
                                     daemon_configured=True, daemon_reachable=True)
    st = state()
    out_["no-daemon"] = build_tray_view(st, analyse(st, 0.0), prefs=prefs, daemon_name="mip6d",
                                        daemon_configured=True, daemon_reachable=False)
    for k, v in out_.items():
        assert v.state == k, (k, v.state)
    return out_


async def amain(app, done: asyncio.Event) -> int:
    from PySide6.QtCore import QPoint

    from mhgui.ui.tray import TrayController

    vs = views()
    current = {"view": vs["ok"]}
    tray = TrayController(lambda: current["view"], on_prefer=lambda n: out(f"PREFER {n}"),
                          on_open=lambda: out("OPEN"), on_quit=lambda: (out("QUIT"), done.set()),
                          on_toggle=lambda: out("TOGGLE"))
    tray.availableChanged.connect(lambda v: out(f"AVAILABLE {v}"))
    tray.iconCreated.connect(lambda: (out(f"ICON available={tray.available}"),
                                      tray.menu.aboutToShow.connect(lambda: out("SHOWN"))))
    await tray.start()
    out(f"READY available={tray.available} close-keeps-running={tray.keeps_running_on_close()}")

    loop = asyncio.get_running_loop()

    def command() -> None:
        line = sys.stdin.readline()
        if not line:
            done.set()
            return
        words = line.split()
        if not words:
            return
        if words[0] == "state":
            current["view"] = vs[words[1]]
            tray.refresh()
            out(f"STATE {words[1]}")
        elif words[0] == "quietly":  # a new snapshot without refresh(): only AboutToShow can see it
            current["view"] = vs[words[1]]
            out(f"QUIETLY {words[1]}")
        elif words[0] == "popup":
            tray.menu.popup(QPoint(int(words[1]), int(words[2])))  # never exec()
            out("POPPED")
        elif words[0] == "quit":
            done.set()

    loop.add_reader(sys.stdin.fileno(), command)
    await done.wait()
    loop.remove_reader(sys.stdin.fileno())
    await tray.stop()
    return 0


def main() -> int:
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    app.setApplicationName("mhgui")
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    with loop:
        return loop.run_until_complete(amain(app, done))


if __name__ == "__main__":
    sys.exit(main())
