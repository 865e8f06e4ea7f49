"""Issue 13, the privileged helper's audit findings (14a, 14b, 14d, 14f, 14g) and item 8 on the
helper's side, with the real helper on a private system bus (tests/test_helper.py's recipe),
real files (root-only, nobody's, symlinks, FIFOs), real killed writers and callers that leave.

Needs root, dbus-daemon, dbus-send and setpriv (as tests/test_helper.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mhgui import atomicfile
from mhgui.core import mip6conf
from mhgui.helper import service
from mhgui.helper.client import HelperClient, HelperError, InvalidArguments

from test_helper import (  # noqa: E402  (skips the module without root or the tools)
    CHANGE, CONF, ERR, NOBODY, READ, REPO, SWAP, SWAPPED, HelperProc, _start_stack, _write_conf,
)
from privatebus import MOCK_IFACE, wait_until  # noqa: E402

SECRET = "QJXZhunter2"


@pytest.fixture(scope="module")
def stack():
    s = _start_stack()
    yield s
    s.stop()


@contextlib.asynccontextmanager
async def running(stack, conf: Path, *args: str, env: dict[str, str] | None = None):
    """The helper for ``conf``; afterwards SIGTERM must stop it with status 0 and no traceback."""
    stack.reset()
    h = HelperProc(stack, conf, *args, env=env).start()
    try:
        yield h
    finally:
        rc = h.stop()
        assert rc == 0, h.log
        assert "Traceback" not in h.log, h.log


def _no_secret(*texts: str) -> None:
    for t in texts:
        assert SECRET not in t and "QJXZ" not in t and "hunter2" not in t, t


# --------------------------------------------------------------------------- 14a: no file text in errors


@pytest.mark.asyncio
@pytest.mark.parametrize("secret_text", [
    f"TOPSECRET {SECRET}\n",                                     # missing ';' after the token
    f"NodeConfig {SECRET};\n",                                   # expected CN, HA or MN, got the token
    f'Interface "x" {{ MnIfPreference {SECRET}; }}\n',           # expected a number
    f'MnHomeLink "x" {{ {SECRET} 1; }}\n',                      # unknown token in the block
    f"CnBindingPolicySet {{\n  2001:db8::51 {SECRET};\n}}\n",    # an entry (its "name" is file text)
    f"MnHomeLink {SECRET} {{\n",                                 # '{' never closed
])
async def test_included_root_only_file_is_never_quoted(stack, tmp_path, secret_text):
    """A root-only file included by mip6d.conf: the caller learns file and line, never its text,
    neither in the reply nor later in GetStatus's last_error."""
    conf = _write_conf(tmp_path / "etc")
    secret = conf.parent / "extra-9.conf"
    secret.write_text(secret_text)
    secret.chmod(0o600)
    async with running(stack, conf):
        stack.allow(READ, CHANGE)
        async with HelperClient(stack.address) as client:
            with pytest.raises(HelperError) as e1:
                await client.set_interface_preferences(SWAP)
            with pytest.raises(HelperError) as e2:
                await client.restart_daemon()
            status = await client.status()
        for e in (e1.value, e2.value):
            assert e.error_name == ERR + "InvalidConfig"
            assert f"{secret}:" in e.message  # which file (and line) is wrong is still said
        _no_secret(e1.value.message, e2.value.message, status["last_error"])
        assert status["last_error"]
    assert conf.read_text() == CONF and stack.restart_calls() == []


@pytest.mark.asyncio
async def test_proc_environ_include_is_refused_unquoted(stack, tmp_path):
    conf = _write_conf(tmp_path / "etc", CONF.replace('include "extra-*.conf"', 'include "/proc/self/environ"'))
    async with running(stack, conf, env={"MHGUI_AUDIT_SECRET": SECRET}):
        stack.allow(READ, CHANGE)
        async with HelperClient(stack.address) as client:
            with pytest.raises(HelperError) as e:
                await client.set_interface_preferences(SWAP)
            status = await client.status()
    assert e.value.error_name == ERR + "InvalidConfig"
    assert "/proc/self/environ" in e.value.message and "pseudo-file" in e.value.message
    _no_secret(e.value.message, status["last_error"])


@pytest.mark.asyncio
async def test_symlinked_config_is_refused(stack, tmp_path):
    """ReadConfig must not follow a link at the config path to a file the caller may not read."""
    target = tmp_path / "root-only"
    target.write_text(f"# {SECRET}\n{CONF}")
    target.chmod(0o600)
    (tmp_path / "etc").mkdir()
    conf = tmp_path / "etc" / "mip6d.conf"
    conf.symlink_to(target)
    async with running(stack, conf):
        stack.allow(READ, CHANGE)
        async with HelperClient(stack.address) as client:
            errors = []
            for call in (client.read_config(), client.set_interface_preferences(SWAP), client.restart_daemon()):
                with pytest.raises(HelperError) as e:
                    await call
                errors.append(e.value)
            status = await client.status()
    for e in errors:
        assert e.error_name == ERR + "ReadFailed" and "symbolic link" in e.message, e
        _no_secret(e.message)
    _no_secret(status["last_error"])
    assert conf.is_symlink() and target.read_text().startswith(f"# {SECRET}")
    assert stack.restart_calls() == []


def _make(kind: str, path: Path) -> str:
    """Put a file of ``kind`` at ``path``; returns the words the refusal must hold."""
    if kind == "nobody's":
        path.write_text("MnRouterProbes 2;\n")
        os.chown(path, NOBODY, NOBODY)
        return f"owned by uid {NOBODY}"
    if kind == "symlink":
        real = path.parent.parent / "elsewhere.conf"
        real.write_text("MnRouterProbes 2;\n")
        path.symlink_to(real)
        return "symbolic link"
    if kind == "fifo":
        os.mkfifo(path)
        return "FIFO"
    if kind == "directory":
        path.mkdir()
        return "directory"
    if kind == "device":
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # a /dev/zero: reading never ends
        return "a device"
    raise AssertionError(kind)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["nobody's", "symlink", "fifo", "directory"])
async def test_includes_only_regular_root_owned_files(stack, tmp_path, kind):
    """14a/14b: an include that is not a regular file of root's is refused at once (a FIFO with no
    writer used to hang the call and every later one); once it is gone, changes work again."""
    conf = _write_conf(tmp_path / "etc")
    odd = conf.parent / "extra-2.conf"
    words = _make(kind, odd)
    async with running(stack, conf):
        stack.allow(READ, CHANGE)
        client = HelperClient(stack.address, timeout=20)  # (a hang shows as a failure, not a stall)
        async with client:
            with pytest.raises(HelperError) as e:
                await client.set_interface_preferences(SWAP)
            assert e.value.error_name == ERR + "InvalidConfig"
            assert f"cannot read included file {odd}" in e.value.message and words in e.value.message
            with pytest.raises(HelperError) as e:
                await client.restart_daemon()
            assert words in e.value.message
            assert conf.read_text() == CONF
            if odd.is_dir() and not odd.is_symlink():
                odd.rmdir()
            else:
                odd.unlink()
            assert await client.set_interface_preferences(SWAP) == SWAPPED
            assert await client.restart_daemon() == "/org/freedesktop/systemd1/job/1"


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["nobody's", "fifo", "directory", "device"])
async def test_main_config_must_be_a_regular_root_owned_file(stack, tmp_path, kind):
    (tmp_path / "etc").mkdir()
    conf = tmp_path / "etc" / "mip6d.conf"
    words = _make(kind, conf)
    async with running(stack, conf):
        stack.allow(READ, CHANGE)
        async with HelperClient(stack.address, timeout=20) as client:
            for call in (client.read_config(), client.set_interface_preferences(SWAP), client.restart_daemon()):
                with pytest.raises(HelperError) as e:
                    await call
                assert e.value.error_name == ERR + "ReadFailed" and words in e.value.message, e.value
    assert stack.restart_calls() == []


# --------------------------------------------------------------------------- 14b: shutdown with a stuck reader

STUCK = """
import asyncio, os, sys
from mhgui.helper import service

r, w = os.pipe()  # nobody ever writes: a read that never returns, as on a hung file system

async def main():
    helper = object.__new__(service.Helper)
    task = asyncio.ensure_future(helper._in_executor(os.read, r, 1))
    await asyncio.sleep(0.2)
    task.cancel()
    print("leaving", flush=True)

asyncio.run(main())
print("left", flush=True)
"""


def test_shutdown_does_not_wait_for_a_stuck_reader():
    proc = subprocess.Popen([sys.executable, "-c", STUCK], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the process never exited: its stuck reader thread was waited for ({out!r})")
    assert proc.returncode == 0, err
    assert out.splitlines() == ["leaving", "left"]


# --------------------------------------------------------------------------- 14d: bounded, one re-parse


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3 * service.MAX_INTERFACES))
def test_preference_count_is_capped(n):
    prefs = {f"e{i}": 0 for i in range(n)}
    if n <= service.MAX_INTERFACES:
        assert service.check_preferences(prefs) == prefs
    else:
        with pytest.raises(service.HelperFailure) as e:
            service.check_preferences(prefs)
        assert e.value.name == ERR + "InvalidArgs"
        assert f"{n} given, at most {service.MAX_INTERFACES}" in e.value.message


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, service.MAX_INTERFACES), existing=st.integers(0, 20))
def test_all_edits_with_one_reparse(tmp_path_factory, n, existing):
    """apply_preferences parses the main file at most twice (as it is, and once edited), whatever the
    count of edits (it used to re-parse once per interface: quadratic)."""
    d = tmp_path_factory.mktemp("one-parse")
    body = "".join(f'Interface "e{i}" {{ MnIfPreference 0; }}\n' for i in range(existing))
    conf = _write_conf(d, "NodeConfig MN;\n" + body)
    prefs = {f"e{i}": (i + 1 if i < 10 else 0) for i in range(n)}
    prefs.update({f"e{i}": 0 for i in range(n, existing)})  # the others unused: a clean order
    parsed: list[str] = []
    real = mip6conf.parse

    def counting(text, path="<string>", **kw):
        parsed.append(path)
        return real(text, path, **kw)

    mip6conf.parse = counting
    try:
        text, _changed = service.apply_preferences(str(conf), prefs, exists=lambda name: True)
    finally:
        mip6conf.parse = real
    assert parsed.count(str(conf)) == 2, parsed  # (e0 always changes: 0 -> 1)
    assert mip6conf.interface_preferences(mip6conf.parse(text)) == prefs
    assert conf.read_text() == text


@pytest.mark.asyncio
async def test_thousands_of_names_are_refused_over_dbus(stack, tmp_path):
    conf = _write_conf(tmp_path / "etc")
    async with running(stack, conf):
        stack.allow(READ, CHANGE)
        async with HelperClient(stack.address, timeout=20) as client:
            with pytest.raises(InvalidArguments) as e:
                await client.set_interface_preferences({f"if{i}": 0 for i in range(2000)})
            assert f"2000 given, at most {service.MAX_INTERFACES}" in str(e.value)
            assert await client.set_interface_preferences(SWAP) == SWAPPED
    assert (conf.parent / "mip6d.conf.bak").read_text() == CONF


# --------------------------------------------------------------------------- item 8: ties and gaps


@pytest.mark.asyncio
@pytest.mark.parametrize("prefs,words", [
    ({"eth1": 2, "wlan0": 2, "wwan0": 1}, '"eth1" and "wlan0" both have preference 2'),
    ({"eth1": 1, "wlan0": 1, "wwan0": 1}, "all have preference 1"),
    ({"eth1": 2, "wlan0": 3, "wwan0": 4}, "no interface has preference 1"),
    ({"eth1": 1, "wlan0": 2, "wwan0": 4}, 'no interface has preference 3 ("wwan0" has 4)'),
    ({"wlan0": 1}, "no interface has preference 2"),  # eth1 1 left as it is: a tie
])
async def test_ties_and_gaps_are_refused(stack, tmp_path, prefs, words):
    conf = _write_conf(tmp_path / "etc")
    async with running(stack, conf):
        stack.allow(CHANGE)
        async with HelperClient(stack.address) as client:
            with pytest.raises(InvalidArguments) as e:
                await client.set_interface_preferences(prefs)
    assert e.value.error_name == ERR + "InvalidArgs"
    assert words in str(e.value) and "0 = unused" in str(e.value)
    assert conf.read_text() == CONF and not (conf.parent / "mip6d.conf.bak").exists()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.tuples(st.integers(0, 10), st.integers(0, 10), st.integers(0, 10)))
def test_helper_writes_only_clean_orders(tmp_path_factory, values):
    """Over every assignment to CONF's three interfaces: written iff the order in use is 1..k."""
    conf = _write_conf(tmp_path_factory.mktemp("order"))
    prefs = dict(zip(("eth1", "wlan0", "wwan0"), values))
    used = sorted(v for v in values if v)
    clean = bool(used) and used == list(range(1, len(used) + 1))
    if clean:
        text, _ = service.apply_preferences(str(conf), prefs, exists=lambda n: True)
        assert mip6conf.interface_preferences(mip6conf.parse(text)) == prefs
    else:
        with pytest.raises(service.HelperFailure) as e:
            service.apply_preferences(str(conf), prefs, exists=lambda n: True)
        assert e.value.name == ERR + "InvalidArgs"
        assert conf.read_text() == CONF


# --------------------------------------------------------------------------- 14f: stale temp files

WRITER = """
import sys, time
from mhgui.atomicfile import atomic_replace

def write(f):
    f.write(b"x" * (2 << 20))
    f.flush()
    print("writing", flush=True)
    time.sleep(600)

atomic_replace(sys.argv[1], write)
"""


def _writer(target: Path) -> subprocess.Popen:
    """A writer stopped mid-write of ``target`` (2 MB written), still alive."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=REPO, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE)
    assert proc.stdout.readline() == "writing\n"
    return proc


def _killed_writer(target: Path) -> Path:
    """What a writer of ``target`` killed mid-write leaves."""
    before = set(target.parent.iterdir())
    proc = _writer(target)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    (left,) = set(target.parent.iterdir()) - before
    return left


def _dead_pid() -> int:
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 7


def test_killed_writer_leftover_is_removed_live_ones_are_kept(tmp_path):
    target = tmp_path / "failover.toml"
    target.write_text("old\n")
    stale = _killed_writer(target)
    assert atomicfile.is_temp_name(stale.name, "failover.toml") is not None and stale.stat().st_size == 2 << 20
    live = _writer(tmp_path / "other.conf")
    try:
        (live_tmp,) = [p for p in tmp_path.iterdir() if atomicfile.is_temp_name(p.name, "other.conf")]
        # same pattern, dead pid, but a writer (in another pid namespace) holds the lock
        locked = tmp_path / f".x.conf{atomicfile.TEMP_MARK}{_dead_pid()}.abcdefgh.tmp"
        locked.write_bytes(b"x")
        holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1]); "
                                   "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(600)",
                                   str(locked)], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline() == "locked\n"
        foreign = [tmp_path / ".failover.toml.abcdefgh.tmp",                 # mkstemp's, not ours
                   tmp_path / f"failover.toml{atomicfile.TEMP_MARK}{_dead_pid()}.abcdefgh.tmp",  # no dot
                   tmp_path / f".y{atomicfile.TEMP_MARK}{os.getpid()}.abcdefgh.tmp"]             # live pid
        for f in foreign:
            f.write_bytes(b"x")
        nobodys = tmp_path / f".z{atomicfile.TEMP_MARK}{_dead_pid()}.abcdefgh.tmp"
        nobodys.write_bytes(b"x")
        os.chown(nobodys, NOBODY, NOBODY)
        link = tmp_path / f".l{atomicfile.TEMP_MARK}{_dead_pid()}.abcdefgh.tmp"
        link.symlink_to(target)

        assert atomicfile.remove_stale_temp_files(str(tmp_path), ["other.conf"]) == []
        assert atomicfile.remove_stale_temp_files(str(tmp_path)) == [str(stale)]
        assert not stale.exists()
        assert all(p.exists() for p in (live_tmp, locked, nobodys, *foreign)) and link.is_symlink()
        assert target.read_text() == "old\n"
        holder.kill()
        holder.wait()
        holder.stdout.close()
        assert atomicfile.remove_stale_temp_files(str(tmp_path)) == [str(locked)]
    finally:
        live.kill()
        live.wait()
        live.stdout.close()
    assert atomicfile.remove_stale_temp_files(str(tmp_path / "missing-dir")) == []


_NAME_CHARS = st.sampled_from(list("ab.-_~0123456789") + [atomicfile.TEMP_MARK, ".tmp", "mip6d.conf", "x" * 8])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.lists(_NAME_CHARS, min_size=1, max_size=8).map("".join), max_size=8, unique=True),
       own=st.integers(0, 3))
def test_only_our_stale_temp_files_are_removed(tmp_path_factory, names, own):
    """Any file names: only the writer's pattern with a gone pid is removed."""
    d = tmp_path_factory.mktemp("names")
    dead, alive = _dead_pid(), os.getpid()
    ours = {f".t{i}.conf{atomicfile.TEMP_MARK}{dead + i}.{'abcdefgh'[i:] + '01234567'[:i]}.tmp" for i in range(own)}
    mine_alive = f".t.conf{atomicfile.TEMP_MARK}{alive}.abcdefgh.tmp"
    all_names = set()
    for n in [*names, *ours, mine_alive]:
        if n in (".", "..") or "/" in n or len(n.encode()) > 255:
            continue
        all_names.add(n)
        (d / n).write_bytes(b"")
    removed = atomicfile.remove_stale_temp_files(str(d))
    gone = {n for n in all_names if atomicfile.is_temp_name(n) is not None
            and atomicfile._process_gone(atomicfile.is_temp_name(n))}
    assert {os.path.basename(p) for p in removed} == gone
    assert ours <= gone and mine_alive not in gone
    assert {p.name for p in d.iterdir()} == all_names - gone


@pytest.mark.asyncio
async def test_helper_removes_stale_temp_files_at_start(stack, tmp_path):
    conf = _write_conf(tmp_path / "etc")
    state = tmp_path / "state"
    state.mkdir()
    (state / "steering.json").write_text("")
    stale = [_killed_writer(conf), _killed_writer(conf.parent / "mip6d.conf.bak"),
             _killed_writer(state / "steering.json")]
    kept = [conf.parent / f".hosts{atomicfile.TEMP_MARK}{_dead_pid()}.abcdefgh.tmp",  # not the helper's file
            conf.parent / ".mip6d.conf.abcdefgh.tmp"]                                 # not our pattern
    for k in kept:
        k.write_bytes(b"x")
    async with running(stack, conf, "--state-dir", str(state)):
        pass
    assert [p for p in stale if p.exists()] == []
    assert all(k.exists() for k in kept)
    assert conf.read_text() == CONF


def test_app_writers_remove_stale_temp_files(tmp_path):
    from mhgui.sources.journal import FailoverJournal
    from mhgui.sources.prefs_store import load_prefs

    prefs = tmp_path / "config" / "failover.toml"
    prefs.parent.mkdir()
    prefs.write_text("")
    stale_prefs = _killed_writer(prefs)
    load_prefs(str(prefs))
    assert not stale_prefs.exists()

    journal = tmp_path / "state" / "failover.jsonl"
    journal.parent.mkdir()
    journal.write_text("")
    stale_journal = _killed_writer(journal)
    j = FailoverJournal(str(journal))
    j.close()
    assert not stale_journal.exists()


# --------------------------------------------------------------------------- 14g: the caller left


@contextlib.contextmanager
def _polkit_hangs(stack):
    stack.polkit.SimulateHang(True, dbus_interface=MOCK_IFACE)
    try:
        yield
    finally:
        stack.polkit.SimulateHang(False, dbus_interface=MOCK_IFACE)
        stack.polkit.ReleaseHangingCalls(dbus_interface=MOCK_IFACE)


async def _until(pred, what: str) -> None:
    """Poll ``pred`` without blocking the event loop (the calls under test run on it)."""
    deadline = time.monotonic() + 30
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _leave_while_waiting(stack, call, waiting) -> str:
    """Start ``call(client)``, wait until ``waiting()``, then close the caller's connection and wait
    until the bus has no owner for its unique name; returns that name."""
    client = HelperClient(stack.address)
    await client.connect()
    name = client.unique_name
    task = asyncio.ensure_future(call(client))
    await _until(waiting, "the call to wait")
    await client.close()
    with contextlib.suppress(HelperError, asyncio.CancelledError):
        task.cancel()
        await task
    wait_until(lambda: not stack.has_owner(name), "the caller to be gone")
    return name


@pytest.mark.asyncio
@pytest.mark.parametrize("member", ["RestartDaemon", "SetInterfacePreferences"])
async def test_call_is_dropped_when_the_caller_left_during_polkit(stack, tmp_path, member):
    conf = _write_conf(tmp_path / "etc")
    call = ((lambda c: c.restart_daemon()) if member == "RestartDaemon"
            else (lambda c: c.set_interface_preferences(SWAP)))
    async with running(stack, conf) as h:
        stack.allow(READ, CHANGE)
        with _polkit_hangs(stack):
            name = await _leave_while_waiting(
                stack, call, lambda: stack.polkit.HaveHangingCalls(dbus_interface=MOCK_IFACE))
            stack.polkit.SimulateHang(False, dbus_interface=MOCK_IFACE)
            stack.polkit.ReleaseHangingCalls(dbus_interface=MOCK_IFACE)  # polkit says yes, too late
        wait_until(lambda: name in h.log and ("left the bus" in h.log or stack.restart_calls()
                                               or conf.read_text() != CONF), "the helper to decide")
        assert stack.restart_calls() == [] and conf.read_text() == CONF
        assert f"the caller ({name}) left the bus" in h.log
        # a caller that stays is served as before
        async with HelperClient(stack.address) as client:
            await call(client)
    assert stack.restart_calls() == ([("mip6d.service", "replace")] if member == "RestartDaemon" else [])
    assert conf.read_text() == (CONF if member == "RestartDaemon" else SWAPPED)


GATED_RESTART = """
import os, time
open({entered!r}, "w").close()
while not os.path.exists({gate!r}):
    time.sleep(0.01)
ret = "/org/freedesktop/systemd1/job/1"
"""


@pytest.mark.asyncio
async def test_call_is_dropped_when_the_caller_left_while_waiting_for_another(stack, tmp_path):
    """The check is repeated once the change lock is held: B waits for A's restart, then leaves."""
    conf = _write_conf(tmp_path / "etc")
    entered, gate = tmp_path / "entered", tmp_path / "gate"
    stack.systemd.AddMethod("org.freedesktop.systemd1.Manager", "RestartUnit", "ss", "o",
                            GATED_RESTART.format(entered=str(entered), gate=str(gate)), dbus_interface=MOCK_IFACE)
    try:
        async with running(stack, conf) as h:
            stack.allow(READ, CHANGE)
            async with HelperClient(stack.address) as a:
                first = asyncio.ensure_future(a.restart_daemon())
                await _until(entered.exists, "A's restart to reach systemd")
                b_name = await _leave_while_waiting(
                    stack, lambda c: c.restart_daemon(), lambda: h.log.count("RestartDaemon by") >= 2)
                gate.write_text("")
                assert await first == "/org/freedesktop/systemd1/job/1"
                wait_until(lambda: "left the bus" in h.log or len(stack.restart_calls()) > 1, "B's call to end")
            assert len(stack.restart_calls()) == 1
            assert f"the caller ({b_name}) left the bus" in h.log
    finally:
        stack.systemd.AddMethod("org.freedesktop.systemd1.Manager", "RestartUnit", "ss", "o",
                                "ret = '/org/freedesktop/systemd1/job/1'", dbus_interface=MOCK_IFACE)

