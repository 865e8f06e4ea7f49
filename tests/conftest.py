"""Test setup shared by every test: offscreen Qt, settings in a temporary XDG directory."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"
# Qt must not autolaunch a session bus (test-lab.md, section 4)
os.environ.setdefault("DBUS_SESSION_BUS_ADDRESS", "disabled:")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_config(tmp_path, monkeypatch):
    """Every test gets its own XDG config directory: user settings never leak in or out."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    yield


def pytest_configure(config):
    config.addinivalue_line("markers", "gui: needs a QApplication")
