"""Configuration files: UMIP's ``mip6d.conf`` and the app's own settings (file I/O adapter).

The parsing is pure (:mod:`mhgui.core.mip6conf`, :mod:`mhgui.core.settings`);
this module only reads files, and is meant to run in an executor thread.

Inside a Flatpak sandbox the host's ``/etc`` is not visible (the manifest asks for no file
system access; Flathub refuses ``--filesystem=host-etc``): there the daemon's file comes from the
privileged helper's ``ReadConfig`` on the system bus (:func:`read_daemon_config`, asyncio), and
:func:`load_config` parses that text (``daemon=``). The helper reads only the file itself: its
``include`` statements match nothing in the sandbox (a note says so).
"""

from __future__ import annotations

import glob as _glob
import os
import stat
from dataclasses import dataclass, field

from ..core import mip6conf, settings as settings_mod
from ..core.model import HomeAddress, home_address_problem
from ..core.state import HomeAddressesSet
from ..i18n import _
from .paths import config_dir, settings_path  # noqa: F401 - config_dir: re-exported (lives apart: issue 14)

DEFAULT_MIP6D_CONF = "/etc/mip6d.conf"


def default_mip6d_conf() -> str:
    """``/etc/mip6d.conf``: the daemon's file on the host (in a sandbox the helper reads it: module docstring)."""
    return DEFAULT_MIP6D_CONF


@dataclass(frozen=True)
class DaemonConfig:
    """The daemon's file as the privileged helper read it: ``path`` (the helper's ``--mip6d-conf``),
    ``text`` (None when it could not be read) and, then, ``problem`` (one line; "" when the file
    simply does not exist, which is not a problem: mip6d runs on its defaults)."""

    path: str
    text: str | None
    problem: str = ""


async def read_daemon_config(system_bus: str | None = None, timeout: float = 10.0) -> DaemonConfig:
    """The daemon's file through the helper (``GetStatus``'s ``config_path``, ``ReadConfig``), for a
    sandbox. Never raises: a helper that is absent, refuses (polkit) or fails gives ``text`` None and
    the reason in ``problem``."""
    from ..helper.client import HelperAbsent, HelperClient, HelperError
    path = DEFAULT_MIP6D_CONF
    try:
        async with HelperClient(system_bus, timeout=timeout) as helper:
            path = str((await helper.status()).get("config_path") or path)
            return DaemonConfig(path, await helper.read_config())
    except HelperError as e:
        if e.error_name and e.error_name.endswith(".ReadFailed") and "No such file" in e.message:
            return DaemonConfig(path, None)
        text = (_("not read: inside the sandbox it is read through mhgui's helper, which is not available: {why}")
                if isinstance(e, HelperAbsent) else
                _("not read: inside the sandbox it is read through mhgui's helper, which did not give it: {why}"))
        return DaemonConfig(path, None, text.format(why=e.message))


class ConfigError(Exception):
    """A configuration file could not be used; ``str()`` is one line naming the file (and line)."""


@dataclass
class LoadedConfig:
    """What :func:`load_config` found: HoAs (merged), notes for the user, the settings object."""

    home_addresses: tuple[HomeAddress, ...] = ()
    notes: tuple[str, ...] = ()
    settings: settings_mod.Settings | None = None
    files: list[str] = field(default_factory=list)
    #: problems found with ``strict=False`` (one line each, with file and line)
    errors: tuple[str, ...] = ()

    def event(self) -> HomeAddressesSet:
        problems = tuple(_("Configuration problem (what could be read is used): {problem}").format(problem=e)
                         for e in self.errors)
        return HomeAddressesSet(self.home_addresses, problems + self.notes)


#: configuration files are small; anything bigger is refused rather than read into memory
MAX_CONFIG_BYTES = 1 << 20


def _read(path: str) -> str:
    """Read a configuration file as text (blocking).

    Raises ``OSError`` when it cannot be opened, :class:`mip6conf.ConfError`
    (naming this file and the line) for something that is not a regular
    file (``/dev/null`` reads as empty), is over :data:`MAX_CONFIG_BYTES`, starts with a byte order mark, or
    is not UTF-8. A FIFO or device is never opened for reading.
    """
    st = os.stat(path)
    if os.path.samestat(st, os.stat(os.devnull)):
        return ""  # `--mip6d-conf /dev/null`: deliberately no configuration
    if not stat.S_ISREG(st.st_mode):
        raise mip6conf.ConfError(path, 0, "not a regular file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise mip6conf.ConfError(path, 0, f"too large ({st.st_size} bytes; at most {MAX_CONFIG_BYTES})")
    with open(path, "rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise mip6conf.ConfError(path, 0, f"too large (over {MAX_CONFIG_BYTES} bytes)")
    if data.startswith(b"\xef\xbb\xbf"):
        raise mip6conf.ConfError(path, 1, "starts with a UTF-8 byte order mark, which mip6d does not accept")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise mip6conf.ConfError(path, line, f"not UTF-8 text (byte 0x{data[e.start]:02x})") from None


def load_config(mip6d_conf: str | None = None, settings_file: str | os.PathLike | None = None,
                *, strict: bool = True, daemon: DaemonConfig | None = None) -> LoadedConfig:
    """Read the daemon's file and the app's settings (blocking; run in an executor).

    ``mip6d_conf``: a path given by the user (``--mip6d-conf``): missing is an
    error. None: the settings' ``mip6d_conf`` or ``/etc/mip6d.conf``, where
    missing is not an error. ``settings_file``: given by the user, missing is
    an error; None: ``$XDG_CONFIG_HOME/mhgui/settings.toml``, may be missing.
    ``daemon``: the daemon's file as the helper read it (a sandbox, :func:`read_daemon_config`):
    used instead of reading a file when ``mip6d_conf`` is None.

    ``strict``: raise :class:`ConfigError` (one line, with file and line) at
    the first problem. Otherwise keep going with what could be read and list
    the problems in ``errors`` (the window shows them and still shows the
    home addresses of the file that was fine).
    """
    out = LoadedConfig()
    errors: list[str] = []

    def problem(text: str) -> None:
        if strict:
            raise ConfigError(text)
        errors.append(text)

    def read_one(path: str, explicit: bool, how: str, parse):
        """``parse(path)`` when the file exists; every failure becomes one problem line."""
        if not os.path.lexists(path):
            if explicit:
                problem(_("{path}: no such file (given with {option})").format(path=path, option=how))
            return None
        try:
            value = parse(path)
        except (settings_mod.SettingsError, mip6conf.ConfError) as e:
            problem(str(e))
        except RecursionError:
            problem(_("{path}: nested too deeply").format(path=path))
        except OSError as e:
            problem(_("{path}: cannot read: {why}").format(path=path, why=e.strerror or e))
        else:
            out.files.append(path)
            return value
        return None

    sp = str(settings_file) if settings_file else str(settings_path())
    s = read_one(sp, bool(settings_file), "--settings", lambda p: settings_mod.parse_settings(_read(p), p))
    out.settings = s
    explicit = mip6d_conf is not None or bool(s and s.mip6d_conf)
    path = mip6d_conf or (s.mip6d_conf if s and s.mip6d_conf else default_mip6d_conf())
    def daemon_file(p: str) -> tuple[list[HomeAddress], list[str]]:
        loaded = mip6conf.load(p, _read, lambda pattern: sorted(_glob.glob(pattern)))
        return mip6conf.home_addresses(loaded), list(loaded.warnings) + mip6conf.unknown_options(loaded)

    if daemon is not None and mip6d_conf is None:
        daemon_hoas, notes = _from_helper(daemon, problem)
    else:
        daemon_hoas, notes = read_one(path, explicit, _("--mip6d-conf or in settings"), daemon_file) or ([], [])
    def usable(hoas) -> list[HomeAddress]:
        keep = []
        for h in hoas:
            why = home_address_problem(h)
            if why:
                notes.append(_("{origin}: home address {address} ignored: {why}").format(
                    origin=h.origin, address=f"{h.address}/{h.prefixlen}", why=why))
            else:
                keep.append(h)
        return keep

    merged, merge_notes = settings_mod.merge_home_addresses(usable(daemon_hoas), usable(s.home_addresses if s else []))
    out.home_addresses = tuple(merged)
    out.notes = tuple(notes + merge_notes)
    out.errors = tuple(errors)
    return out


def _from_helper(daemon: DaemonConfig, problem) -> tuple[list[HomeAddress], list[str]]:
    """Home addresses and notes from the text the helper read; parse errors go to ``problem``."""
    if daemon.text is None:
        return [], [f"{daemon.path}: {daemon.problem}"] if daemon.problem else []

    def read(p: str) -> str:
        if p != daemon.path:
            raise FileNotFoundError(2, "not visible in the sandbox")
        return daemon.text

    try:
        loaded = mip6conf.load(daemon.path, read, lambda pattern: [])
    except mip6conf.ConfError as e:
        problem(str(e))
        return [], []
    except RecursionError:
        problem(_("{path}: nested too deeply").format(path=daemon.path))
        return [], []
    notes = list(loaded.warnings) + mip6conf.unknown_options(loaded)
    if any("no file matches include pattern" in w for w in loaded.warnings):
        notes.insert(0, _("{path}: read through mhgui's helper (sandbox): its include statements are not "
                          "followed here, so home addresses in included files are not shown").format(path=daemon.path))
    return mip6conf.home_addresses(loaded), notes


def read_interface_preferences(path: str | None = None) -> dict[str, int] | None:
    """``{interface: MnIfPreference}`` from the daemon's file (blocking; run it in an executor).

    ``path``: default :func:`default_mip6d_conf`. None when the file is missing,
    unreadable or malformed (the caller then has no daemon order to start from).
    """
    p = path or default_mip6d_conf()
    try:
        loaded = mip6conf.load(p, _read, lambda pattern: sorted(_glob.glob(pattern)))
        return mip6conf.interface_preferences(loaded)
    except Exception:  # noqa: BLE001 - any problem means "no order known"; load_config reports it
        return None
