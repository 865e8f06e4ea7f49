"""Services log with journal priorities under systemd (sd-daemon(3) prefixes), plain lines elsewhere."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import logging
from mhgui.logs import setup_logging
log = setup_logging("svc")
log.error("broken"); log.warning("odd"); log.info("fine"); log.debug("hidden")
"""


@pytest.mark.parametrize("journal", [True, False])
def test_priorities_only_under_the_journal(journal):
    env = {"PATH": "/usr/bin:/bin"}
    if journal:
        env["JOURNAL_STREAM"] = "8:12345"
    err = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                         timeout=30).stderr.splitlines()
    if journal:
        assert err == ["<3>svc: broken", "<4>svc: odd", "<6>svc: fine"]
    else:
        assert [ln.split(" ", 2)[2] for ln in err] == ["ERROR svc: broken", "WARNING svc: odd", "INFO svc: fine"]
