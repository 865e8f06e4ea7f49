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
