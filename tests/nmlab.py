"""A real NetworkManager in a network namespace on a private system bus, for tests.

Recipe: /work/shared/domain/test-lab.md section 2. Layout::

    netns <ns>    : lo, veth-nm (managed), veth-um (unmanaged via keyfile config)
    netns <peer>  : veth-peer (peer of veth-nm), veth-um-p (peer of veth-um)
    dbus-daemon   : private "system" bus on <base>/system_bus_socket (host netns)
    NetworkManager: in <ns>, own mount namespace with a tmpfs /run, read-only /sys
                    (else it waits for udev and manages nothing) and <base>/state
                    bound on /var/lib/NetworkManager; carrier-wait-timeout=1000 ms.

Namespace names carry the pid so that parallel runs do not collide. Every
process is started with ``Popen`` and ended by its own pid (``terminate``,
``wait``); both namespaces are deleted on teardown.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

NM_NAME = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"

from dbuspolicy import DEFAULT_POLICY  # noqa: E402

BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  {policy}
  <includedir>/usr/share/dbus-1/system.d</includedir>
</busconfig>
"""

NM_CONF = """[main]
plugins=keyfile
no-auto-default=*
auth-polkit=false
dhcp=internal
dns=none
rc-manager=unmanaged
hostname-mode=none
systemd-resolved=false

[connectivity]
enabled=false

[keyfile]
path={base}/connections
unmanaged-devices=interface-name:veth-um

{device_section}"""

#: tests shorten NetworkManager's carrier wait (default 6000 ms); the benchmark that measures it does not
SHORT_CARRIER_WAIT = "[device]\ncarrier-wait-timeout=1000\n"


def missing_requirements() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, mounts, NetworkManager)"
    for tool in ("NetworkManager", "nmcli", "dbus-daemon", "ip", "unshare", "busctl"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"{tool} is not installed"
    if not Path("/var/lib/NetworkManager").is_dir():
        return "/var/lib/NetworkManager does not exist (bind-mount target)"
    return None


class NmLab:
    """Namespaces, a private system bus and a NetworkManager; see the module docstring."""

    def __init__(self, *, default_carrier_wait: bool = False) -> None:
        self.device_section = "" if default_carrier_wait else SHORT_CARRIER_WAIT
        tag = f"{os.getpid()}"
        self.ns = f"mhnm{tag}"
        self.peer_ns = f"mhpeer{tag}"
        self.base = Path(tempfile.mkdtemp(prefix="mhgui-nmlab-"))
        self.socket = self.base / "system_bus_socket"
        self.address = f"unix:path={self.socket}"
        self.bus: subprocess.Popen | None = None
        self.nm: subprocess.Popen | None = None
        self._nm_log = None
        self._namespaces: list[str] = []
        self.nm_binary = shutil.which("NetworkManager") or "/usr/sbin/NetworkManager"

    # ---- shell helpers
    @staticmethod
    def run(*argv: str) -> str:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def ip(self, *args: str, ns: str | None = None) -> str:
        """``ip -n <ns> ARGS`` (default: the NetworkManager namespace)."""
        return self.run("ip", "-n", ns or self.ns, *args)

    def ifindex(self, name: str) -> int:
        """The kernel ifindex of ``name`` in the NetworkManager namespace (from ``ip -o link``)."""
        out = self.ip("-o", "link", "show", "dev", name)
        return int(out.split(":", 1)[0])

    def ifindex_or_none(self, name: str) -> int | None:
        """Like :meth:`ifindex`, None if there is no such link (the source's ``ifindex_of`` in tests)."""
        r = subprocess.run(["ip", "-n", self.ns, "-o", "link", "show", "dev", name],
                           capture_output=True, text=True, timeout=20)
        return int(r.stdout.split(":", 1)[0]) if r.returncode == 0 and r.stdout else None

    def nmcli(self, *args: str) -> str:
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address)
        r = subprocess.run(["nmcli", *args], capture_output=True, text=True, timeout=20, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"nmcli {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def nm_property(self, name: str) -> str | None:
        """``busctl get-property`` on NetworkManager's manager object; None if it does not answer."""
        r = subprocess.run(
            ["busctl", f"--address={self.address}", "get-property", NM_NAME, NM_PATH, NM_NAME, name],
            capture_output=True, text=True, timeout=10,
        )
        return r.stdout.strip() if r.returncode == 0 else None

    def log_tail(self, lines: int = 40) -> str:
        p = self.base / "nm.log"
        return "\n".join(p.read_text(errors="replace").splitlines()[-lines:]) if p.exists() else ""

    # ---- life cycle
    def setup(self) -> "NmLab":
        try:
            for d in ("state", "connections", "conf.d", "sysconf.d"):
                (self.base / d).mkdir()
            (self.base / "bus.conf").write_text(BUS_CONF.format(socket=self.socket, policy=DEFAULT_POLICY))
            (self.base / "NM.conf").write_text(NM_CONF.format(base=self.base, device_section=self.device_section))
            for ns in (self.ns, self.peer_ns):
                self.run("ip", "netns", "add", ns)
                self._namespaces.append(ns)
            for ns in (self.ns, self.peer_ns):
                self.run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0")
            self.run("ip", "link", "add", "veth-nm", "netns", self.ns, "type", "veth",
                     "peer", "name", "veth-peer", "netns", self.peer_ns)
            self.run("ip", "link", "add", "veth-um", "netns", self.ns, "type", "veth",
                     "peer", "name", "veth-um-p", "netns", self.peer_ns)
            self.ip("link", "set", "lo", "up")
            self.ip("link", "set", "veth-peer", "up", ns=self.peer_ns)
            self.ip("link", "set", "veth-um-p", "up", ns=self.peer_ns)
            self._start_bus()
            self.start_nm()
        except BaseException:
            self.teardown()
            raise
        return self

    def _start_bus(self) -> None:
        self.bus = subprocess.Popen(
            ["dbus-daemon", f"--config-file={self.base / 'bus.conf'}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.bus.stdout is not None
        line = self.bus.stdout.readline()  # printed once it listens
        self.bus.stdout.close()
        if not line.strip():
            self.bus.wait(5)
            raise RuntimeError("dbus-daemon did not start")

    def start_nm(self, timeout: float = 20.0) -> float:
        """Start NetworkManager; wait until it owns its name and ``Startup`` is false. Returns seconds taken."""
        assert self.nm is None, "NetworkManager already running"
        b = self.base
        script = (
            "mount -t tmpfs tmpfs /run && mount -o remount,ro /sys && "
            f"mount --bind {b}/state /var/lib/NetworkManager && "
            f"exec env DBUS_SYSTEM_BUS_ADDRESS={self.address} {self.nm_binary} --debug "
            f"--config={b}/NM.conf --config-dir={b}/conf.d --system-config-dir={b}/sysconf.d "
            f"--state-file={b}/state/NM.state --intern-config={b}/state/intern.conf --pid-file=/run/nm.pid"
        )
        t0 = time.monotonic()
        self._nm_log = open(b / "nm.log", "ab")
        # ip netns exec, unshare and sh all exec: the pid is NetworkManager's
        self.nm = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=self._nm_log, stderr=subprocess.STDOUT,
        )
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.nm.poll() is not None:
                raise RuntimeError(f"NetworkManager exited with {self.nm.returncode}:\n{self.log_tail()}")
            if self.nm_property("Startup") == "b false":
                return time.monotonic() - t0
            time.sleep(0.05)
        raise RuntimeError(f"NetworkManager not ready after {timeout} s:\n{self.log_tail()}")

    def stop_nm(self) -> float:
        """SIGTERM NetworkManager and wait for it; returns seconds taken."""
        t0 = time.monotonic()
        nm, self.nm = self.nm, None
        if nm is not None:
            _end(nm, 15)
        if self._nm_log is not None:
            self._nm_log.close()
            self._nm_log = None
        return time.monotonic() - t0

    def teardown(self) -> None:
        self.stop_nm()
        bus, self.bus = self.bus, None
        if bus is not None:
            _end(bus, 5)
        for ns in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        self._namespaces.clear()
        shutil.rmtree(self.base, ignore_errors=True)


def _end(proc: subprocess.Popen, timeout: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
