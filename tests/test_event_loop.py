"""The Qt+asyncio loop survives a long run of callbacks.

PySide6 6.12.0 with qasync over-releases ``None`` in the timer path and aborts
the interpreter after about 8,000 callbacks; the app lives far longer than that.
Run in a child process, since the failure is an abort, not an exception.
"""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = r'''
import asyncio, sys
import qasync
from PySide6.QtWidgets import QApplication
app = QApplication([])
async def body():
    for _ in range(30000):
        await asyncio.sleep(0)
    print("survived", sys.getrefcount(None) > 0)
loop = qasync.QEventLoop(app)
asyncio.set_event_loop(loop)
with loop:
    loop.run_until_complete(body())
'''


def test_thirty_thousand_callbacks_do_not_abort():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    p = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and "survived True" in p.stdout, p.stderr[-2000:]
