"""Tests of the privileged helper (mhgui.helper.service) and its client (mhgui.helper.client).

Recipe: /work/shared/domain/helper-dbus.md. Each stack is a private dbus-daemon of
``<type>system</type>`` with the default policy of Debian's system.conf, the REAL
``resources/io.github.mhgui.MHGui.Helper1.conf`` and ``tests/dbus/system.d/test-mocks.conf``;
polkit is python-dbusmock's ``polkitd`` template (decides by action id); systemd is a
bare dbusmock object with ``RestartUnit`` added (no PyGObject needed). The helper runs
as its own root process (``python -m mhgui.helper``); unprivileged callers are
``dbus-send`` run through ``setpriv`` as ``nobody``.

Needs root (only root may own the helper's name), dbus-daemon, dbus-send, setpriv
(util-linux), python-dbusmock (and so dbus-python); the rename-failure case also needs
``unshare`` and ``mount`` (it skips without them).
"""

from __future__ import annotations

import contextlib
import difflib
import grp
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mhgui.core import mip6conf
from mhgui.helper import service
from mhgui.helper.client import (
    HelperAbsent,
    HelperClient,
    HelperConfigWriter,
    HelperError,
    InvalidArguments,
    NotAuthorized,
    UnsupportedChange,
    WouldStopDaemon,
)

dbus = pytest.importorskip("dbus")

REPO = Path(__file__).resolve().parent.parent
POLICY_CONF = REPO / "resources" / "io.github.mhgui.MHGui.Helper1.conf"
BUS_NAME = service.BUS_NAME
OBJECT_PATH = service.OBJECT_PATH
INTERFACE = service.INTERFACE
ERR = service.ERROR_PREFIX
READ = service.ACTION_READ
CHANGE = service.ACTION_CHANGE
NOBODY = 65534

if os.geteuid() != 0:
    pytest.skip("the helper tests need root (only root may own the helper's bus name)", allow_module_level=True)
for _tool in ("dbus-daemon", "dbus-send", "setpriv"):
    if shutil.which(_tool) is None:
        pytest.skip(f"{_tool} is not installed", allow_module_level=True)

from privatebus import MOCK_IFACE, PrivateBus, end_process, wait_until  # noqa: E402

CONF = """\
# mip6d.conf of the helper tests: comments, odd spacing and an include must survive
NodeConfig MN;
DebugLevel 0;      # quiet
include "extra-*.conf"

Interface "eth1" {
    MnIfPreference 1;   # wired first
    IfType MN;
}
Interface "wlan0"   { MnIfPreference 2; }
Interface "wwan0";

MnHomeLink "lo" {
\tHomeAgentAddress 2001:db8:1::1;
\tHomeAddress 2001:db8:1::100/64;
}
# end
"""
EXTRA = "MnRouterProbes 1;   # from the included file\n"
#: A change that leaves the interfaces in use of CONF numbered 1..3 (CONF itself has eth1 1, wlan0 2 and
#: wwan0 at the default 10: a gap, which the helper refuses in any result).
SWAP = {"eth1": 2, "wlan0": 1, "wwan0": 3}
SWAPPED = CONF.replace("MnIfPreference 1;   # wired", "MnIfPreference 2;   # wired").replace(
    'Interface "wlan0"   { MnIfPreference 2; }', 'Interface "wlan0"   { MnIfPreference 1; }').replace(
    'Interface "wwan0";', 'Interface "wwan0" { MnIfPreference 3; }')


# --------------------------------------------------------------------------- the private system bus


class Stack(PrivateBus):
    """The helper's bus: its policy file, polkit and (unless told otherwise) systemd mocks."""

    def __init__(self, *, polkit: bool = True, systemd: bool = True) -> None:
        super().__init__(POLICY_CONF, polkit=polkit, systemd=systemd, prefix="mhgui-helper-bus-")


_wait = wait_until
_end = end_process


def _start_stack(**kw) -> Stack:
    stack = Stack(**kw)
    try:
        return stack.start()
    except BaseException:  # helper-dbus.md pitfall 5: no teardown runs for a failed set-up
        stack.stop()
        raise


@pytest.fixture(scope="module")
def stack(helper_stack):
    return helper_stack  # tests/conftest.py's, by this module's old name


@pytest.fixture(scope="module")
def bare_stack(bare_helper_stack):
    """polkit but no systemd on the bus: the helper's process fallback."""
    return bare_helper_stack


# --------------------------------------------------------------------------- the helper process


class HelperProc:
    def __init__(self, stack: Stack, conf: Path, *args: str, wrapper: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.stack = stack
        self.conf = conf
        self.args = args
        self.wrapper = wrapper
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = conf.parent / f"helper-{time.monotonic_ns()}.log"
        self._log = None

    def argv(self) -> list[str]:
        return [*self.wrapper, sys.executable, "-m", "mhgui.helper", "--mip6d-conf", str(self.conf),
                "--unit", "mip6d.service", "--log-level", "DEBUG", *self.args]

    def start(self, wait: bool = True) -> "HelperProc":
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            self.argv(), cwd=REPO, env=self.stack.env(PYTHONPATH=str(REPO), **self.extra_env),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
        )
        if wait:
            try:
                _wait(lambda: self.stack.has_owner(BUS_NAME) or self.proc.poll() is not None, "the helper's name")
                assert self.proc.poll() is None, f"the helper exited ({self.proc.returncode}):\n{self.log}"
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self) -> int | None:
        rc = _end(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.proc is not None:
            _wait(lambda: not self.stack.has_owner(BUS_NAME), "the helper's name to be released")
        return rc

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _write_conf(directory: Path, text: str = CONF, mode: int = 0o640) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "extra-1.conf").write_text(EXTRA)
    conf = directory / "mip6d.conf"
    conf.write_text(text)
    conf.chmod(mode)
    return conf


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def conf(tmp_path) -> Path:
    return _write_conf(tmp_path / "etc")


@pytest.fixture
def helper(stack, conf):
    """The helper on ``stack`` for ``conf``; afterwards: SIGTERM exits 0, no traceback, no temp file."""
    stack.reset()
    h = HelperProc(stack, conf).start()
    try:
        yield h
    finally:
        rc = h.stop()
    assert rc == 0, h.log
    assert "Traceback" not in h.log, h.log
    assert _leftovers(conf.parent) == []


def _dbus_send(stack: Stack, member: str, *args: str, groups: str | None = None,
               dest: str = BUS_NAME, path: str = OBJECT_PATH, iface: str = INTERFACE) -> subprocess.CompletedProcess:
    """dbus-send as nobody (no groups, or ``groups`` = "--groups=GID")."""
    who = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", groups or "--clear-groups"]
    return subprocess.run(
        [*who, "dbus-send", "--system", "--print-reply", f"--dest={dest}", path, f"{iface}.{member}", *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DBUS_SYSTEM_BUS_ADDRESS": stack.address, "LANG": "C"},
        capture_output=True, text=True, timeout=30,
    )


# --------------------------------------------------------------------------- (a) allowed


@pytest.mark.asyncio
async def test_read_config_and_status(stack, helper, conf):
    stack.allow(READ)
    async with HelperClient(stack.address) as client:
        assert await client.read_config() == CONF
        st = await client.status()
        me = client.unique_name
    assert st["config_path"] == str(conf)
    assert st["backup_path"] == str(conf) + ".bak"
    assert st["unit"] == "mip6d.service"
    assert st["restart_method"] == "systemd"
    assert st["last_error"] == ""
    # every call asked polkit about the caller, with AllowUserInteraction
    assert stack.auth_calls() == [("system-bus-name", me, READ, 1)] * 2


@pytest.mark.asyncio
async def test_set_preferences_changes_only_values_then_restart(stack, helper, conf):
    stack.allow(READ, CHANGE)
    async with HelperClient(stack.address) as client:
        new = await client.set_interface_preferences(SWAP)
        me = client.unique_name
        assert stack.restart_calls() == []  # a change does not restart by itself
        job = await client.restart_daemon()
    expected = SWAPPED
    assert new == expected
    assert conf.read_text() == expected
    # byte-identical but for the two value tokens and the block added to wwan0
    diff = [d for d in difflib.ndiff(CONF.splitlines(), expected.splitlines()) if d[:1] in "+-"]
    assert diff == ["-     MnIfPreference 1;   # wired first", "+     MnIfPreference 2;   # wired first",
                    '- Interface "wlan0"   { MnIfPreference 2; }', '+ Interface "wlan0"   { MnIfPreference 1; }',
                    '- Interface "wwan0";', '+ Interface "wwan0" { MnIfPreference 3; }']
    backup = conf.parent / "mip6d.conf.bak"
    assert backup.read_text() == CONF
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert stat.S_IMODE(backup.stat().st_mode) == 0o640
    assert (conf.parent / "extra-1.conf").read_text() == EXTRA
    assert job == "/org/freedesktop/systemd1/job/1"
    assert stack.restart_calls() == [("mip6d.service", "replace")]
    assert stack.auth_calls() == [("system-bus-name", me, CHANGE, 1)] * 2


@pytest.mark.asyncio
async def test_set_preferences_adds_missing_values(stack, helper, conf):
    stack.allow(CHANGE)
    async with HelperClient(stack.address) as client:
        new = await client.set_interface_preferences({"wwan0": 3, "usb0": 4})
    assert 'Interface "wwan0" { MnIfPreference 3; }\n' in new
    assert 'Interface "wwan0" { MnIfPreference 3; }\nInterface "usb0" { MnIfPreference 4; }\n' in new
    assert mip6conf.interface_preferences(mip6conf.parse(new)) == {"eth1": 1, "wlan0": 2, "wwan0": 3, "usb0": 4}
    # everything else kept
    assert new.replace('Interface "wwan0" { MnIfPreference 3; }\nInterface "usb0" { MnIfPreference 4; }\n',
                       'Interface "wwan0";\n') == CONF


@pytest.mark.asyncio
async def test_unchanged_values_write_nothing(stack, helper, conf):
    stack.allow(CHANGE)
    async with HelperClient(stack.address) as client:
        assert await client.set_interface_preferences(SWAP) == SWAPPED
        before = conf.stat().st_ino
        backup = (conf.parent / "mip6d.conf.bak").stat().st_ino
        assert await client.set_interface_preferences({"eth1": 2, "wwan0": 3}) == SWAPPED
    assert conf.stat().st_ino == before
    assert (conf.parent / "mip6d.conf.bak").stat().st_ino == backup


# --------------------------------------------------------------------------- the driver's writer


@pytest.mark.asyncio
async def test_config_writer_sends_only_preferences(stack, helper, conf):
    stack.allow(READ, CHANGE)
    async with HelperClient(stack.address) as client:
        writer = HelperConfigWriter(client)
        text = await writer.read_config()
        edited = mip6conf.set_interface_preference(mip6conf.parse(text), "wlan0", 1)
        edited = mip6conf.set_interface_preference(edited, "eth1", 2)
        edited = mip6conf.set_interface_preference(edited, "wwan0", 0)  # unused
        new_text = mip6conf.render(edited)
        assert await writer.write_config(new_text) is None
        assert conf.read_text() == new_text
        assert await writer.restart_daemon() is None
        assert stack.restart_calls() == [("mip6d.service", "replace")]

        # anything but MnIfPreference values: refused before anything is sent to root
        stack.polkit.ClearCalls(dbus_interface=MOCK_IFACE)
        for bad in (new_text.replace("NodeConfig MN;", "NodeConfig HA;"),
                    new_text.replace("# end\n", "# end\nDebugLevel 9;\n"),
                    new_text.replace('Interface "wwan0" { MnIfPreference 0; }\n', "")):
            with pytest.raises(UnsupportedChange):
                await writer.write_config(bad)
        with pytest.raises(mip6conf.ConfError):
            await writer.write_config("NodeConfig MN")
    assert conf.read_text() == new_text
    assert {a[2] for a in stack.auth_calls()} == {READ}


# --------------------------------------------------------------------------- (b) polkit denies


@pytest.mark.asyncio
async def test_polkit_denies(stack, helper, conf):
    stack.allow(READ)  # reading yes, changing no
    async with HelperClient(stack.address) as client:
        with pytest.raises(NotAuthorized) as e:
            await client.set_interface_preferences({"eth1": 5})
        assert e.value.error_name == ERR + "NotAuthorized"
        assert "change-daemon" in str(e.value)
        with pytest.raises(NotAuthorized):
            await client.restart_daemon()
        # denied even for invalid input: polkit comes first
        with pytest.raises(NotAuthorized):
            await client.set_interface_preferences({"eth1": 11})
        st = await client.status()
        assert st["last_error"].startswith(ERR + "NotAuthorized")
        stack.allow()
        with pytest.raises(NotAuthorized):
            await client.read_config()
        with pytest.raises(NotAuthorized):
            await client.status()
    assert conf.read_text() == CONF
    assert not (conf.parent / "mip6d.conf.bak").exists()
    assert stack.restart_calls() == []
    assert [a[2] for a in stack.auth_calls()] == [CHANGE, CHANGE, CHANGE, READ, READ, READ]


# --------------------------------------------------------------------------- (c) the bus policy


@pytest.mark.parametrize(
    "member,args",
    [("ReadConfig", ()), ("GetStatus", ()), ("RestartDaemon", ()),
     ("SetInterfacePreferences", ("dict:string:uint32:eth1,7",))],
)
def test_unprivileged_user_is_refused_by_the_bus(stack, helper, conf, member, args):
    stack.allow(READ, CHANGE)  # polkit would say yes: the bus must refuse first
    r = _dbus_send(stack, member, *args)
    assert r.returncode != 0
    assert "org.freedesktop.DBus.Error.AccessDenied" in r.stderr, r.stderr
    assert stack.auth_calls() == []
    assert stack.restart_calls() == []
    assert conf.read_text() == CONF


def test_unprivileged_user_cannot_own_the_name(stack, helper):
    r = _dbus_send(stack, "RequestName", f"string:{BUS_NAME}", "uint32:4",
                   dest="org.freedesktop.DBus", path="/org/freedesktop/DBus", iface="org.freedesktop.DBus")
    assert r.returncode != 0
    assert "AccessDenied" in r.stderr, r.stderr


@pytest.mark.parametrize("group", ["netdev", "sudo"])
def test_allowed_group_reaches_the_helper_and_polkit_decides(stack, helper, conf, group):
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        pytest.skip(f"no group {group!r} on this system (the bus ignores rules for unknown groups)")
    stack.allow()
    r = _dbus_send(stack, "SetInterfacePreferences", "dict:string:uint32:eth1,2,wlan0,1,wwan0,3",
                   groups=f"--groups={gid}")
    assert r.returncode != 0
    assert ERR + "NotAuthorized" in r.stderr, r.stderr
    stack.allow(READ, CHANGE)
    r = _dbus_send(stack, "SetInterfacePreferences", "dict:string:uint32:eth1,2,wlan0,1,wwan0,3",
                   groups=f"--groups={gid}")
    assert r.returncode == 0, r.stderr
    assert conf.read_text() == SWAPPED
    calls = stack.auth_calls()
    assert [c[2] for c in calls] == [CHANGE, CHANGE]
    assert all(c[0] == "system-bus-name" and c[1].startswith(":1.") and c[3] == 1 for c in calls)


# --------------------------------------------------------------------------- (d) invalid input


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "prefs,words",
    [
        ({"eth1": 11}, "0..10"),
        ({"eth1": 1000}, "0..10"),
        ({}, "no interface preferences"),
        ({"": 1}, "empty"),
        ({"a/b": 1}, "'/'"),
        ({"eth:0": 1}, "':'"),
        ({"eth 0": 1}, "' '"),
        ({"..": 1}, "not allowed"),
        ({"x" * 16: 1}, "longer than 15"),
        ({'a"b': 1}, "mip6d.conf"),
        ({"a\nb": 1}, "'\\n'"),
        ({"eth1": 0, "wlan0": 0, "wwan0": 0}, "above 0"),
        ({f"e{i}": 0 for i in range(service.MAX_INTERFACES + 1)}, f"at most {service.MAX_INTERFACES}"),
        ({"eth1": 3}, "no interface has preference 1"),  # with wlan0 2 and wwan0 10 left
        ({"eth1": 2, "wlan0": 2, "wwan0": 1}, '"eth1" and "wlan0" both have preference 2'),
        ({"eth1": 1, "wlan0": 1, "wwan0": 0}, "no interface has preference 2"),
    ],
)
async def test_invalid_input_is_refused(stack, helper, conf, prefs, words):
    stack.allow(CHANGE)
    async with HelperClient(stack.address) as client:
        with pytest.raises(InvalidArguments) as e:
            await client.set_interface_preferences(prefs)
    assert e.value.error_name == ERR + "InvalidArgs"
    assert words in str(e.value)
    assert conf.read_text() == CONF
    assert not (conf.parent / "mip6d.conf.bak").exists()


@pytest.mark.asyncio
async def test_missing_home_link_would_stop_the_daemon(stack, tmp_path):
    conf = _write_conf(tmp_path / "etc", CONF.replace('MnHomeLink "lo"', 'MnHomeLink "mhgui-nx0"'))
    stack.reset()
    stack.allow(CHANGE)
    h = HelperProc(stack, conf).start()
    try:
        async with HelperClient(stack.address) as client:
            with pytest.raises(WouldStopDaemon) as e:
                await client.set_interface_preferences(SWAP)
            assert e.value.interfaces == ("mhgui-nx0",)
            assert e.value.error_name == ERR + "WouldStopDaemon"
            with pytest.raises(WouldStopDaemon):
                await client.restart_daemon()
    finally:
        assert h.stop() == 0
    assert conf.read_text() == CONF.replace('MnHomeLink "lo"', 'MnHomeLink "mhgui-nx0"')
    assert stack.restart_calls() == []
    assert "Traceback" not in h.log


@pytest.mark.asyncio
async def test_broken_or_missing_config(stack, tmp_path):
    broken = CONF.replace("DebugLevel 0;", "DebugLevel 0")
    conf = _write_conf(tmp_path / "etc", broken)
    stack.reset()
    stack.allow(READ, CHANGE)
    h = HelperProc(stack, conf).start()
    try:
        async with HelperClient(stack.address) as client:
            assert await client.read_config() == broken  # reading works: the GUI shows the error
            with pytest.raises(HelperError) as e:
                await client.set_interface_preferences({"eth1": 2})
            assert e.value.error_name == ERR + "InvalidConfig"
            assert f"{conf}:3: missing ';'" in str(e.value)
            with pytest.raises(HelperError) as e:
                await client.restart_daemon()
            assert e.value.error_name == ERR + "InvalidConfig"
            conf.unlink()
            with pytest.raises(HelperError) as e:
                await client.read_config()
            assert e.value.error_name == ERR + "ReadFailed"
            assert "No such file" in str(e.value)
            with pytest.raises(HelperError) as e:
                await client.set_interface_preferences({"eth1": 2})
            assert e.value.error_name == ERR + "ReadFailed"
            assert not conf.exists()  # never created from nothing
            # a missing file is no reason not to restart (mip6d runs with its defaults)
            assert await client.restart_daemon() == "/org/freedesktop/systemd1/job/1"
    finally:
        assert h.stop() == 0
    assert "Traceback" not in h.log


@pytest.mark.asyncio
async def test_interface_in_included_file_is_unsupported(stack, tmp_path):
    conf = _write_conf(tmp_path / "etc")
    (conf.parent / "extra-2.conf").write_text('Interface "usb9" { MnIfPreference 3; }\n')
    stack.reset()
    stack.allow(CHANGE)
    h = HelperProc(stack, conf).start()
    try:
        async with HelperClient(stack.address) as client:
            with pytest.raises(HelperError) as e:
                await client.set_interface_preferences({"usb9": 1})
            assert e.value.error_name == ERR + "Unsupported"
            assert "extra-2.conf" in str(e.value)
    finally:
        assert h.stop() == 0
    assert conf.read_text() == CONF


@pytest.mark.asyncio
async def test_wrong_signature_and_unknown_method(stack, helper, conf):
    from dbus_fast import Message, MessageType

    stack.allow(READ, CHANGE)
    async with HelperClient(stack.address) as client:
        bus = await client.connect()
        reply = await bus.call(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE,
                                       member="SetInterfacePreferences", signature="a{si}", body=[{"eth1": -1}]))
        assert reply.message_type is MessageType.ERROR
        assert reply.error_name == "org.freedesktop.DBus.Error.InvalidArgs"
        assert "a{su}" in reply.body[0]
        reply = await bus.call(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE,
                                       member="WriteConfig", signature="s", body=["NodeConfig HA;"]))
        assert reply.error_name == "org.freedesktop.DBus.Error.UnknownMethod"
        intro = await bus.introspect(BUS_NAME, OBJECT_PATH)
        assert {m.name for m in intro.interfaces[0].methods} == {
            "ReadConfig", "SetInterfacePreferences", "RestartDaemon", "RestartEngine", "GetStatus",
            "AddSteeringRule", "RemoveSteeringRule", "ListSteeringRules", "SetSteeringFallback",
            "GetInterfacePreferences", "SetInterfacePreferencesForRebind"}
        assert {s.name for s in intro.interfaces[0].signals} == {"RebindRequested"}
    assert conf.read_text() == CONF
    assert stack.auth_calls() == []


# --------------------------------------------------------------------------- (e) atomic writes


@pytest.mark.asyncio
async def test_readers_never_see_a_partial_file(stack, helper, conf):
    stack.allow(CHANGE)
    first = CONF.replace('Interface "wwan0";', 'Interface "wwan0" { MnIfPreference 3; }')
    texts = {CONF, first, SWAPPED}
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.add(conf.read_bytes())
            except FileNotFoundError:  # would mean the file was missing for a moment
                seen.add(b"<missing>")

    t = threading.Thread(target=reader)
    t.start()
    try:
        async with HelperClient(stack.address) as client:
            for i in range(30):
                await client.set_interface_preferences(SWAP if i % 2 == 0 else {"eth1": 1, "wlan0": 2, "wwan0": 3})
    finally:
        stop.set()
        t.join()
    assert seen <= {x.encode() for x in texts}, [s[:80] for s in seen]
    assert conf.read_text() == first  # the last call set eth1 back to 1, wlan0 to 2
    assert _leftovers(conf.parent) == []


def _can_bind_mount() -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "none", "/mnt"],
                       capture_output=True)
    return r.returncode == 0


@pytest.mark.asyncio
async def test_failing_rename_leaves_the_file_intact(stack, tmp_path):
    """The helper runs in its own mount namespace where mip6d.conf is a bind mount: rename() gets EBUSY."""
    if not _can_bind_mount():
        pytest.skip("unshare --mount / mount --bind not available")
    conf = _write_conf(tmp_path / "etc")
    stack.reset()
    stack.allow(CHANGE)
    wrapper = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
               'mount --bind "$0" "$0" && exec "$@"', str(conf))
    h = HelperProc(stack, conf, wrapper=wrapper).start()
    try:
        async with HelperClient(stack.address) as client:
            with pytest.raises(HelperError) as e:
                await client.set_interface_preferences(SWAP)
    finally:
        assert h.stop() == 0
    assert e.value.error_name == ERR + "WriteFailed"
    assert "busy" in str(e.value).lower() and "unchanged" in str(e.value)
    assert conf.read_text() == CONF
    assert (conf.parent / "mip6d.conf.bak").read_text() == CONF  # the backup was written first
    assert _leftovers(conf.parent) == []
    assert "Traceback" not in h.log


@pytest.mark.parametrize("fail", ["write", "fsync", "replace"])
def test_atomic_write_failure_keeps_the_original(tmp_path, monkeypatch, fail):
    path = tmp_path / "mip6d.conf"
    path.write_text(CONF)
    before = path.stat()

    def boom(*a, **kw):
        raise OSError(28, "No space left on device")

    if fail == "write":
        real_fdopen = os.fdopen

        class Short:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def fileno(self):
                return self.f.fileno()

            def write(self, data):
                self.f.write(data[: len(data) // 2])
                boom()

        monkeypatch.setattr(service.os, "fdopen", lambda fd, mode: Short(real_fdopen(fd, mode)))
    else:
        monkeypatch.setattr(service.os, fail, boom)
    with pytest.raises(OSError):
        service.atomic_write(str(path), b"NodeConfig HA;\n", like=before)
    monkeypatch.undo()
    assert path.read_text() == CONF
    assert path.stat().st_ino == before.st_ino
    assert _leftovers(tmp_path) == []


def test_apply_preferences_reports_write_failure(tmp_path, monkeypatch):
    conf = _write_conf(tmp_path)

    def boom(src, dst):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(service.os, "replace", boom)
    with pytest.raises(service.HelperFailure) as e:
        service.apply_preferences(str(conf), SWAP, exists=lambda n: True)
    monkeypatch.undo()
    assert e.value.name == ERR + "WriteFailed"
    assert "Read-only file system" in e.value.message
    assert conf.read_text() == CONF
    assert _leftovers(tmp_path) == []


def test_apply_preferences_refuses_a_symlink(tmp_path):
    """A link at the config path is refused (issue 13, 14a); links in the directories above are fine."""
    conf = _write_conf(tmp_path / "real")
    link = tmp_path / "mip6d.conf"
    link.symlink_to(conf)
    with pytest.raises(service.HelperFailure) as e:
        service.apply_preferences(str(link), SWAP, exists=lambda n: True)
    assert e.value.name == ERR + "ReadFailed" and "symbolic link" in e.value.message
    assert conf.read_text() == CONF and link.is_symlink()
    assert not (conf.parent / "mip6d.conf.bak").exists() and not (tmp_path / "mip6d.conf.bak").exists()
    (tmp_path / "dir").symlink_to(conf.parent)
    text, changed = service.apply_preferences(str(tmp_path / "dir" / "mip6d.conf"), SWAP, exists=lambda n: True)
    assert changed and text == SWAPPED == conf.read_text()
    assert (conf.parent / "mip6d.conf.bak").read_text() == CONF


def test_ha_interfaces_must_exist(tmp_path):
    conf = _write_conf(tmp_path, CONF.replace("NodeConfig MN;", "NodeConfig HA;"))
    with pytest.raises(service.HelperFailure) as e:
        service.apply_preferences(str(conf), SWAP, exists=lambda n: n == "lo")
    assert e.value.name == ERR + "WouldStopDaemon"
    assert '"eth1", "wlan0", "wwan0"' in e.value.message


@pytest.mark.parametrize("name", ["eth0", "wlp3s0", "br-lan.10", "veth@x", "é", "x" * 15])
def test_valid_interface_names(name):
    assert service.check_interface_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a:b", "a b", "a\tb", 'a"b', "a#b", "a\x01", "x" * 16, "é" * 8])
def test_invalid_interface_names(name):
    with pytest.raises(service.HelperFailure) as e:
        service.check_interface_name(name)
    assert e.value.name == ERR + "InvalidArgs"


# --------------------------------------------------------------------------- restart without systemd


def _alive(pid: int) -> bool:
    return service._alive(pid)


@pytest.mark.asyncio
async def test_restart_fallback_runs_the_command(bare_stack, tmp_path):
    conf = _write_conf(tmp_path / "etc")
    pidfile = tmp_path / "run" / "mip6d.pid"
    daemon = [sys.executable, "-c", "import time; time.sleep(120)"]
    args = ("--mip6d-command", shlex.join(daemon), "--pidfile", str(pidfile), "--start-grace", "0.3",
            "--stop-timeout", "3")
    bare_stack.reset()
    bare_stack.allow(READ, CHANGE)
    started: list[int] = []
    other = subprocess.Popen(["sleep", "120"])
    h = HelperProc(bare_stack, conf, *args).start()
    try:
        async with HelperClient(bare_stack.address) as client:
            assert (await client.status())["restart_method"] == "command"
            r1 = await client.restart_daemon()
            assert r1.startswith("pid ")
            started.append(int(r1.split()[1]))
            assert int(pidfile.read_text()) == started[0]
            assert service._proc_cmdline(started[0]) == daemon
            started.append(int((await client.restart_daemon()).split()[1]))
            assert started[1] != started[0]
            _wait(lambda: not _alive(started[0]), "the first daemon to stop")
            assert _alive(started[1])
        # a new helper finds the daemon through the pidfile
        assert h.stop() == 0
        h = HelperProc(bare_stack, conf, *args).start()
        async with HelperClient(bare_stack.address) as client:
            started.append(int((await client.restart_daemon()).split()[1]))
            _wait(lambda: not _alive(started[1]), "the second daemon to stop")
            # the daemon it started itself is stopped whatever the pidfile says,
            # and a pidfile naming another program does not get that program killed
            pidfile.write_text(f"{other.pid}\n")
            started.append(int((await client.restart_daemon()).split()[1]))
            _wait(lambda: not _alive(started[2]), "the third daemon to stop")
            assert other.poll() is None and _alive(started[3])
        assert h.stop() == 0
        pidfile.write_text(f"{other.pid}\n")
        h = HelperProc(bare_stack, conf, *args).start()
        async with HelperClient(bare_stack.address) as client:
            started.append(int((await client.restart_daemon()).split()[1]))
            assert other.poll() is None
            assert int(pidfile.read_text()) == started[4]
    finally:
        assert h.stop() == 0
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        other.kill()
        other.wait()
    assert "Traceback" not in h.log


@pytest.mark.asyncio
async def test_restart_fallback_failures(bare_stack, tmp_path):
    conf = _write_conf(tmp_path / "etc")
    bare_stack.reset()
    bare_stack.allow(READ, CHANGE)
    h = HelperProc(bare_stack, conf).start()
    try:
        async with HelperClient(bare_stack.address) as client:
            assert (await client.status())["restart_method"] == "none"
            with pytest.raises(HelperError) as e:
                await client.restart_daemon()
            assert e.value.error_name == ERR + "RestartFailed"
            assert "--mip6d-command" in str(e.value)
    finally:
        assert h.stop() == 0
    # a command that detaches (exits at once) is reported, not taken for a running daemon
    h = HelperProc(bare_stack, conf, "--mip6d-command", "true", "--pidfile", str(tmp_path / "p.pid")).start()
    try:
        async with HelperClient(bare_stack.address) as client:
            with pytest.raises(HelperError) as e:
                await client.restart_daemon()
            assert e.value.error_name == ERR + "RestartFailed"
            assert "exited with status 0" in str(e.value) and "foreground" in str(e.value)
    finally:
        assert h.stop() == 0
    assert "Traceback" not in h.log


# --------------------------------------------------------------------------- absent / start-up


@pytest.mark.asyncio
async def test_helper_absent(stack, tmp_path):
    stack.reset()
    assert not stack.has_owner(BUS_NAME)
    async with HelperClient(stack.address) as client:
        with pytest.raises(HelperAbsent) as e:
            await client.read_config()
        assert e.value.error_name == "org.freedesktop.DBus.Error.ServiceUnknown"
    with pytest.raises(HelperAbsent):
        await HelperConfigWriter(HelperClient(f"unix:path={tmp_path}/no-such-socket")).read_config()


@pytest.mark.asyncio
async def test_no_polkit_means_not_authorized(tmp_path):
    s = _start_stack(polkit=False, systemd=False)
    try:
        conf = _write_conf(tmp_path / "etc")
        h = HelperProc(s, conf).start()
        try:
            async with HelperClient(s.address) as client:
                with pytest.raises(NotAuthorized) as e:
                    await client.read_config()
                assert "polkit" in str(e.value)
        finally:
            assert h.stop() == 0
        assert "Traceback" not in h.log
    finally:
        s.stop()


def test_second_instance_refuses_to_start(stack, helper, conf):
    second = HelperProc(stack, conf)
    second.start(wait=False)
    try:
        assert second.proc.wait(20) == 1
    finally:
        _end(second.proc)
        second._log.close()
    assert "already owned" in second.log


def test_unprivileged_process_cannot_serve(stack, conf, tmp_path):
    """The policy lets only root own the name: the helper run as nobody exits with status 1."""
    stack.reset()
    r = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         sys.executable, "-m", "mhgui.helper", "--mip6d-conf", str(conf)],
        env=stack.env(PYTHONPATH=str(REPO)), cwd="/", capture_output=True, text=True, timeout=30,
    )
    if "No module named" in r.stderr or ("Permission denied" in r.stderr and "python" in r.stderr):
        pytest.skip("this Python cannot run as nobody (helper-dbus.md pitfall 4)")
    assert r.returncode == 1, r.stderr
    assert "cannot own" in r.stderr and "not allowed" in r.stderr.lower(), r.stderr
