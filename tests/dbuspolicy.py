"""Debian's system-bus default policy (``/usr/share/dbus-1/system.conf``), verbatim, for private test buses.

Used by tests/test_helper.py and tests/nmlab.py (helper-dbus.md, test-lab.md section 2); the one copy lives
with the lab, which starts such a bus too.
"""

from mhgui.lab import DEFAULT_POLICY

__all__ = ["DEFAULT_POLICY"]
