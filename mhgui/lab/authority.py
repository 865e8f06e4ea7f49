"""The lab's polkit authority: answers ``CheckAuthorization`` on the lab's private system bus.

The lab's bus has no polkitd, yet the engine's control API asks polkit before
every change (``io.github.mhgui.MHGui.engine-*``). This small authority says
yes to mhgui's own actions (``io.github.mhgui.MHGui.*``) for root and for the
users named when the lab was started (``mhctl lab up --allow-user U``, which
``./scripts/run --lab`` passes for the person who runs it), and no to
everything else. It exists only inside a lab; a real system has polkitd.

Interface: ``org.freedesktop.PolicyKit1.Authority`` at
``/org/freedesktop/PolicyKit1/Authority``, method
``CheckAuthorization((sa{sv}) subject, s action_id, a{ss} details, u flags,
s cancellation_id) -> (b is_authorized, b is_challenge, a{ss} details)``
(polkit's D-Bus API, org.freedesktop.PolicyKit1.Authority(5)). Subjects:
``system-bus-name`` (the uid is asked of the bus) and ``unix-process`` (the
uid from ``/proc/PID/status``, or the ``uid`` the subject carries).

Run: ``python -m mhgui.lab.authority --bus ADDRESS --config STATE/authority.conf --allow-uid N ...``
(``--config`` only marks the process as the lab's, so that ``lab down`` finds it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method

__all__ = ["Authority", "POLICY_CONF", "decide", "main", "serve"]

log = logging.getLogger("mhgui.lab.authority")

NAME = "org.freedesktop.PolicyKit1"
PATH = "/org/freedesktop/PolicyKit1/Authority"
PREFIX = "io.github.mhgui.MHGui."

#: lab-bus policy that lets this authority (root) own polkit's name and anyone ask it
POLICY_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root"><allow own="org.freedesktop.PolicyKit1"/></policy>
  <policy context="default"><allow send_destination="org.freedesktop.PolicyKit1"/></policy>
</busconfig>
"""


def decide(uid: int | None, action: str, allowed: set[int]) -> bool:
    """Yes for mhgui's actions asked by root or an allowed uid; no otherwise (also when the uid is unknown)."""
    return uid is not None and action.startswith(PREFIX) and (uid == 0 or uid in allowed)


class Authority(ServiceInterface):
    def __init__(self, bus: MessageBus, allowed: set[int]) -> None:
        super().__init__("org.freedesktop.PolicyKit1.Authority")
        self.bus, self.allowed = bus, allowed

    async def _uid(self, subject) -> int | None:
        kind, details = subject
        try:
            if kind == "system-bus-name":
                reply = await self.bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                                    interface="org.freedesktop.DBus", member="GetConnectionUnixUser",
                                                    signature="s", body=[details["name"].value]))
                return reply.body[0] if reply.message_type == MessageType.METHOD_RETURN else None
            if kind == "unix-process":
                if "uid" in details and details["uid"].value >= 0:
                    return int(details["uid"].value)
                with open(f"/proc/{int(details['pid'].value)}/status") as f:
                    for line in f:
                        if line.startswith("Uid:"):
                            return int(line.split()[1])
        except (KeyError, OSError, ValueError, TypeError, AttributeError):
            return None
        return None

    @method()
    async def CheckAuthorization(self, subject: "(sa{sv})", action_id: "s", details: "a{ss}", flags: "u",  # noqa: F821,F722
                                 cancellation_id: "s") -> "(bba{ss})":  # noqa: F821,F722
        uid = await self._uid(subject)
        ok = decide(uid, action_id, self.allowed)
        log.info("%s for uid %s: %s", action_id, uid, "yes" if ok else "no")
        return [ok, False, {}]

    @method()
    def CancelCheckAuthorization(self, cancellation_id: "s"):  # noqa: F821
        return None


async def serve(address: str, allowed: set[int]) -> None:
    bus = await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()
    bus.export(PATH, Authority(bus, allowed))
    await bus.request_name(NAME)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("lab polkit authority on %s (allowing root and uids %s)", address, sorted(allowed) or "none")
    await stop.wait()
    bus.disconnect()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mhgui-lab-authority", description=__doc__.split("\n\n")[0])
    p.add_argument("--bus", required=True, help="the lab bus address (unix:path=...)")
    p.add_argument("--config", default=None, help="marks the process as belonging to a lab")
    p.add_argument("--allow-uid", type=int, action="append", default=[], help="a uid allowed mhgui's actions")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    asyncio.run(serve(args.bus, set(args.allow_uid)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
