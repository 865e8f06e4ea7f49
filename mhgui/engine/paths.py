"""Where the engine's mobile node reads its configuration: a module with no imports to speak of, for the
app's and ``mhctl status``'s question "is this node configured for mhgui's engine?" (issue 14: their start
must not load the configuration's parser). :mod:`mhgui.engine.config` re-exports these."""

from __future__ import annotations

import os
from typing import Mapping

__all__ = ["DEFAULT_MN_CONFIG", "MN_CONFIG_ENV", "engine_configured", "mn_config_path"]

#: where mhgui-mn reads its configuration unless started with ``--config`` (:func:`mhgui.engine.mnd.main`)
DEFAULT_MN_CONFIG = "/etc/mhgui/mn.toml"
#: the environment variable that names another mn.toml for the app's question (:func:`mn_config_path`);
#: ``mhctl lab exec`` sets it to the lab's, which the lab's engine runs with
MN_CONFIG_ENV = "MHGUI_MN_CONFIG"


def mn_config_path(environ: Mapping[str, str] | None = None) -> str:
    """The mn.toml this node's engine runs with: ``$MHGUI_MN_CONFIG`` when set (the lab's), else
    :data:`DEFAULT_MN_CONFIG`."""
    env = os.environ if environ is None else environ
    return env.get(MN_CONFIG_ENV) or DEFAULT_MN_CONFIG


def engine_configured(path: str | None = None) -> bool:
    """This node is meant to run mhgui's engine: its configuration file (``path``, default
    :func:`mn_config_path`) is a regular file. A stat: call it off the GUI thread."""
    return os.path.isfile(path if path is not None else mn_config_path())
