"""scripts/install-helper into a staging directory that a real dbus-daemon then loads; uninstall is exact."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dbuspolicy import DEFAULT_POLICY

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "install-helper"


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="needs dbus-daemon")
def test_staged_install_is_loaded_by_dbus_and_uninstall_removes_it(tmp_path):
    dest = tmp_path / "stage"
    env = dict(os.environ, DESTDIR=str(dest))
    subprocess.run([str(SCRIPT), "--python", sys.executable, "--mip6d-conf", "/etc/mip6d.conf"],
                   check=True, env=env, cwd=REPO, capture_output=True)
    files = tree(dest)
    assert {"usr/share/dbus-1/system.d/io.github.mhgui.MHGui.Helper1.conf",
            "usr/share/dbus-1/system-services/io.github.mhgui.MHGui.Helper1.service",
            "usr/share/polkit-1/actions/io.github.mhgui.MHGui.policy",
            "usr/lib/systemd/system/mhgui-helper.service"} <= files
    unit = (dest / "usr/lib/systemd/system/mhgui-helper.service").read_text()
    assert f"ExecStart={sys.executable} -m mhgui.helper --mip6d-conf /etc/mip6d.conf" in unit
    # a real system-type dbus-daemon loads the staged policy and activation directory
    run = Path(tempfile.mkdtemp(prefix="mhgui-install-"))
    try:
        conf = run / "bus.conf"
        conf.write_text(f"""<busconfig><type>system</type><auth>EXTERNAL</auth>
<listen>unix:path={run}/sock</listen>
{DEFAULT_POLICY}
<servicedir>{dest}/usr/share/dbus-1/system-services</servicedir>
<includedir>{dest}/usr/share/dbus-1/system.d</includedir></busconfig>""")
        bus = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--nofork", "--print-address=1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            address = bus.stdout.readline().strip()
            assert address, bus.stderr.read()
            out = subprocess.run(["dbus-send", f"--bus={address}", "--print-reply", "--dest=org.freedesktop.DBus",
                                  "/org/freedesktop/DBus", "org.freedesktop.DBus.ListActivatableNames"],
                                 capture_output=True, text=True, timeout=10)
            assert "io.github.mhgui.MHGui.Helper1" in out.stdout, out.stderr
        finally:
            bus.terminate()
            bus.wait(5)
            bus.stdout.close()
            bus.stderr.close()
    finally:
        shutil.rmtree(run, ignore_errors=True)
    subprocess.run([str(SCRIPT), "--uninstall"], check=True, env=env, cwd=REPO, capture_output=True)
    assert tree(dest) == set()


# --------------------------------------------------------------------------- scripts/install-engine
ENGINE_SCRIPT = REPO / "scripts" / "install-engine"
POLKIT = "usr/share/polkit-1/actions/io.github.mhgui.MHGui.policy"
ENGINE_FILES = {"usr/lib/systemd/system/mhgui-mn.service", "usr/lib/systemd/system/mhgui-ha.service",
                "usr/share/dbus-1/system.d/io.github.mhgui.MHGui.MobileNode1.conf", POLKIT}
HELPER_FILES = {"usr/share/dbus-1/system.d/io.github.mhgui.MHGui.Helper1.conf",
                "usr/share/dbus-1/system-services/io.github.mhgui.MHGui.Helper1.service",
                "usr/lib/systemd/system/mhgui-helper.service", POLKIT}


def _script(script: Path, dest: Path, *args: str) -> str:
    env = dict(os.environ, DESTDIR=str(dest))
    done = subprocess.run([str(script), *args], env=env, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _installed(dest: Path) -> set[str]:
    """Installed files, without the installers' own bookkeeping under /opt."""
    return {f for f in tree(dest) if not f.startswith("opt/")}


def _can_own(dest: Path, name: str) -> bool:
    """Whether this process may own ``name`` on a system-type dbus-daemon that loads the staged policy."""
    pytest.importorskip("dbus")
    import dbus.bus
    import dbus.exceptions
    run = Path(tempfile.mkdtemp(prefix="mhgui-install-"))
    try:
        (run / "bus.conf").write_text(f"""<busconfig><type>system</type><auth>EXTERNAL</auth>
<listen>unix:path={run}/sock</listen>
{DEFAULT_POLICY}
<includedir>{dest}/usr/share/dbus-1/system.d</includedir></busconfig>""")
        bus = subprocess.Popen(["dbus-daemon", f"--config-file={run / 'bus.conf'}", "--nofork", "--print-address=1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            address = bus.stdout.readline().strip()
            assert address, bus.stderr.read()
            conn = dbus.bus.BusConnection(address)
            try:
                conn.request_name(name, dbus.bus.NAME_FLAG_DO_NOT_QUEUE)
                return True
            except dbus.exceptions.DBusException as e:
                assert "AccessDenied" in e.get_dbus_name(), e
                return False
            finally:
                conn.close()
        finally:
            bus.terminate()
            bus.wait(5)
            bus.stdout.close()
            bus.stderr.close()
    finally:
        shutil.rmtree(run, ignore_errors=True)


@pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="needs dbus-daemon")
@pytest.mark.skipif(os.geteuid() != 0, reason="only root may own the engine's name (the policy under test)")
def test_engine_staged_install_is_loaded_by_dbus_and_uninstall_removes_it(tmp_path):
    dest = tmp_path / "stage"
    out = _script(ENGINE_SCRIPT, dest, "--python", sys.executable)
    assert _installed(dest) == ENGINE_FILES
    mn = (dest / "usr/lib/systemd/system/mhgui-mn.service").read_text()
    ha = (dest / "usr/lib/systemd/system/mhgui-ha.service").read_text()
    assert f"\nExecStart={sys.executable} -m mhgui.engine.mnd --config /etc/mhgui/mn.toml\n" in mn
    assert f"\nExecStart={sys.executable} -m mhgui.engine.had --config /etc/mhgui/ha.toml\n" in ha
    assert mn.count("ExecStart=") == ha.count("ExecStart=") == 1
    assert "BusName=io.github.mhgui.MHGui.MobileNode1" in mn  # the rest of the unit is the repository's
    # the key directory: root only
    keys = dest / "etc/mhgui/keys"
    assert keys.is_dir() and (keys.stat().st_mode & 0o777) == 0o700
    # the services are not enabled: they need a configuration first, and the output says so
    assert "NOT enabled" in out and "/etc/mhgui/mn.toml" in out and "systemctl enable --now mhgui-mn" in out
    assert not list(dest.rglob("*.wants"))
    # a real system-type dbus-daemon loads the staged policy: root may own the engine's name
    assert _can_own(dest, "io.github.mhgui.MHGui.MobileNode1")
    assert not _can_own(tmp_path / "empty", "io.github.mhgui.MHGui.MobileNode1")  # (without it: refused)
    out = _script(ENGINE_SCRIPT, dest, "--uninstall")
    assert "removed mhgui's mobility engine" in out
    assert tree(dest) == set()
    assert not (dest / "etc/mhgui").exists() and not (dest / "opt/mhgui-engine").exists()


def test_engine_uninstall_keeps_configuration_and_keys(tmp_path):
    dest = tmp_path / "stage"
    keys = dest / "etc/mhgui/keys"
    keys.mkdir(parents=True, mode=0o755)
    keys.chmod(0o755)
    (dest / "etc/mhgui/mn.toml").write_text("[node]\n")
    _script(ENGINE_SCRIPT, dest, "--python", sys.executable, "--prefix", "/opt/elsewhere")
    assert (keys.stat().st_mode & 0o777) == 0o700  # made private even when it was there
    assert (dest / "opt/elsewhere/installed-files").is_file()
    (keys / "mn1.key").write_text("00" * 32 + "\n")
    out = _script(ENGINE_SCRIPT, dest, "--uninstall", "--prefix", "/opt/elsewhere")
    assert tree(dest) == {"etc/mhgui/mn.toml", "etc/mhgui/keys/mn1.key"}
    assert "kept" not in out  # those directories were there before: not ours to remove
    # installed into an empty stage, then a key written: the directory stays, and the output says why
    dest2 = tmp_path / "stage2"
    _script(ENGINE_SCRIPT, dest2, "--python", sys.executable)
    (dest2 / "etc/mhgui/keys/mn1.key").write_text("00" * 32 + "\n")
    out = _script(ENGINE_SCRIPT, dest2, "--uninstall")
    assert tree(dest2) == {"etc/mhgui/keys/mn1.key"}
    assert "kept /etc/mhgui/keys: it is not empty" in out


@pytest.mark.parametrize("first", ["helper", "engine"])
def test_helper_and_engine_share_the_polkit_actions(tmp_path, first):
    dest = tmp_path / "stage"
    scripts = {"helper": SCRIPT, "engine": ENGINE_SCRIPT}
    _script(SCRIPT, dest, "--python", sys.executable)
    _script(ENGINE_SCRIPT, dest, "--python", sys.executable)
    assert _installed(dest) == HELPER_FILES | ENGINE_FILES
    other = "engine" if first == "helper" else "helper"
    out = _script(scripts[first], dest, "--uninstall")
    assert f"kept /{POLKIT}" in out
    assert _installed(dest) == (ENGINE_FILES if other == "engine" else HELPER_FILES)
    _script(scripts[other], dest, "--uninstall")
    assert tree(dest) == set()
