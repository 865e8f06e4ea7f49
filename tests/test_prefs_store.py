"""failover.toml on disk (mhgui.sources.prefs_store): atomic write, backups, anything in the file's place."""

from __future__ import annotations

import asyncio
import os
import stat
import threading

import pytest

from mhgui.core.prefsfile import FailoverSettings, entries_to_prefs, parse_prefs, render_prefs
from mhgui.sources import prefs_store
from mhgui.sources.prefs_store import PrefsStoreError, load_prefs, prefs_path, save_prefs


def read(path) -> str:
    with open(path) as f:
        return f.read()


def settings(*marked, holdup=5, notifications=True) -> FailoverSettings:
    return FailoverSettings(entries_to_prefs(marked, holdup=holdup), notifications)


A = settings(("eth0", "primary"), ("wlan0", "backup"), holdup=7)
B = settings(("wlan0", "primary"), ("eth0", "never"), holdup=0, notifications=False)


def test_the_path_is_in_the_xdg_config_directory(tmp_path):
    assert prefs_path() == tmp_path / "xdg-config" / "mhgui" / "failover.toml"


def test_missing_file_is_no_preferences_and_no_problem():
    got = load_prefs()
    assert got.settings is None and got.problems == () and not got.exists


def test_save_creates_the_directory_and_loads_back():
    res = save_prefs(A)
    p = prefs_path()
    assert res.path == str(p) and res.backup is None and res.broken is None
    assert p.read_text() == render_prefs(A) == res.text
    got = load_prefs()
    assert got.exists and got.problems == () and got.settings == A
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert not [n for n in os.listdir(p.parent) if n.endswith(".tmp")]


def test_save_keeps_the_previous_version_as_bak_and_the_files_mode():
    p = prefs_path()
    save_prefs(A)
    os.chmod(p, 0o600)
    res = save_prefs(B)
    assert res.backup == str(p) + ".bak"
    assert parse_prefs(read(res.backup)).settings == A
    assert load_prefs().settings == B
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE(os.stat(res.backup).st_mode) == 0o600
    save_prefs(A)
    assert parse_prefs(read(res.backup)).settings == B  # always the version just replaced


def test_the_rename_is_atomic_a_reader_never_sees_a_partial_file():
    save_prefs(A)
    p = str(prefs_path())
    big_a = FailoverSettings(A.prefs, True, {"pad": "a" * 200_000})
    big_b = FailoverSettings(B.prefs, False, {"pad": "b" * 200_000})
    texts = {render_prefs(big_a), render_prefs(big_b)}
    save_prefs(big_a)
    stop = threading.Event()
    seen, bad = [0], []

    def reader():
        while not stop.is_set():
            with open(p) as f:
                t = f.read()
            seen[0] += 1
            if t not in texts:
                bad.append(len(t))

    th = threading.Thread(target=reader)
    th.start()
    try:
        for i in range(30):
            save_prefs(big_b if i % 2 == 0 else big_a)
    finally:
        stop.set()
        th.join()
    assert seen[0] > 0 and bad == []


def test_a_failed_write_leaves_the_file_and_no_temp_file(monkeypatch):
    save_prefs(A)
    p = prefs_path()
    before = p.read_bytes()

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(prefs_store.os, "fsync", boom)
    with pytest.raises(PrefsStoreError, match="cannot save: No space left on device"):
        save_prefs(B)
    assert p.read_bytes() == before
    assert sorted(os.listdir(p.parent)) == ["failover.toml"]


def test_garbage_file_gives_problems_not_an_exception():
    p = prefs_path()
    p.parent.mkdir(parents=True)
    p.write_bytes(b"holdup = 5\n\xff\xfe garbage\n")
    got = load_prefs()
    assert got.exists and got.settings is None and got.lossy
    assert got.problems == (f"{p}: line 2: is not UTF-8 text (byte 0xff); the defaults are used",)
    p.write_text("holdup = [\n")
    got = load_prefs()
    assert got.settings == FailoverSettings() and got.lossy
    assert got.problems[0].startswith(f"{p}:1: not valid TOML")


def test_a_file_with_a_bad_value_loads_what_it_can():
    p = prefs_path()
    p.parent.mkdir(parents=True)
    p.write_text('holdup = 9000\n[[interface]]\nname = "eth0"\n')
    got = load_prefs()
    assert got.settings.prefs.order == ("eth0",) and got.settings.prefs.holdup == 5
    assert got.problems == (f"{p}:1: holdup must be from 0 to 600 seconds, not 9000; 5 is used",)


def test_saving_over_a_broken_file_keeps_it_as_broken_until_another_broken_one():
    p = prefs_path()
    p.parent.mkdir(parents=True)
    p.write_text("holdup = [\n")
    res = save_prefs(A)
    assert res.broken == str(p) + ".broken" and res.backup == str(p) + ".bak"
    assert read(res.broken) == "holdup = [\n"
    save_prefs(B)  # the file replaced now was good: .broken stays as it was
    assert read(res.broken) == "holdup = [\n"
    assert parse_prefs(read(res.backup)).settings == A


def test_unknown_keys_survive_load_and_save():
    p = prefs_path()
    p.parent.mkdir(parents=True)
    p.write_text('future_option = "x"\n[[interface]]\nname = "eth0"\nweight = 3\n')
    got = load_prefs()
    assert not got.lossy and len(got.problems) == 2
    res = save_prefs(got.settings.with_prefs(entries_to_prefs([("eth0", "primary")], holdup=4)))
    assert res.broken is None
    again = load_prefs().settings
    assert again.extra == {"future_option": "x"} and again.interface_extra == {"eth0": {"weight": 3}}


def test_a_directory_in_place_of_the_file(tmp_path):
    p = prefs_path()
    p.mkdir(parents=True)
    got = load_prefs()
    assert got.exists and got.settings is None
    assert got.problems == (f"{p}: is a directory, not a file; the defaults are used",)
    with pytest.raises(PrefsStoreError, match="is a directory; not replaced"):
        save_prefs(A)
    assert p.is_dir()


@pytest.mark.timeout(20)
def test_a_fifo_in_place_of_the_file_never_blocks_and_is_not_replaced():
    p = prefs_path()
    p.parent.mkdir(parents=True)
    os.mkfifo(p)
    got = load_prefs()  # a blocking open of a FIFO without a writer would hang here
    assert got.settings is None
    assert "is not a regular file" in got.problems[0]
    with pytest.raises(PrefsStoreError, match="not a regular file; not replaced"):
        save_prefs(A)
    assert stat.S_ISFIFO(os.stat(p).st_mode)


def test_a_dangling_symlink_and_a_symlink_loop_are_problems(tmp_path):
    p = prefs_path()
    p.parent.mkdir(parents=True)
    p.symlink_to(tmp_path / "nowhere.toml")
    got = load_prefs()
    assert got.exists and got.settings is None and "symbolic link to a file that does not exist" in got.problems[0]
    p.unlink()
    p.symlink_to(p)
    got = load_prefs()
    assert "cannot read: Too many levels of symbolic links" in got.problems[0]


def test_a_symlinked_file_is_updated_at_its_target(tmp_path):
    real = tmp_path / "dotfiles" / "failover.toml"
    real.parent.mkdir()
    real.write_text(render_prefs(A))
    p = prefs_path()
    p.parent.mkdir(parents=True)
    p.symlink_to(real)
    res = save_prefs(B)
    assert p.is_symlink() and load_prefs().settings == B
    assert res.backup == str(real) + ".bak"


def test_a_huge_file_is_refused_unread():
    p = prefs_path()
    p.parent.mkdir(parents=True)
    with open(p, "wb") as f:
        f.truncate(prefs_store.MAX_PREFS_BYTES + 1)
    got = load_prefs()
    assert "too large" in got.problems[0] and got.settings is None


def test_async_api_runs_in_the_executor(qloop):
    where = []
    real = prefs_store.save_prefs

    def spy(*a, **kw):
        where.append(threading.current_thread() is threading.main_thread())
        return real(*a, **kw)

    async def scenario():
        before = await prefs_store.load_prefs_async()
        prefs_store.save_prefs = spy
        try:
            saved = await prefs_store.save_prefs_async(A)
        finally:
            prefs_store.save_prefs = real
        after = await prefs_store.load_prefs_async()
        return before, saved, after

    before, saved, after = qloop.run_until_complete(asyncio.wait_for(scenario(), 10))
    assert before.settings is None and after.settings == A and saved.backup is None
    assert where == [False]


def test_deeply_nested_files_are_problems_not_crashes(tmp_path):
    from mhgui.sources.prefs_store import PrefsStoreError, load_prefs, save_prefs

    p = tmp_path / "failover.toml"
    p.write_text("x = " + "[" * 600 + "]" * 600 + "\n")
    got = load_prefs(p)
    assert got.settings is not None and any("nested too deeply" in str(x) for x in got.problems)
    p.write_text("x = " + "[" * 300 + "]" * 300 + "\n")  # tomllib reads it; tomli-w could not write it back
    got = load_prefs(p)
    assert "x" not in got.settings.extra and any("dropped" in str(x) for x in got.problems)
    save_prefs(got.settings, p)  # and saving what was kept works
    from mhgui.core.prefsfile import FailoverSettings
    deep: list = []
    for _ in range(400):
        deep = [deep]
    with pytest.raises(PrefsStoreError):
        save_prefs(FailoverSettings(extra={"y": deep}), p)
