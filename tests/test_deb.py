"""The mhgui-host Debian package (packaging/debian): built, linted, installed, used and purged for real.

scripts/build-deb builds it from the sdist (so the sdist must carry packaging/debian and resources/);
lintian must report no error and no warning; `dpkg -i` installs it on this machine (scripts/test's
CI machine is a throwaway; elsewhere the test skips when a mhgui-host is already installed, and the
package enables no service that it starts: the helper is D-Bus activated, the engine's daemons are
not enabled), then the services start by hand (no systemd in CI) from the ExecStart= lines of the
installed units, in a network namespace of their own, on a private system bus that loads the
installed D-Bus policy, and answer GetStatus; `dpkg --purge` must leave no file behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUILD_DEB = REPO / "scripts" / "build-deb"
PACKAGE = "mhgui-host"
VENV = "/usr/lib/mhgui/venv"
HOST_COMMANDS = {"mhctl", "mhgui-helper", "mhgui-mn", "mhgui-ha"}

_missing = [t for t in ("dpkg-buildpackage", "dh", "lintian", "help2man") if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(bool(_missing), reason=f"needs {', '.join(_missing)} (scripts/test installs them)")


def sh(*cmd: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    run = sh(str(BUILD_DEB), str(out), timeout=900, env=dict(os.environ, PYTHON=sys.executable))
    assert run.returncode == 0, run.stderr[-6000:]
    (path,) = out.glob(f"{PACKAGE}_*.deb")
    return path


@pytest.fixture(scope="module")
def unpacked(deb, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unpacked")
    assert sh("dpkg-deb", "-x", str(deb), str(root)).returncode == 0
    return root


def exec_start(unit_text: str) -> list[str]:
    (line,) = re.findall(r"^ExecStart=(.*)$", unit_text, re.MULTILINE)
    return shlex.split(line)


def as_the_unit_would(unit_text: str, argv: list[str]) -> list[str]:
    """``argv`` under the unit's CapabilityBoundingSet= and NoNewPrivileges= (setpriv: what systemd does
    with them), so that a capability the service needs and its unit drops makes the test fail."""
    (caps,) = re.findall(r"^CapabilityBoundingSet=(.*)$", unit_text, re.MULTILINE)
    keep = ",".join("+" + c.lower().removeprefix("cap_") for c in caps.split())
    nnp = ["--no-new-privs"] if re.search(r"^NoNewPrivileges=(yes|true)$", unit_text, re.MULTILINE) else []
    return ["setpriv", f"--bounding-set=-all,{keep}", *nnp, *argv]


# ------------------------------------------------------------------------------ the package as built

def test_lintian_reports_no_error_and_no_warning(deb):
    run = sh("lintian", "--fail-on", "error,warning", str(deb), timeout=300)
    tags = [line for line in run.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert (run.returncode, tags) == (0, []), run.stdout + run.stderr


def test_package_carries_the_host_side_without_qt_pip_or_byte_code(deb, unpacked):
    listing = sh("dpkg-deb", "-c", str(deb)).stdout
    paths = {line.split(None, 5)[5].split(" -> ")[0].removeprefix(".") for line in listing.splitlines()}
    files = {p for p in paths if not p.endswith("/")}
    site = next(p for p in paths if re.fullmatch(rf"{VENV}/lib/python3\.\d+/site-packages/", p))
    for name in ("mhgui/", "pyroute2/", "dbus_fast/", "cryptography/", "tomli_w/", "inotify_simple.py"):
        assert site + name in paths, name
    for absent in ("PySide6", "shiboken6", "qasync", "/pip/", "/setuptools/", "__pycache__", ".pyc"):
        assert not [p for p in paths if absent in p], absent
    pyver = re.search(r"/python(3\.\d+)/site-packages/$", site).group(1)
    assert {p.rsplit("/", 1)[1] for p in files if p.startswith(f"{VENV}/bin/")} == HOST_COMMANDS | {
        "python", "python3", f"python{pyver}"}
    units = {"mhgui-helper.service", "mhgui-mn.service", "mhgui-ha.service"}
    unit_dir = next(d for d in ("/lib/systemd/system", "/usr/lib/systemd/system") if f"{d}/mhgui-mn.service" in files)
    assert {f"{unit_dir}/{u}" for u in units} <= files
    assert {"/usr/share/dbus-1/system.d/io.github.mhgui.MHGui.Helper1.conf",
            "/usr/share/dbus-1/system.d/io.github.mhgui.MHGui.MobileNode1.conf",
            "/usr/share/dbus-1/system-services/io.github.mhgui.MHGui.Helper1.service",
            "/usr/share/polkit-1/actions/io.github.mhgui.MHGui.policy",
            "/usr/bin/mhctl", "/usr/sbin/mhgui-mn", "/usr/sbin/mhgui-ha"} <= files
    # each command's shebang names the installed environment, never the build's directory
    for cmd in HOST_COMMANDS:
        first = (unpacked / VENV.lstrip("/") / "bin" / cmd).read_text().splitlines()[0]
        assert first == f"#!{VENV}/bin/python", (cmd, first)
    leaked = sh("grep", "-rlF", "/mhgui-deb.", str(unpacked)).stdout.split()
    assert leaked == []
    cfg = (unpacked / VENV.lstrip("/") / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg and "home = /usr/bin" in cfg
    # what each unit and the bus activation file start is in the package
    for unit in units:
        program = exec_start((unpacked / unit_dir.lstrip("/") / unit).read_text())[0]
        assert program in files, (unit, program)
    activation = (unpacked / "usr/share/dbus-1/system-services/io.github.mhgui.MHGui.Helper1.service").read_text()
    (exec_line,) = re.findall(r"^Exec=(.*)$", activation, re.MULTILINE)
    assert shlex.split(exec_line)[0] in files


# ------------------------------------------------------------------------------ installed, used, purged

def _mhgui_paths() -> set[str]:
    """Every path under the places a package writes whose name says mhgui (dpkg's own records too)."""
    found = {os.path.join("/var/lib", n) for n in os.listdir("/var/lib") if "mhgui" in n}  # state directories
    # (the rest of /var/lib may be large: only dpkg's and systemd's records are walked)
    for top in ("/usr", "/lib", "/etc", "/opt", "/var/lib/dpkg", "/var/lib/systemd"):
        if os.path.islink(top):  # merged /usr: /lib is /usr/lib
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                if "mhgui" in name:
                    found.add(os.path.join(dirpath, name))
    return found


def _installed_version() -> str | None:
    run = sh("dpkg-query", "-W", "-f=${Status} ${Version}", PACKAGE)
    return run.stdout if run.returncode == 0 and "installed" in run.stdout.split() else None


def _bus_policy(directory: Path) -> Path:
    """One bus configuration file that includes the installed policy files (PrivateBus includes one file)."""
    conf = directory / "installed-policy.conf"
    conf.write_text("""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <include>/usr/share/dbus-1/system.d/io.github.mhgui.MHGui.Helper1.conf</include>
  <include>/usr/share/dbus-1/system.d/io.github.mhgui.MHGui.MobileNode1.conf</include>
</busconfig>
""")
    return conf


MIP6D_CONF = """\
NodeConfig MN;
Interface "eth1" { MnIfPreference 1; }
Interface "wlan0" { MnIfPreference 2; }
"""

MN_TOML = """\
[node]
identity = "deb-test@example.net"
spi = 300
key_file = "{key}"

[home_agent]
addresses = ["2001:db8:eeee::1"]
address = "2001:db8:1::1"
port = 4191

[[home_address]]
address = "2001:db8:1::100/64"
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="dpkg -i needs root")
@pytest.mark.skipif(shutil.which("dbus-daemon") is None or shutil.which("ip") is None, reason="needs dbus-daemon, ip")
def test_installs_serves_from_installed_paths_and_purges_clean(deb, tmp_path):
    if _installed_version():
        pytest.skip(f"{PACKAGE} {_installed_version()} is installed here: not replacing it for a test")
    pytest.importorskip("dbus")
    pytest.importorskip("dbusmock")
    from privatebus import PrivateBus, end_process, wait_until

    from mhgui.engine import config as engine_config
    from mhgui.helper import service as helper_service
    from mhgui.helper.client import HelperClient

    before = _mhgui_paths()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = sh("dpkg", "-i", str(deb), timeout=300, env=env)
    try:
        assert install.returncode == 0, install.stdout + install.stderr
        files = sh("dpkg", "-L", PACKAGE).stdout.split()
        assert f"{VENV}/pyvenv.cfg" in files
        # postinst compiled the environment; the keys directory is root's alone
        assert list(Path(VENV).glob("lib/python3.*/site-packages/mhgui/__pycache__/*.pyc"))
        assert (Path("/etc/mhgui/keys").stat().st_mode & 0o777) == 0o700
        assert sh("/usr/bin/mhctl", "--version").stdout.strip() == "mhctl 0.1.0"
        for daemon in ("/usr/sbin/mhgui-mn", "/usr/sbin/mhgui-ha"):
            run = sh(daemon, "--help")
            assert run.returncode == 0 and "--config" in run.stdout, run.stderr
        # without the GUI extra, the installed environment has no Qt
        run = sh(f"{VENV}/bin/python", "-c", "import PySide6")
        assert run.returncode == 1 and "No module named 'PySide6'" in run.stderr

        # mhgui-mn --check on a configuration of this test (key: root's, 0600)
        key = tmp_path / "keys" / "mn.key"
        engine_config.write_key_file(str(key), b"\x02" * 32)
        mn_toml = tmp_path / "mn.toml"
        mn_toml.write_text(MN_TOML.format(key=key))
        run = sh("/usr/sbin/mhgui-mn", "--check", "--config", str(mn_toml))
        assert (run.returncode, run.stdout.strip()) == (0, f"{mn_toml}: OK"), run.stderr
        mn_toml.with_name("bad.toml").write_text("[node]\n")
        run = sh("/usr/sbin/mhgui-mn", "--check", "--config", str(mn_toml.with_name("bad.toml")))
        assert run.returncode == 1 and "bad.toml" in run.stderr

        _serve_from_installed_units(tmp_path, mn_toml, PrivateBus, end_process, wait_until, helper_service,
                                    HelperClient)
    finally:
        purge = sh("dpkg", "--purge", PACKAGE, timeout=300, env=env)
    assert purge.returncode == 0, purge.stdout + purge.stderr
    assert _installed_version() is None
    assert sorted(_mhgui_paths() - before) == []


def _serve_from_installed_units(tmp_path, mn_toml, PrivateBus, end_process, wait_until, helper_service,
                                HelperClient) -> None:
    unit_dir = next(Path(d) for d in ("/lib/systemd/system", "/usr/lib/systemd/system")
                    if (Path(d) / "mhgui-helper.service").is_file())
    helper_unit = (unit_dir / "mhgui-helper.service").read_text()
    mn_unit = (unit_dir / "mhgui-mn.service").read_text()
    helper_argv, mn_argv = exec_start(helper_unit), exec_start(mn_unit)
    assert helper_argv[0].startswith(VENV) and mn_argv[0] == "/usr/sbin/mhgui-mn"
    conf = tmp_path / "etc" / "mip6d.conf"
    conf.parent.mkdir()
    conf.write_text(MIP6D_CONF)
    conf.chmod(0o640)
    ns = f"mhdeb-{os.getpid()}"
    assert sh("ip", "netns", "add", ns).returncode == 0
    bus = PrivateBus(_bus_policy(tmp_path), prefix="mhgui-deb-bus-")
    procs: list[subprocess.Popen] = []
    files: list = []
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        bus.start()
        bus.allow(helper_service.ACTION_READ, helper_service.ACTION_CHANGE)

        def start(name: str, argv: list[str]) -> subprocess.Popen:
            log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - closed at the end
            files.append(log)
            p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], env=bus.env(), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=log, cwd="/")
            procs.append(p)
            return p

        # the helper: the unit's command line, with this test's file, state and pidfile
        helper = start("helper", as_the_unit_would(helper_unit, [
            *helper_argv, "--mip6d-conf", str(conf), "--state-dir", str(tmp_path / "state"),
            "--pidfile", str(tmp_path / "mip6d.pid")]))
        wait_until(lambda: bus.has_owner(helper_service.BUS_NAME) or helper.poll() is not None, "the helper's name",
                   timeout=60)
        assert helper.poll() is None, (logs / "helper.log").read_text()

        async def ask_helper() -> tuple[dict, str, str, str]:
            async with HelperClient(bus.address) as client:
                return (await client.status(), await client.read_config(),
                        await client.set_interface_preferences({"eth1": 2, "wlan0": 1}), await client.restart_daemon())

        # within the unit's capabilities: it reads, rewrites mip6d.conf (atomically, with a backup) and
        # asks systemd (the bus's stand-in) to restart mip6d
        status, text, new, job = asyncio.run(ask_helper())
        assert (status["version"], status["config_path"], text) == (helper_service.VERSION, str(conf), MIP6D_CONF)
        assert new == conf.read_text() == MIP6D_CONF.replace("1;", "x;").replace("2;", "1;").replace("x;", "2;")
        assert conf.with_name("mip6d.conf.bak").read_text() == MIP6D_CONF
        assert (conf.stat().st_mode & 0o777, job) == (0o640, "/org/freedesktop/systemd1/job/1")

        # the mobile node: the unit's command line with this test's configuration; GetStatus on its name
        mn = start("mn", as_the_unit_would(mn_unit, [*mn_argv, "--config", str(mn_toml)]))
        name = "io.github.mhgui.MHGui.MobileNode1"
        wait_until(lambda: bus.has_owner(name) or mn.poll() is not None, "the mobile node's name", timeout=60)
        assert mn.poll() is None, (logs / "mn.log").read_text()
        out = sh("dbus-send", f"--bus={bus.address}", "--print-reply=literal", f"--dest={name}",
                 "/io/github/mhgui/MHGui/MobileNode1", f"{name}.GetStatus")
        assert out.returncode == 0, out.stderr
        st = json.loads(out.stdout.strip())
        assert (st["version"], st["identity"], st["config_path"]) == ("0.1.0", "deb-test@example.net", str(mn_toml))
        for who, p in (("helper", helper), ("mn", mn)):
            assert end_process(p) == 0, (logs / f"{who}.log").read_text()
            assert "Traceback" not in (logs / f"{who}.log").read_text()
    finally:
        for p in procs:
            end_process(p)
        for f in files:
            f.close()
        bus.stop()
        sh("ip", "netns", "delete", ns)
