"""A private system bus for tests: dbus-daemon (``<type>system</type>``, Debian's default policy, the
service's real policy file) with python-dbusmock's polkitd and, optionally, a systemd stand-in
(helper-dbus.md). Shared by the helper's and the engine's tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dbus
import dbus.bus

from dbuspolicy import DEFAULT_POLICY

REPO = Path(__file__).resolve().parent.parent
TEST_SYSTEM_D = REPO / "tests" / "dbus" / "system.d"
MOCK_IFACE = "org.freedesktop.DBus.Mock"

__all__ = ["MOCK_IFACE", "PrivateBus", "TEST_SYSTEM_D", "end_process", "wait_until"]


def wait_until(pred, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def end_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> int | None:
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class PrivateBus:
    """dbus-daemon (system type, ``policy_conf`` included) + optional polkit and systemd mocks."""

    def __init__(self, policy_conf: Path, *, polkit: bool = True, systemd: bool = True,
                 prefix: str = "mhgui-bus-") -> None:
        self.policy_conf = policy_conf
        # helper-dbus.md pitfall 1: every directory above the socket must be searchable by nobody
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.dir.chmod(0o755)
        self.address = ""
        self.with_polkit = polkit
        self.with_systemd = systemd
        self.bus: subprocess.Popen | None = None
        self.mocks: list[subprocess.Popen] = []
        self.conn = None
        self._logs: list = []

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        env.update(DBUS_SYSTEM_BUS_ADDRESS=self.address, **extra)
        return env

    def _log(self, name: str):
        f = open(self.dir / name, "wb")  # noqa: SIM115 (closed in stop())
        self._logs.append(f)
        return f

    def start(self) -> "PrivateBus":
        sock = self.dir / "system_bus_socket"
        (self.dir / "bus.conf").write_text(
            f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path={sock}</listen>
  {DEFAULT_POLICY}
  <include>{self.policy_conf}</include>
  <includedir>{TEST_SYSTEM_D}</includedir>
</busconfig>
"""
        )
        self.bus = subprocess.Popen(
            ["dbus-daemon", f"--config-file={self.dir / 'bus.conf'}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=self._log("dbus-daemon.log"), text=True,
        )
        assert self.bus.stdout is not None
        self.address = self.bus.stdout.readline().strip()
        self.bus.stdout.close()
        assert self.address, "dbus-daemon did not start: " + (self.dir / "dbus-daemon.log").read_text()
        if self.with_polkit:
            self.mocks.append(subprocess.Popen(
                [sys.executable, "-m", "dbusmock", "--system", "-t", "polkitd"],
                env=self.env(), stdout=subprocess.DEVNULL, stderr=self._log("polkit.log")))
        if self.with_systemd:
            self.mocks.append(subprocess.Popen(
                [sys.executable, "-m", "dbusmock", "--system", "org.freedesktop.systemd1",
                 "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"],
                env=self.env(), stdout=subprocess.DEVNULL, stderr=self._log("systemd.log")))
        self.conn = dbus.bus.BusConnection(self.address)
        for name, on in (("org.freedesktop.PolicyKit1", self.with_polkit), ("org.freedesktop.systemd1", self.with_systemd)):
            if on:
                wait_until(lambda name=name: self.conn.name_has_owner(name), f"{name} on the test bus")
        if self.with_systemd:
            self.systemd.AddMethod(
                "org.freedesktop.systemd1.Manager", "RestartUnit", "ss", "o",
                "ret = '/org/freedesktop/systemd1/job/1'", dbus_interface=MOCK_IFACE)
        return self

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        for m in self.mocks:
            end_process(m)
        self.mocks.clear()
        end_process(self.bus)
        self.bus = None
        for f in self._logs:
            f.close()
        self._logs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ----------------------------------------------------------------- mocks

    @property
    def polkit(self):
        return self.conn.get_object("org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority")

    @property
    def systemd(self):
        return self.conn.get_object("org.freedesktop.systemd1", "/org/freedesktop/systemd1")

    def allow(self, *actions: str) -> None:
        self.polkit.SetAllowed(list(actions), signature="as", dbus_interface=MOCK_IFACE)

    def reset(self) -> None:
        if self.with_polkit:
            self.allow()
            self.polkit.AllowUnknown(False, dbus_interface=MOCK_IFACE)
            self.polkit.ClearCalls(dbus_interface=MOCK_IFACE)
        if self.with_systemd:
            self.systemd.ClearCalls(dbus_interface=MOCK_IFACE)

    def auth_calls(self) -> list[tuple]:
        """[(subject kind, subject name, action, flags)] of every CheckAuthorization so far."""
        out = []
        for _ts, args in self.polkit.GetMethodCalls("CheckAuthorization", dbus_interface=MOCK_IFACE):
            kind, details = args[0]
            out.append((str(kind), str(details["name"]), str(args[1]), int(args[3])))
        return out

    def restart_calls(self) -> list[tuple[str, ...]]:
        return [tuple(str(a) for a in args)
                for _ts, args in self.systemd.GetMethodCalls("RestartUnit", dbus_interface=MOCK_IFACE)]

    def has_owner(self, name: str) -> bool:
        return bool(self.conn.name_has_owner(name))
