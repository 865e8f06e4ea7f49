"""The app's own files' places (XDG Base Directory spec), without the configuration readers' imports:
the window names the settings file in its first frame (issue 14: :mod:`mhgui.sources.config` costs
7 ms of imports there)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["config_dir", "settings_path"]


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/mhgui`` (default ``~/.config/mhgui``), XDG Base Directory spec."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "mhgui"


def settings_path() -> Path:
    """The app's settings file: ``config_dir() / "settings.toml"``."""
    return config_dir() / "settings.toml"
