"""Issue 13.5 against a real kernel: what is an access link is told by the link's type, never its name.

Real links in a network namespace (bridge, macvlan, ifb, vxlan, veth), read through the real netlink
source (``IFLA_LINKINFO``/``IFLA_INFO_KIND``), each up with carrier and a global IPv6 address; the
names are chosen to mislead (a bridge called ``eth5``, a veth called ``br-up``).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from mhgui.core.analysis import analyse
from mhgui.core.model import InterfaceKind as K
from mhgui.core.state import StateStore
from mhgui.sources.netlink import NetlinkSource
from netns import lab  # noqa: F401  (fixture)

pytestmark = [pytest.mark.netns]


async def until(pred, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_virtual_links_are_known_by_their_kind_and_never_count(lab):  # noqa: F811
    lab.uplink("br-up")  # a veth, whatever the name says: the one access link
    lab.uplink("port9")  # a veth, enslaved below: gives the bridge its carrier
    lab.ip("link", "add", "eth5", "type", "bridge")
    lab.ip("link", "set", "port9", "master", "eth5")
    lab.ip("link", "add", "wlan7", "link", "br-up", "type", "macvlan", "mode", "bridge")
    lab.ip("link", "add", "eth6", "type", "ifb")
    lab.ip("link", "add", "eth8", "type", "vxlan", "id", "42", "dstport", "4789", "local", "2001:db8:9::1")
    addrs = {"br-up": "2001:db8:1::1", "eth5": "2001:db8:2::1", "wlan7": "2001:db8:3::1",
             "eth6": "2001:db8:4::1", "eth8": "2001:db8:5::1"}
    for name, a in addrs.items():
        lab.ip("link", "set", name, "up")
        lab.ip("-6", "addr", "add", f"{a}/64", "dev", name, "nodad")
    store = StateStore()
    src = NetlinkSource(store.apply, netns=lab.ns)
    await src.start()
    try:
        by_name = lambda: {i.name: i for i in store.state.interfaces.values()}  # noqa: E731
        have = lambda: {k.address for k in store.state.addresses}  # noqa: E731
        await until(lambda: set(addrs.values()) <= have(), "every address in the model")
        await until(lambda: all(by_name()[n].up for n in addrs), "every link up with carrier")
        kinds = {n: by_name()[n].kind for n in addrs}
        assert kinds == {"br-up": K.ETHERNET, "eth5": K.VIRTUAL, "wlan7": K.VIRTUAL, "eth6": K.VIRTUAL,
                         "eth8": K.VIRTUAL}
        an = analyse(store.state, time.monotonic())
        assert an.active == {by_name()["br-up"].ifindex}
        assert (an.x, an.z) == (1, 1)
        for name in ("eth5", "wlan7", "eth6", "eth8"):
            key = next(k for k in store.state.addresses if k.address == addrs[name])
            assert an.roles[key].role == "other" and "virtual link" in an.roles[key].reason
    finally:
        await src.stop()
