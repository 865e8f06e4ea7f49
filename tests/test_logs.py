"""Services log with journal priorities under systemd (sd-daemon(3) prefixes), plain lines elsewhere."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mhgui.logs import _JournalFormatter, journal_priority

SCRIPT = """
import logging
from mhgui.logs import setup_logging
log = setup_logging("svc")
log.error("broken"); log.warning("odd"); log.info("fine"); log.debug("hidden")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("failed")
"""


def run_service(tmp_path, journal_stream: str | None) -> list[str]:
    """SCRIPT with stderr to a file, and JOURNAL_STREAM set to ``journal_stream`` ("file": that file's)."""
    out = tmp_path / "stderr"
    with open(out, "wb") as f:
        env = {"PATH": "/usr/bin:/bin"}
        if journal_stream == "file":
            st = os.fstat(f.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        elif journal_stream is not None:
            env["JOURNAL_STREAM"] = journal_stream
        subprocess.run([sys.executable, "-c", SCRIPT], stderr=f, env=env, timeout=30, check=True)
    return out.read_text().splitlines()


def test_priorities_when_stderr_is_the_journal(tmp_path):
    err = run_service(tmp_path, "file")
    assert err[:4] == ["<3>svc: broken", "<4>svc: odd", "<6>svc: fine", "<3>svc: failed"]
    # the traceback is an error on every line, not info after its first
    assert err[4] == "<3>Traceback (most recent call last):" and err[-1] == "<3>ZeroDivisionError: division by zero"
    assert all(line.startswith("<3>") for line in err[3:])


@pytest.mark.parametrize("journal_stream", [None, "8:12345", "not-a-device", ""])
def test_plain_lines_when_stderr_is_not_the_journal(tmp_path, journal_stream):
    """Without JOURNAL_STREAM, or with one naming another stream (inherited by a child whose stderr went
    elsewhere), or a malformed one: no prefixes."""
    err = run_service(tmp_path, journal_stream)
    assert [ln.split(" ", 2)[2] for ln in err[:4]] == ["ERROR svc: broken", "WARNING svc: odd", "INFO svc: fine",
                                                      "ERROR svc: failed"]
    assert not [ln for ln in err if ln.startswith("<")]


@given(st.integers(0, 60), st.text(st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_every_line_of_a_record_carries_its_priority(levelno, message):
    record = logging.LogRecord("svc", levelno, __file__, 1, "%s", (message,), None)
    lines = _JournalFormatter("%(message)s").format(record).split("\n")
    prefix = f"<{journal_priority(levelno)}>"
    assert all(line.startswith(prefix) for line in lines)
    assert "\n".join(line[len(prefix):] for line in lines) == message
    assert journal_priority(levelno) == (2 if levelno >= 50 else 3 if levelno >= 40 else 4 if levelno >= 30
                                         else 6 if levelno >= 20 else 7)
