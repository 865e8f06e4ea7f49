"""The README's engine examples stay true: its ha.toml and mn.toml load with the real loaders."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mhgui.engine import config

README = Path(__file__).resolve().parents[1] / "README.md"


def _examples() -> tuple[str, str]:
    text = README.read_text()
    section = text[text.index("### Use your own home agent"):]
    ha, mn = re.findall(r"```toml\n(.*?)```", section, re.S)[:2]
    return ha, mn


@pytest.fixture
def key_file(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    path = keys / "mn1.key"
    config.write_key_file(str(path), os.urandom(32))
    return path


def test_readme_home_agent_example_loads(tmp_path, key_file):
    ha, _ = _examples()
    f = tmp_path / "ha.toml"
    f.write_text(ha.replace("/etc/mhgui/keys/mn1.key", str(key_file)))
    cfg = config.load_ha_config(str(f))
    assert cfg.nodes[0].identity == "mn1@example.org" and cfg.nodes[0].keys[0].spi == 256


def test_readme_mobile_node_example_loads(tmp_path, key_file):
    _, mn = _examples()
    f = tmp_path / "mn.toml"
    f.write_text(mn.replace("/etc/mhgui/keys/mn1.key", str(key_file)))
    cfg = config.load_mn_config(str(f))
    assert cfg.home_addresses[0].preference == ("eth0", "wlan0") and cfg.home_addresses[0].backup == ("wwan0",)
    assert config.read_key_file(cfg.key_file) == config.read_key_file(str(key_file))
