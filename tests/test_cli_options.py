"""``mhctl``: one set of options for every command, and ``log --json`` as an object (issue 15.9).

A script passes the same options to every command (``mhctl log --mip6d-conf PATH`` was a usage error);
``--json`` prints one object with ``"schema": 1`` (``log --json`` printed a bare list). Property-based
over journals written by the window's own journal writer.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mhgui import cli
from mhgui.core.failover import FailoverEntry
from mhgui.sources.journal import FailoverJournal

#: the common options, each with a value where it takes one
COMMON = [("--json",), ("--mip6d-conf", "/nonexistent/mip6d.conf"), ("--settings", "/nonexistent/settings.toml"),
          ("--no-networkmanager",), ("--system-bus", "unix:path=/nonexistent/bus"), ("--vt-port", "7999")]
#: what a command needs besides options to parse
ARGS = {"rebind": ["2001:db8:1::100", "up0"], "move": ["tcp [2001:db8:a::5]:40000 [2001:db8:f::1]:443", "up0"]}


def top_commands() -> dict[str, argparse.ArgumentParser]:
    p = cli.parser()
    return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize("command", sorted(set(top_commands()) - {"lab"}))  # lab: a lab of its own, its options
def test_every_command_takes_the_common_options(command):
    p = cli.parser()
    for k in range(1, len(COMMON) + 1):
        for opts in itertools.combinations(COMMON, k):
            argv = [command, *ARGS.get(command, []), *itertools.chain.from_iterable(opts)]
            try:
                args = p.parse_args(argv)
            except SystemExit:
                pytest.fail(f"mhctl {' '.join(argv)}: refused")
            given_ = {o[0]: (o[1] if len(o) > 1 else True) for o in opts}
            assert args.mip6d_conf == given_.get("--mip6d-conf") and args.settings == given_.get("--settings")
            assert args.json == ("--json" in given_) and args.system_bus == given_.get("--system-bus")
            assert args.vt_port == int(given_.get("--vt-port", 7777))


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mhgui.cli", *argv], capture_output=True, text=True, timeout=60)


def write_journal(path: Path, rows) -> list[dict]:
    """Entries as the window records them (FailoverEntry → FailoverJournal); their lines as read back."""
    j = FailoverJournal(str(path))
    for i, (who, frm, to, reason, hoas) in enumerate(rows, 1):
        e = FailoverEntry(i, who, frm, to, reason, 100.0 + i, 100.2 + i, 100.3 + i, 100.5 + i, hoas=tuple(hoas))
        j.append(e.to_json())
    j.close()
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_log_takes_the_common_options_and_prints_an_object(tmp_path):
    journal = tmp_path / "failover.jsonl"
    lines = write_journal(journal, [("daemon", "up0", "up1", "link-down", ["2001:db8:1::100"])])
    p = run("log", "--json", "--file", str(journal), "--mip6d-conf", str(tmp_path / "none.conf"),
            "--settings", str(tmp_path / "none.toml"), "--no-networkmanager", "--system-bus", "unix:path=/x",
            "--vt-port", "7999")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out == {"schema": 1, "file": str(journal), "skipped": 0, "failovers": lines}
    assert (out["failovers"][0]["from"], out["failovers"][0]["to"]) == ("up0", "up1")
    # and as text, with where from and where to
    p = run("log", "--file", str(journal), "--mip6d-conf", str(tmp_path / "none.conf"))
    assert p.returncode == 0 and "up0 -> up1" in p.stdout, p.stderr


NAMES = st.sampled_from(["up0", "up1", "wlan0", "wwan0", "enp0s31f6", None])
ROWS = st.lists(st.tuples(st.sampled_from(["app", "daemon", "user", "system"]), NAMES, NAMES,
                          st.sampled_from(["link-down", "carrier-lost", "user rebind", "recovered", "renamed"]),
                          st.lists(st.sampled_from(["2001:db8:1::100", "2001:db8:2::7"]), max_size=2, unique=True)),
                max_size=8)


@settings(max_examples=60, deadline=None)
@given(ROWS, st.integers(0, 10), st.integers(0, 3))
def test_log_json_is_one_object_with_the_failovers(rows, last, junk):
    with tempfile.TemporaryDirectory() as d:
        journal = Path(d) / "failover.jsonl"
        lines = write_journal(journal, rows)
        with journal.open("a") as f:  # lines a crash or a hand edit left: counted, not printed
            f.write("{not json\n" * junk)
        buf, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
            rc = cli.main(["log", "--json", "--file", str(journal), "-n", str(last), "--mip6d-conf", "/nonexistent"])
    assert rc == 0
    out = json.loads(buf.getvalue())
    assert isinstance(out, dict) and out["schema"] == 1 and out["file"] == str(journal)
    assert out["skipped"] == junk
    assert out["failovers"] == (lines[-last:] if last else lines)
    assert [(e["from"], e["to"]) for e in out["failovers"]] == [(r[1], r[2]) for r in (rows[-last:] if last else rows)]
