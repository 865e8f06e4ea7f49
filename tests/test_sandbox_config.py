"""Inside a Flatpak sandbox the daemon's mip6d.conf comes through the privileged helper (issue 16.3).

The manifest no longer asks for --filesystem=host-etc (Flathub refuses it): the host's /etc is not
visible in the sandbox, so the app asks the helper's ReadConfig. First the parsing of what the helper
gives, against the same text read from a file (property); then the real helper on a private system
bus, in a network namespace of its own, asked by a Runtime that believes it is sandboxed
($MHGUI_FLATPAK_INFO), allowed and refused by polkit, and with no helper at all.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings
from hypothesis import strategies as st

from mhgui.sources.config import ConfigError, DaemonConfig, load_config

REPO = Path(__file__).resolve().parent.parent
HOA_BLOCK = 'MnHomeLink "{link}" {{\n\tHomeAgentAddress {ha};\n\tHomeAddress {hoa}/64;\n}}\n'


def conf_text(hoas: list[tuple[str, str, str]]) -> str:
    return "NodeConfig MN;\n" + "".join(HOA_BLOCK.format(link=link, ha=ha, hoa=hoa) for link, ha, hoa in hoas)


_hoas = st.lists(st.tuples(st.sampled_from(["eth0", "wlan0", "wwan0"]),
                           st.integers(1, 0xFFFF).map(lambda n: f"2001:db8:{n:x}::1"),
                           st.integers(1, 0xFFFF).map(lambda n: f"2001:db8:{n:x}::100")),
                 max_size=4, unique_by=lambda t: t[2])


@hsettings(max_examples=60, deadline=None)
@given(_hoas)
def test_the_helpers_text_gives_what_the_file_gives(tmp_path_factory, hoas):
    tmp = tmp_path_factory.mktemp("conf")
    text = conf_text(hoas)
    path = tmp / "mip6d.conf"
    path.write_text(text)
    settings = tmp / "settings.toml"
    settings.write_text("")
    from_file = load_config(str(path), settings)
    from_helper = load_config(None, settings, daemon=DaemonConfig(str(path), text))
    assert from_helper.home_addresses == from_file.home_addresses
    assert [h.address for h in from_helper.home_addresses] == [h for _l, _a, h in hoas]
    assert from_helper.notes == from_file.notes and from_helper.errors == ()


def test_helper_text_problems_and_notes(tmp_path):
    settings = tmp_path / "settings.toml"
    settings.write_text("")
    one = conf_text([("eth0", "2001:db8:1::1", "2001:db8:1::100")])
    # includes are not followed in the sandbox, and a note says why home addresses may be missing
    loaded = load_config(None, settings, daemon=DaemonConfig("/etc/mip6d.conf", one + 'include "/etc/mip6d.d/*.conf"\n'))
    assert [h.address for h in loaded.home_addresses] == ["2001:db8:1::100"]
    assert "its include statements are not followed here" in loaded.notes[0]
    # the helper could not give it: one note, no home addresses; a missing file: nothing to say
    why = "not read: inside the sandbox it is read through mhgui's helper, which is not available: no bus"
    loaded = load_config(None, settings, daemon=DaemonConfig("/etc/mip6d.conf", None, why))
    assert (loaded.home_addresses, loaded.notes, loaded.errors) == ((), (f"/etc/mip6d.conf: {why}",), ())
    loaded = load_config(None, settings, daemon=DaemonConfig("/etc/mip6d.conf", None))
    assert (loaded.home_addresses, loaded.notes, loaded.errors) == ((), (), ())
    # malformed text: a problem naming the file and line (the window), or ConfigError (mhctl)
    bad = DaemonConfig("/etc/mip6d.conf", "NodeConfig MN;\nMnHomeLink \"eth0\" {\n")
    assert load_config(None, settings, strict=False, daemon=bad).errors[0].startswith("/etc/mip6d.conf:")
    with pytest.raises(ConfigError, match="/etc/mip6d.conf"):
        load_config(None, settings, daemon=bad)
    # a file named on the command line is read as ever, whatever the helper said
    given_file = tmp_path / "given.conf"
    given_file.write_text(conf_text([("eth0", "2001:db8:9::1", "2001:db8:9::100")]))
    loaded = load_config(str(given_file), settings, daemon=DaemonConfig("/etc/mip6d.conf", one))
    assert [h.address for h in loaded.home_addresses] == ["2001:db8:9::100"]


# ------------------------------------------------------------------------------ the real helper

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("dbus-daemon") is None or shutil.which("ip") is None,
                                reason="needs root, dbus-daemon and ip (the helper owns its name as root)")


@pytest.fixture
def sandboxed(tmp_path, monkeypatch):
    """This process believes it runs in a Flatpak (a flatpak-info of its own); no settings file."""
    info = tmp_path / "flatpak-info"
    info.write_text("[Application]\nname=io.github.mhgui.MHGui\n")
    monkeypatch.setenv("MHGUI_FLATPAK_INFO", str(info))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture
def helper_bus(tmp_path):
    pytest.importorskip("dbus")
    pytest.importorskip("dbusmock")
    from privatebus import PrivateBus, end_process, wait_until

    from mhgui.helper import service

    conf = tmp_path / "etc" / "mip6d.conf"
    conf.parent.mkdir()
    conf.write_text(conf_text([("eth0", "2001:db8:1::1", "2001:db8:1::100"), ("wlan0", "2001:db8:2::1", "2001:db8:2::100")]))
    ns = f"mhsbx-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    bus = PrivateBus(REPO / "resources" / "io.github.mhgui.MHGui.Helper1.conf", systemd=False, prefix="mhgui-sbx-")
    helper = log = None
    try:
        bus.start()
        log = open(tmp_path / "helper.log", "wb")  # noqa: SIM115 - closed below
        helper = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "mhgui.helper", "--mip6d-conf", str(conf),
             "--state-dir", str(tmp_path / "state"), "--pidfile", str(tmp_path / "pid")],
            env=bus.env(PYTHONPATH=str(REPO)), cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=log)
        wait_until(lambda: bus.has_owner(service.BUS_NAME) or helper.poll() is not None, "the helper", timeout=30)
        assert helper.poll() is None, (tmp_path / "helper.log").read_text()
        yield bus, conf, service
    finally:
        end_process(helper)
        if log is not None:
            log.close()
        bus.stop()
        subprocess.run(["ip", "netns", "delete", ns])


def _runtime_config(address: str):
    from mhgui.runtime import Runtime

    async def go():
        rt = Runtime(system_bus=address, use_networkmanager=False, vt_port=None)
        await rt.load_config()
        return rt.config

    return asyncio.run(go())


@needs_root
def test_sandboxed_runtime_reads_the_daemons_file_through_the_helper(sandboxed, helper_bus):
    bus, conf, service = helper_bus
    bus.allow(service.ACTION_READ)
    config = _runtime_config(bus.address)
    assert [h.address for h in config.home_addresses] == ["2001:db8:1::100", "2001:db8:2::100"]
    assert config.errors == () and config.notes == ()
    assert [h.origin.split(":")[0] for h in config.home_addresses] == [str(conf)] * 2
    # polkit says no (to GetStatus already: the note names the usual path): no home addresses, a note says why
    bus.allow()
    config = _runtime_config(bus.address)
    assert config.home_addresses == ()
    assert config.notes[0].startswith("/etc/mip6d.conf: not read: inside the sandbox it is read through mhgui's helper")
    assert "polkit denied it" in config.notes[0]


@needs_root
def test_sandboxed_runtime_without_a_helper_says_so(sandboxed, tmp_path):
    pytest.importorskip("dbus")
    pytest.importorskip("dbusmock")
    from privatebus import PrivateBus

    bus = PrivateBus(REPO / "resources" / "io.github.mhgui.MHGui.Helper1.conf", systemd=False, prefix="mhgui-sbx-")
    try:
        bus.start()
        config = _runtime_config(bus.address)
    finally:
        bus.stop()
    assert config.home_addresses == ()
    assert config.notes[0].startswith("/etc/mip6d.conf: not read: inside the sandbox it is read through mhgui's "
                                      "helper, which is not available")


def test_outside_a_sandbox_the_file_is_read_and_the_helper_never_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("MHGUI_FLATPAK_INFO", str(tmp_path / "absent"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    conf = tmp_path / "mip6d.conf"
    conf.write_text(conf_text([("eth0", "2001:db8:1::1", "2001:db8:1::100")]))
    # an address where no bus listens: asking would fail and leave a note
    from mhgui.runtime import Runtime

    async def go():
        rt = Runtime(mip6d_conf=None, system_bus=f"unix:path={tmp_path}/nobus", use_networkmanager=False, vt_port=None)
        rt.mip6d_conf = None
        await rt.load_config()
        return rt.config

    monkeypatch.setattr("mhgui.sources.config.DEFAULT_MIP6D_CONF", str(conf))
    config = asyncio.run(go())
    assert [h.address for h in config.home_addresses] == ["2001:db8:1::100"] and config.notes == ()
