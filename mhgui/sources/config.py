"""Configuration files: UMIP's ``mip6d.conf`` and the app's own settings (file I/O adapter).

The parsing is pure (:mod:`mhgui.core.mip6conf`, :mod:`mhgui.core.settings`);
this module only reads files, and is meant to run in an executor thread.
"""

from __future__ import annotations

import glob as _glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core import mip6conf, settings as settings_mod
from ..core.model import HomeAddress
from ..core.state import HomeAddressesSet

DEFAULT_MIP6D_CONF = "/etc/mip6d.conf"


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/mhgui`` (default ``~/.config/mhgui``), XDG Base Directory spec."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "mhgui"


def settings_path() -> Path:
    return config_dir() / "settings.toml"


class ConfigError(Exception):
    """A configuration file could not be used; ``str()`` is one line naming the file (and line)."""


@dataclass
class LoadedConfig:
    """What :func:`load_config` found: HoAs (merged), notes for the user, the settings object."""

    home_addresses: tuple[HomeAddress, ...] = ()
    notes: tuple[str, ...] = ()
    settings: settings_mod.Settings | None = None
    files: list[str] = field(default_factory=list)

    def event(self) -> HomeAddressesSet:
        return HomeAddressesSet(self.home_addresses, self.notes)


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="strict") as f:
        return f.read()


def load_config(mip6d_conf: str | None = None, settings_file: str | os.PathLike | None = None) -> LoadedConfig:
    """Read the daemon's file and the app's settings (blocking; run in an executor).

    ``mip6d_conf``: a path given by the user (``--mip6d-conf``): missing is an
    error. None: the settings' ``mip6d_conf`` or ``/etc/mip6d.conf``, where
    missing is not an error. Raises :class:`ConfigError` for a malformed or
    unreadable file (one line, with file and line).
    """
    out = LoadedConfig()
    sp = Path(settings_file) if settings_file else settings_path()
    s = None
    if sp.exists():
        try:
            s = settings_mod.parse_settings(_read(str(sp)), str(sp))
        except settings_mod.SettingsError as e:
            raise ConfigError(str(e)) from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{sp}: cannot read: {e}") from None
        out.files.append(str(sp))
    out.settings = s
    explicit = mip6d_conf is not None
    path = mip6d_conf or (s.mip6d_conf if s and s.mip6d_conf else DEFAULT_MIP6D_CONF)
    explicit = explicit or bool(s and s.mip6d_conf)
    daemon_hoas: list[HomeAddress] = []
    if os.path.exists(path):
        try:
            loaded = mip6conf.load(path, _read, lambda pattern: sorted(_glob.glob(pattern)))
            daemon_hoas = mip6conf.home_addresses(loaded)
        except mip6conf.ConfError as e:
            raise ConfigError(str(e)) from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read: {e}") from None
        out.files.append(path)
    elif explicit:
        raise ConfigError(f"{path}: no such file (given with --mip6d-conf or in settings)")
    merged, notes = settings_mod.merge_home_addresses(daemon_hoas, list(s.home_addresses) if s else [])
    out.home_addresses = tuple(merged)
    out.notes = tuple(notes)
    return out
