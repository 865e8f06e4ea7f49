"""A Mobile IPv6 test lab anyone can start: ``mhctl lab up`` (root), or :class:`Lab` from Python.

The network is described and built in :mod:`mhgui.lab.topology`. This module adds
the run-time side: a state directory ``/run/mhgui-lab/{prefix}/`` holding the key,
``ha.toml``, ``mn.toml``, a private system bus (``bus``, reachable from every
namespace because it is a path socket) and the daemons' logs; and a state file
``/run/mhgui-lab/{prefix}.json`` naming the namespaces and process ids, so that
``Lab.down`` can clean up from another process, also after a crash.

The state directory is 0711, not 0700: ``mhctl lab exec --user U`` must reach the
bus socket in it. Nothing in it can be listed, the key sits in ``keys/`` (0700)
as a 0600 file, and the configurations and logs are 0600.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomicfile import atomic_replace
from .topology import (CN_ADDRESS, HA_ADDRESSES, HA_HOME_ADDRESS, HOA, HOME_PREFIX, IDENTITY, PORT, SPI,
                       UPLINKS, LabError, Topology, Uplink, blackhole, build, counter, cut, delete_namespaces,
                       lab_namespaces, restore, uplink_state, validate_prefix)

__all__ = ["CN_ADDRESS", "DEFAULT_PREFIX", "HA_ADDRESSES", "HA_HOME_ADDRESS", "HOA", "HOME_PREFIX", "IDENTITY",
           "MN_BUS_NAME", "PORT", "RUN_DIR", "SPI", "UPLINKS", "Lab", "LabDaemonError", "LabError", "LabInfo",
           "Topology", "Uplink"]

RUN_DIR = Path("/run/mhgui-lab")
DEFAULT_PREFIX = "mhlab"
MN_BUS_NAME = "io.github.mhgui.MHGui.MobileNode1"
REGISTRATION_TIMEOUT = 10.0


class LabDaemonError(LabError):
    """A lab daemon died or did not register in time; the lab is left up for ``Lab.down``."""


HA_TOML = """[home_agent]
listen = ["::"]
port = {port}
address = "{ha_home}"
home_prefix = "{home_prefix}"
tun = "mhha0"
max_lifetime = 600
skew = 7
state_dir = "{state}/ha-state"
home_link = ""
log_rate_s = 60
[[node]]
identity = "{identity}"
home_addresses = ["{hoa}"]
[[node.key]]
spi = {spi}
file = "{state}/keys/mn1.key"
"""

MN_TOML = """[node]
identity = "{identity}"
spi = {spi}
key_file = "{state}/keys/mn1.key"
[home_agent]
addresses = [{ha_addresses}]
address = "{ha_home}"
port = {port}
[[home_address]]
address = "{hoa}/64"
preference = ["up0", "up1"]
backup = []
never = []
default_route = true
[probe]
interval_ms = 250
misses = 3
metered_interval_ms = 5000
keepalive_s = 20
[tunnel]
name = "mhmn0"
table = 4191
mtu = 0
lifetime = 600
multiple_care_of = {mcoa}
"""


def _config_values(state: Path) -> dict:
    return {"port": PORT, "ha_home": HA_HOME_ADDRESS, "home_prefix": HOME_PREFIX, "state": state,
            "identity": IDENTITY, "hoa": HOA, "spi": SPI, "ha_addresses": ", ".join(f'"{a}"' for a in HA_ADDRESSES)}


# ---- processes: the bus and the daemons, started detached (own session), ended by pid

#: Debian's system-bus default policy (/usr/share/dbus-1/system.conf), verbatim
DEFAULT_POLICY = """
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Containers1"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
"""

BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={state}/bus</listen>
  <auth>EXTERNAL</auth>
{policy}
  <includedir>{state}/system.d</includedir>
</busconfig>
"""

#: processes this Python process started, kept so that they are reaped when they end
_CHILDREN: dict[int, subprocess.Popen] = {}


def _policy_files() -> list[Path]:
    """The project's D-Bus policy files: ``resources/*.conf`` of the source tree and of the package."""
    pkg = Path(__file__).resolve().parent.parent
    found: dict[str, Path] = {}
    for d in (pkg / "resources", pkg.parent / "resources"):
        for f in sorted(d.glob("*.conf")) if d.is_dir() else ():
            found.setdefault(f.name, f)
    return list(found.values())


def _write_bus_config(state: Path) -> None:
    system_d = state / "system.d"
    system_d.mkdir(mode=0o755)
    for f in _policy_files():
        shutil.copyfile(f, system_d / f.name)
    from .authority import POLICY_CONF
    (system_d / "lab-polkit.conf").write_text(POLICY_CONF)
    text = BUS_CONF.format(state=state, policy=DEFAULT_POLICY.rstrip("\n")).encode()
    atomic_replace(str(state / "bus.conf"), lambda f: f.write(text), mode=0o600)


def _spawn(argv: list[str], log: Path, **popen_kwargs) -> subprocess.Popen:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True,
                             cwd=log.parent, **popen_kwargs)
    except OSError as e:
        raise LabError(f"cannot start `{' '.join(argv)}`: {e}") from None
    finally:
        os.close(fd)
    _CHILDREN[p.pid] = p
    return p


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").rstrip("\n").splitlines()[-lines:]
    except OSError:
        return f"({path} cannot be read)"
    return "\n".join(f"  | {t}" for t in text) if text else f"({path} is empty)"


def _start_bus(state: Path) -> int:
    """Start the lab's dbus-daemon; its pid once the socket accepts connections."""
    r, w = os.pipe()
    try:
        p = _spawn(["dbus-daemon", f"--config-file={state}/bus.conf", "--nofork", f"--print-address={w}"],
                   state / "bus.log", pass_fds=(w,))
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        line = f.readline() if select.select([f], [], [], 5.0)[0] else b""
    if not line.startswith(b"unix:"):
        _stop(state)
        raise LabError(f"the lab's dbus-daemon did not start; {state}/bus.log says:\n{_tail(state / 'bus.log')}")
    return p.pid


def _start_authority(state: Path, bus_address: str, allow_uids: tuple[int, ...]) -> int:
    """Start the lab's polkit authority (:mod:`mhgui.lab.authority`); its pid once it owns polkit's name."""
    argv = [sys.executable, "-m", "mhgui.lab.authority", "--bus", bus_address, "--config", f"{state}/authority.conf"]
    for uid in allow_uids:
        argv += ["--allow-uid", str(int(uid))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")) if p))
    pid = _spawn(argv, state / "authority.log", env=env).pid
    deadline = time.monotonic() + 10.0
    while not _name_owned(bus_address, "org.freedesktop.PolicyKit1"):
        if not _alive(pid) or time.monotonic() > deadline:
            raise LabError(f"the lab's polkit authority did not start; {state}/authority.log says:\n"
                           f"{_tail(state / 'authority.log')}")
        time.sleep(0.05)
    return pid


def _daemon_command(exe: str, module: str) -> list[str]:
    """The daemon beside this Python (a venv's bin/), else on PATH, else ``python -m module``."""
    beside = Path(sys.executable).parent / exe
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which(exe)
    return [found] if found else [sys.executable, "-m", module]


def _start_daemon(ns: str, cmd: list[str], config: Path, log: Path, bus_address: str) -> int:
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus_address)
    if cmd[1:2] == ["-m"]:  # make sure this very mhgui is importable
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return _spawn(["ip", "netns", "exec", ns, *cmd, "--config", str(config)], log, env=env).pid


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as ended)."""
    p = _CHILDREN.get(pid)
    if p is not None:
        if p.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _lab_pids(state: Path) -> list[int]:
    """Processes of the lab in ``state``: the bus with its config file, the daemons with ``--config``
    naming one of its config files (recognised by their command line, so no stranger is killed)."""
    bus = f"--config-file={state}/bus.conf"
    configs = {f"{state}/ha.toml", f"{state}/mn.toml", f"{state}/authority.conf"}
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = Path(entry.path, "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if bus in args or any(a == "--config" and b in configs for a, b in zip(args, args[1:])):
            out.append(int(entry.name))
    return out


def _stop(state: Path) -> list[int]:
    """SIGTERM the lab's processes, SIGKILL those still there after 3 s; the pids found."""
    pids = [p for p in _lab_pids(state) if _alive(p)]
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
        left = [p for p in pids if _alive(p)]
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
        deadline = time.monotonic() + grace
        while any(_alive(p) for p in left) and time.monotonic() < deadline:
            time.sleep(0.02)
    return pids


def _name_owned(bus_address: str, name: str) -> bool:
    try:
        p = subprocess.run(["dbus-send", f"--bus={bus_address}", "--print-reply", "--dest=org.freedesktop.DBus",
                            "/", "org.freedesktop.DBus.NameHasOwner", f"string:{name}"],
                           capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0 and "boolean true" in p.stdout


def _wait_registered(bus_address: str, name: str, pids: dict[str, int], state: Path, timeout: float) -> None:
    """Until the MN daemon owns ``name`` on the lab bus; LabDaemonError (with log tails) if a daemon
    exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not _name_owned(bus_address, name):
        dead = [role for role in ("mn", "ha") if not _alive(pids[role])]
        if dead or time.monotonic() > deadline:
            names = {"mn": "mobile node", "ha": "home agent"}
            what = (f"the {' and the '.join(names[r] for r in dead)} daemon{'s' * (len(dead) > 1)} exited" if dead
                    else f"the mobile node did not register within {timeout:g} s (no owner of {name})")
            if not any((state / "system.d").glob(f"{name}*.conf")):
                what += f"; note: no D-Bus policy file {name}.conf was found, so the bus refuses that name"
            logs = "\n".join(f"{state}/{r}.log:\n{_tail(state / f'{r}.log')}" for r in ("mn", "ha"))
            raise LabDaemonError(f"{what}\n{logs}")
        time.sleep(0.1)


@dataclass
class LabInfo:
    """A lab that is up: what ``mhctl lab up --json`` prints and the state file records."""
    prefix: str
    state_dir: str
    bus_address: str
    pids: dict[str, int] = field(default_factory=dict)  # "bus", "ha", "mn"
    daemons: bool = True

    def netns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    @property
    def namespaces(self) -> list[str]:
        return Topology(self.prefix).namespaces

    @property
    def uplinks(self) -> tuple[Uplink, ...]:
        return UPLINKS

    def path(self, name: str) -> Path:
        return Path(self.state_dir) / name

    def as_dict(self) -> dict:
        s = self.state_dir
        return {**asdict(self), "hoa": HOA, "home_prefix": HOME_PREFIX, "ha_home_address": HA_HOME_ADDRESS,
                "ha_addresses": list(HA_ADDRESSES), "ha_port": PORT, "identity": IDENTITY, "spi": SPI,
                "cn_address": CN_ADDRESS, "mn_netns": self.netns("mn"), "ha_netns": self.netns("ha"),
                "cn_netns": self.netns("cn"), "namespaces": self.namespaces,
                "uplinks": [u.as_dict(self.prefix) for u in UPLINKS],
                "paths": {"ha_config": f"{s}/ha.toml", "mn_config": f"{s}/mn.toml", "key": f"{s}/keys/mn1.key",
                          "bus_config": f"{s}/bus.conf", "ha_log": f"{s}/ha.log", "mn_log": f"{s}/mn.log",
                          "bus_log": f"{s}/bus.log"}}

    @classmethod
    def from_dict(cls, d: dict) -> LabInfo:
        return cls(prefix=validate_prefix(d["prefix"]), state_dir=str(d["state_dir"]),
                   bus_address=str(d["bus_address"]), daemons=bool(d.get("daemons", True)),
                   pids={str(k): int(v) for k, v in dict(d.get("pids", {})).items()})


class Lab:
    """The lab API; every method takes the lab's prefix (namespaces ``{prefix}-mn`` ...)."""

    run_dir = RUN_DIR

    @classmethod
    def state_dir(cls, prefix: str) -> Path:
        return cls.run_dir / validate_prefix(prefix)

    @classmethod
    def state_file(cls, prefix: str) -> Path:
        return cls.run_dir / f"{validate_prefix(prefix)}.json"

    @classmethod
    def bus_address(cls, prefix: str) -> str:
        return f"unix:path={cls.state_dir(prefix)}/bus"

    @staticmethod
    def _require_root() -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root (it creates network namespaces): run it with sudo")

    @classmethod
    def load(cls, prefix: str) -> LabInfo | None:
        """The recorded state of lab ``prefix``; None when there is none or it cannot be read."""
        try:
            return LabInfo.from_dict(json.loads(cls.state_file(prefix).read_text()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    @classmethod
    def _save(cls, info: LabInfo) -> None:
        data = json.dumps(info.as_dict(), indent=2).encode() + b"\n"
        atomic_replace(str(cls.state_file(info.prefix)), lambda f: f.write(data), mode=0o644)

    @classmethod
    def is_up(cls, prefix: str) -> bool:
        return cls.state_file(prefix).exists() or bool(lab_namespaces(prefix))

    # ---- up / down
    @classmethod
    def up(cls, prefix: str = DEFAULT_PREFIX, daemons: bool = True, allow_uids: tuple[int, ...] = (),
           mcoa: bool = False) -> LabInfo:
        """Build the lab, start its bus and polkit authority (and the daemons, waiting for the MN to own its
        bus name). ``allow_uids``: users the lab's authority allows mhgui's actions (root always is);
        ``mcoa``: the mobile node registers both uplinks at once (``multiple_care_of``, RFC 5648), so that
        single connections can be moved, bicast and shared.

        LabError when it cannot start (everything is cleaned up); LabDaemonError when a daemon fails
        (the lab stays up: call :meth:`down`)."""
        validate_prefix(prefix)
        cls._require_root()
        for tool in ("ip", "nft", "sysctl", "dbus-daemon", "dbus-send"):
            if shutil.which(tool) is None:
                raise LabError(f"`{tool}` is not installed; the lab needs iproute2, nftables, procps and dbus")
        if cls.is_up(prefix):
            raise LabError(f"a lab with prefix {prefix!r} is already up (stop it with `mhctl lab down --prefix "
                           f"{prefix}`, or pick another --prefix)")
        state = cls.state_dir(prefix)
        info = LabInfo(prefix, str(state), cls.bus_address(prefix), daemons=daemons)
        try:
            cls.run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
            shutil.rmtree(state, ignore_errors=True)  # a leftover of a lab that never wrote its state file
            state.mkdir(mode=0o711)
            os.chmod(state, 0o711)
            cls._save(info)
            build(Topology(prefix))
            cls._write_files(state, mcoa)
            info.pids["bus"] = _start_bus(state)
            info.pids["authority"] = _start_authority(state, info.bus_address, allow_uids)
            cls._save(info)
        except BaseException:
            cls.down(prefix)
            raise
        if daemons:
            cls._start_daemons(info)
        return info

    @classmethod
    def _write_files(cls, state: Path, mcoa: bool = False) -> None:
        keys = state / "keys"
        keys.mkdir(mode=0o700)
        key = (secrets.token_hex(32) + "\n").encode()
        atomic_replace(str(keys / "mn1.key"), lambda f: f.write(key), mode=0o600)
        (state / "ha-state").mkdir(mode=0o700)
        values = dict(_config_values(state), mcoa="true" if mcoa else "false")
        for name, template in (("ha.toml", HA_TOML), ("mn.toml", MN_TOML)):
            text = template.format(**values).encode()
            atomic_replace(str(state / name), lambda f, t=text: f.write(t), mode=0o600)
        _write_bus_config(state)

    @classmethod
    def _start_daemons(cls, info: LabInfo) -> None:
        state = Path(info.state_dir)
        for role, exe, module in (("ha", "mhgui-ha", "mhgui.engine.had"), ("mn", "mhgui-mn", "mhgui.engine.mnd")):
            info.pids[role] = _start_daemon(info.netns(role), _daemon_command(exe, module),
                                            state / f"{role}.toml", state / f"{role}.log", info.bus_address)
            cls._save(info)
        _wait_registered(info.bus_address, MN_BUS_NAME, info.pids, state, REGISTRATION_TIMEOUT)

    @classmethod
    def stop_daemons(cls, prefix: str = DEFAULT_PREFIX) -> None:
        """Stop the lab's mobile-node and home-agent daemons (SIGTERM: the MN deregisters), keep the rest."""
        info = cls.load(prefix)
        if info is None:
            raise LabError(f"lab {prefix} is not up")
        pids = [info.pids.pop(r) for r in ("mn", "ha") if info.pids.get(r)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in pids:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        cls._save(info)

    @classmethod
    def start_daemons(cls, prefix: str = DEFAULT_PREFIX) -> LabInfo:
        """Start the daemons of a lab that is up without them (after :meth:`stop_daemons` or ``--no-daemons``)."""
        info = cls.load(prefix)
        if info is None:
            raise LabError(f"lab {prefix} is not up")
        cls._start_daemons(info)
        return info

    @classmethod
    def down(cls, prefix: str = DEFAULT_PREFIX) -> bool:
        """Stop the lab's processes, delete its namespaces, state directory and state file.

        Works without (or with a corrupt) state file; True when something was there."""
        validate_prefix(prefix)
        cls._require_root()
        state = cls.state_dir(prefix)
        found = bool(_stop(state))
        found |= bool(delete_namespaces(prefix))
        if state.exists():
            shutil.rmtree(state, ignore_errors=True)
            found = True
        try:
            cls.state_file(prefix).unlink()
            found = True
        except FileNotFoundError:
            pass
        return found

    # ---- changing the uplinks
    @classmethod
    def cut(cls, prefix: str, uplink: str) -> None:
        cls._require_root()
        cut(prefix, uplink)

    @classmethod
    def restore(cls, prefix: str, uplink: str) -> None:
        cls._require_root()
        restore(prefix, uplink)

    @classmethod
    def blackhole(cls, prefix: str, uplink: str) -> None:
        cls._require_root()
        blackhole(prefix, uplink)

    @classmethod
    def counter(cls, prefix: str, role: str, name: str) -> int:
        """Packets counted by nft counter ``name`` ("home_ingress", "blackhole") in router ``role``."""
        return counter(prefix, role, name)

    # ---- running things in the mobile node
    @classmethod
    def mn_command(cls, prefix: str, argv: list[str], user: str | None = None) -> tuple[list[str], dict]:
        """(argv, env) running ``argv`` in ``{prefix}-mn`` on the lab's bus, as ``user`` if given, with this
        Python's ``bin/`` first on PATH (so ``mhctl`` is the one that started the lab)."""
        ns = f"{validate_prefix(prefix)}-mn"
        if not argv:
            raise LabError("no command given (mhctl lab exec -- COMMAND...)")
        if ns not in lab_namespaces(prefix):
            raise LabError(f"lab {prefix!r} is not up (no namespace {ns})")
        cmd = ["ip", "netns", "exec", ns]
        if user is not None:
            try:
                pw = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
            except KeyError:
                raise LabError(f"no such user: {user}") from None
            cmd += ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
        # this mhgui's own commands first on PATH: `lab exec -- mhctl bindings` runs the mhctl beside this
        # Python (a venv's bin/), also under sudo, whose secure_path leaves it out
        path = os.pathsep.join(p for p in (str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)) if p)
        # the app in the lab asks "is this node configured for the engine?" of the lab's mn.toml (its engine
        # runs with it), not of the host's /etc/mhgui/mn.toml (mhgui.engine.paths.mn_config_path)
        # MHGUI_LAB_PREFIX: which lab this is (its daemons are restarted by `mhctl lab restart`, not systemctl:
        # mhgui.core.action_commands)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=cls.bus_address(prefix), PATH=path,
                   MHGUI_MN_CONFIG=str(cls.state_dir(prefix) / "mn.toml"), MHGUI_LAB_PREFIX=prefix)
        return cmd + list(argv), env

    @classmethod
    def exec_in_mn(cls, prefix: str, argv: list[str], user: str | None = None,
                   **run_kwargs) -> subprocess.CompletedProcess:
        """Run ``argv`` in the mobile node's namespace (see :meth:`mn_command`); ``run_kwargs`` go to
        ``subprocess.run``."""
        cls._require_root()
        cmd, env = cls.mn_command(prefix, argv, user)
        env.update(run_kwargs.pop("env", None) or {})
        return subprocess.run(cmd, env=env, **run_kwargs)

    # ---- status
    @classmethod
    def status(cls, prefix: str = DEFAULT_PREFIX) -> dict:
        """What is up: namespaces present and missing, processes alive, the MN's bus name, uplinks."""
        validate_prefix(prefix)
        info = cls.load(prefix)
        present = lab_namespaces(prefix)
        expected = Topology(prefix).namespaces
        out: dict = {"prefix": prefix, "up": bool(info or present), "state_file": info is not None,
                     "namespaces": present, "missing_namespaces": [n for n in expected if n not in present],
                     "processes": {}, "mn_registered": None, "uplinks": []}
        if info:
            out.update({k: v for k, v in info.as_dict().items() if k not in out and k != "pids"})
            ours = set(_lab_pids(Path(info.state_dir)))  # a recorded pid now used by a stranger is not alive
            out["processes"] = {name: {"pid": pid, "alive": pid in ours and _alive(pid)}
                                for name, pid in info.pids.items()}
            if out["processes"].get("bus", {}).get("alive"):
                out["mn_registered"] = _name_owned(info.bus_address, MN_BUS_NAME)
        for u in UPLINKS:
            if f"{prefix}-{u.router_role}" in present and os.geteuid() == 0:
                out["uplinks"].append({**u.as_dict(prefix), **uplink_state(prefix, u.name)})
        return out
