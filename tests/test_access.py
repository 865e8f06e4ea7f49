"""The "no access" decision (mhgui.core.access): pure, from statuses, node state and sandbox.

The probes and the whole chain on real buses and namespaces are in test_access_bus.py.
"""

from __future__ import annotations

import pytest

from mhgui.core.access import (
    HELPER_NAME, NM_NAME, NO_SANDBOX, banner_lines, parse_flatpak_info, problems, taxonomy_is_node,
)
from mhgui.core.model import Interface, InterfaceKind, NodeState
from mhgui.core.report import render_text, status
from mhgui.core.state import LinkUpsert, SourceStatus, StateStore
from mhgui.sources.access import read_sandbox

FLATPAK_MINIMAL = """\
[Application]
name=io.github.mhgui.MHGui
runtime=runtime/org.kde.Platform/x86_64/6.8

[Context]
shared=ipc;
sockets=wayland;fallback-x11;

[Session Bus Policy]
org.kde.StatusNotifierWatcher=talk
"""

FLATPAK_FULL = """\
[Application]
name=io.github.mhgui.MHGui

[Context]
shared=network;ipc;
sockets=wayland;fallback-x11;

[System Bus Policy]
org.freedesktop.NetworkManager=talk
io.github.mhgui.MHGui.Helper1=talk
"""

LO = Interface(1, "lo", InterfaceKind.LOOPBACK, admin_up=True, oper_up=True, carrier=True)
ETH = Interface(2, "eth0", InterfaceKind.ETHERNET, admin_up=True, oper_up=True, carrier=True)


def node(*ifaces: Interface) -> NodeState:
    st = NodeState()
    for i in ifaces:
        st.interfaces[i.ifindex] = i
    return st


def src(**kw: str) -> dict[str, tuple[str, str]]:
    base = {"system-bus": "ok", "helper": "present", "networkmanager": "running", "netlink": "ok"}
    base.update({k.replace("_", "-"): v for k, v in kw.items()})
    return {k: (v, "") for k, v in base.items()}


def codes(found) -> list[str]:
    return [p.code for p in found]


MINIMAL = parse_flatpak_info(FLATPAK_MINIMAL)
FULL = parse_flatpak_info(FLATPAK_FULL)


# --------------------------------------------------------------------------- flatpak-info
def test_flatpak_info_is_parsed():
    assert MINIMAL.flatpak and MINIMAL.app_id == "io.github.mhgui.MHGui"
    assert MINIMAL.network_shared is False and MINIMAL.can_talk_system(NM_NAME) is False
    assert FULL.network_shared is True
    assert FULL.can_talk_system(NM_NAME) and FULL.can_talk_system(HELPER_NAME)
    assert not FULL.can_talk_system("org.freedesktop.NetworkManagerX")
    wild = parse_flatpak_info("[System Bus Policy]\norg.freedesktop.*=talk\nio.github.x=see\n")
    assert wild.can_talk_system(NM_NAME) and not wild.can_talk_system("io.github.x")
    assert parse_flatpak_info("[Context]\nsockets=system-bus;\n").can_talk_system(HELPER_NAME)
    assert NO_SANDBOX.can_talk_system(NM_NAME) is None and NO_SANDBOX.network_shared is None


@pytest.mark.parametrize("text", ["no section header\n", "[Context]\nshared\n[[x\n"])
def test_malformed_flatpak_info_is_a_flatpak_with_unknown_permissions(text):
    sb = parse_flatpak_info(text, "/x/.flatpak-info")
    assert sb.flatpak and "/x/.flatpak-info" in sb.error
    assert sb.can_talk_system(NM_NAME) is None and sb.network_shared is None
    # nothing is assumed granted, and nothing is blamed on a permission nobody can read
    found = problems(src(networkmanager="absent"), node(LO), sb)
    assert codes(found) == ["loopback-only"] and found[0].permission == "--share=network"


def test_read_sandbox(tmp_path, monkeypatch):
    assert not read_sandbox(str(tmp_path / "absent")).flatpak
    f = tmp_path / "info"
    f.write_text(FLATPAK_FULL)
    monkeypatch.setenv("MHGUI_FLATPAK_INFO", str(f))
    assert read_sandbox().network_shared is True
    f.write_bytes(b"\xff\xfe[Context]\n")
    sb = read_sandbox(str(f))
    assert sb.flatpak and "not UTF-8" in sb.error
    d = tmp_path / "dir"
    d.mkdir()
    sb = read_sandbox(str(d))
    assert sb.flatpak and "cannot read" in sb.error


# --------------------------------------------------------------------------- the four states
def test_all_visible_is_no_problem():
    assert problems(src(), node(LO, ETH)) == []
    assert problems(src(), node(LO, ETH), FULL) == []


@pytest.mark.parametrize("bus", ["missing", "refused", "unreachable"])
def test_no_system_bus(bus):
    found = problems(src(system_bus=bus, helper="unknown", networkmanager="no-access"), node(LO, ETH))
    assert codes(found) == ["no-system-bus"]  # NetworkManager and the helper follow from it: not listed again
    assert "system bus" in found[0].message and {"rebind", "networkmanager"} <= set(found[0].affects)
    if bus == "refused":
        assert "policy" in found[0].permission
    else:
        assert found[0].permission is None and "DBUS_SYSTEM_BUS_ADDRESS" in found[0].fix
    fp = problems(src(system_bus="missing", helper="unknown", networkmanager="absent"), node(LO, ETH), MINIMAL)
    assert codes(fp) == ["no-system-bus"] and fp[0].permission == f"--system-talk-name={NM_NAME}"
    assert "sandbox" in fp[0].message


def test_networkmanager_denied_by_policy_but_not_when_absent():
    found = problems(src(networkmanager="no-access"), node(LO, ETH))
    assert codes(found) == ["networkmanager-denied"]
    assert NM_NAME in found[0].permission and "policy" in found[0].permission
    # not installed / not running / stopped is not an access problem
    for st in ("absent", "stopped", "running"):
        assert problems(src(networkmanager=st), node(LO, ETH)) == []


def test_networkmanager_hidden_by_the_sandbox():
    found = problems(src(networkmanager="absent"), node(LO, ETH), MINIMAL)
    assert "networkmanager-denied" in codes(found)
    p = found[codes(found).index("networkmanager-denied")]
    assert p.permission == f"--system-talk-name={NM_NAME}" and "sandbox" in p.message
    # granted: then "absent" really means not running
    assert problems(src(networkmanager="absent"), node(LO, ETH), FULL) == []
    # --no-networkmanager: nobody asked for it
    assert "networkmanager-denied" not in codes(
        problems(src(networkmanager="absent"), node(LO, ETH), MINIMAL, networkmanager_wanted=False))


def test_loopback_only():
    found = problems(src(), node(LO))
    assert codes(found) == ["loopback-only"] and not taxonomy_is_node(found)
    assert "not this node's" in found[0].message and found[0].permission is None
    fp = problems(src(), node(LO), MINIMAL)
    assert fp[codes(fp).index("loopback-only")].permission == "--share=network"
    assert "--share=network" in banner_lines(fp)[codes(fp).index("loopback-only")]
    # a real interface next to lo, netlink not settled yet, or nothing seen yet: no claim
    assert problems(src(), node(LO, ETH)) == []
    assert problems(src(netlink="resyncing"), node(LO)) == []
    assert problems(src(), node()) == []


def test_netlink_denied():
    found = problems(src(netlink="no-access"), node())
    assert codes(found) == ["netlink-denied"] and not taxonomy_is_node(found)


def test_helper_absent_and_denied():
    found = problems(src(helper="absent"), node(LO, ETH))
    assert codes(found) == ["helper-absent"] and "scripts/install-helper" in found[0].fix
    assert "install-helper" not in found[0].message  # said once, as the fix (the banner shows both)
    assert found[0].permission is None and set(found[0].affects) == {"rebind", "steering"}
    denied = problems(src(helper="denied"), node(LO, ETH))
    assert codes(denied) == ["helper-denied"] and "netdev" in denied[0].permission
    hidden = problems(src(helper="absent"), node(LO, ETH), MINIMAL)
    h = hidden[codes(hidden).index("helper-absent")]
    assert h.permission == f"--system-talk-name={HELPER_NAME}"
    # present, or not known: nothing said
    assert problems(src(helper="present"), node(LO, ETH)) == []
    assert problems(src(helper="unknown"), node(LO, ETH)) == []


def test_unreported_statuses_say_nothing():
    assert problems({}, node(LO)) == []


# --------------------------------------------------------------------------- report
def test_status_json_and_text_carry_the_problems():
    store = StateStore()
    store.apply(LinkUpsert(LO))
    for name, st in (("netlink", "ok"), ("networkmanager", "no-access"), ("system-bus", "ok"), ("helper", "absent")):
        store.apply(SourceStatus(name, st, "why"))
    s = status(store, 0.0)
    assert [p["code"] for p in s["access"]] == ["networkmanager-denied", "loopback-only", "helper-absent"]
    assert all(set(p) == {"code", "message", "permission", "fix", "affects"} for p in s["access"])
    assert s["taxonomy"]["of_node"] is False
    assert s["sources"] == {"networkmanager": "no-access", "netlink": "ok"}
    text = render_text(s)
    assert "No access [loopback-only]" in text and "Not this node's taxonomy" in text
    store.apply(LinkUpsert(ETH))
    s = status(store, 0.0)
    assert s["taxonomy"]["of_node"] is True and "loopback-only" not in [p["code"] for p in s["access"]]


# --------------------------------------------------------------------------- window
def test_window_banner_names_the_problem_and_the_headline_disowns_the_taxonomy(qtbot):
    from mhgui.ui.window import LiveController, MainWindow
    store = StateStore()
    c = LiveController(store, lambda: 0.0)
    win = MainWindow(c)
    qtbot.addWidget(win)
    assert win.banner.isHidden()
    store.apply(LinkUpsert(LO))
    store.apply(SourceStatus("netlink", "ok"))
    qtbot.waitUntil(lambda: not win.banner.isHidden())
    assert "Only the loopback interface is visible" in win.banner.text()
    assert win.headline.text().startswith("Not this node's view: (0,0,0)")
    win.access_problems = lambda: problems(store.sources, store.state, MINIMAL)
    win.set_error("Configuration problem")
    assert "Needs: --share=network" in win.banner.text() and "Configuration problem" in win.banner.text()
    store.apply(LinkUpsert(ETH))
    qtbot.waitUntil(lambda: "loopback" not in win.banner.text())
    assert win.headline.text().startswith("(0,0,0)")
    store.apply(SourceStatus("helper", "denied", "org.freedesktop.DBus.Error.AccessDenied"))
    qtbot.waitUntil(lambda: "does not let this user call the privileged helper" in win.banner.text())


def test_default_mip6d_conf_is_the_hosts_also_in_a_sandbox():
    """The sandbox sees no host /etc (no --filesystem=host-etc): the helper reads this path for it
    (tests/test_sandbox_config.py)."""
    from mhgui.sources.config import default_mip6d_conf

    assert default_mip6d_conf() == "/etc/mip6d.conf"
