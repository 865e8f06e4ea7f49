"""The command a user runs for a headline action the program cannot take itself (issue 15, n1.8 and n1.12).

Pure (no I/O): the caller passes what it knows of where it runs. ``lab_prefix``: the lab this process runs
in (``mhctl lab exec`` sets ``MHGUI_LAB_PREFIX``; None outside a lab). In a lab the mobility daemons are
the lab's processes, not systemd units, so ``systemctl`` cannot restart them: ``mhctl lab restart`` does.
The same text is shown by the window (copyable), the tray and ``mhctl status``.
"""

from __future__ import annotations

from .headline_model import ACTION_RESTART_DAEMON, ACTION_TRY_LAB

__all__ = ["LAB_PREFIX_ENV", "action_command", "lab_command", "restart_command"]

#: the environment variable ``mhctl lab exec`` sets to the lab's prefix
LAB_PREFIX_ENV = "MHGUI_LAB_PREFIX"
DEFAULT_LAB = "mhlab"


def _prefix_opt(prefix: str | None) -> str:
    return "" if not prefix or prefix == DEFAULT_LAB else f" --prefix {prefix}"


def lab_command() -> str:
    """What builds the lab (``mhctl lab up``) for this user: one line for a terminal."""
    return "sudo mhctl lab up --allow-user $USER"


def restart_command(daemon_name: str | None, lab_prefix: str | None = None) -> str:
    """What restarts the mobility daemon by hand (``daemon_name``: "engine" for mhgui-mn, else mip6d):
    ``mhctl lab restart`` inside a lab, ``systemctl`` (the units mhgui-mn.service, mip6d.service) outside."""
    if lab_prefix:
        return f"sudo mhctl lab restart{_prefix_opt(lab_prefix)}"
    return "sudo systemctl restart mhgui-mn" if daemon_name == "engine" else "sudo systemctl restart mip6d"


def action_command(action_id: str | None, daemon_name: str | None = None,
                   lab_prefix: str | None = None) -> str | None:
    """The command line that does what action ``action_id`` does (None: there is none to type)."""
    if action_id == ACTION_RESTART_DAEMON:
        return restart_command(daemon_name, lab_prefix)
    if action_id == ACTION_TRY_LAB:
        return lab_command()
    return None
