"""Test setup shared by every test: offscreen Qt, settings in a temporary XDG directory."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"
# Qt must not autolaunch a session bus (test-lab.md, section 4)
os.environ.setdefault("DBUS_SESSION_BUS_ADDRESS", "disabled:")
# the tests read the English texts: a developer's German desktop must not translate them
# (tests/test_i18n.py sets LANGUAGE=de where it wants German)
os.environ["LANGUAGE"] = "en"

import asyncio  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _messages_language():
    """After each test (and after monkeypatch has put LANGUAGE back: this fixture is set up first, so it is
    torn down last), glibc and mhgui read the message language again. glibc keeps the language strerror()
    chose while a test had LANGUAGE=de until the locale is set again: without this, every later test of
    the run would read German error messages."""
    yield
    import locale

    from mhgui import i18n
    current = locale.setlocale(locale.LC_MESSAGES)
    locale.setlocale(locale.LC_MESSAGES, "C")
    locale.setlocale(locale.LC_MESSAGES, current)
    i18n.reset()


@pytest.fixture(autouse=True)
def _private_config(tmp_path, monkeypatch):
    """Every test gets its own XDG config directory: user settings never leak in or out."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    yield


def pytest_configure(config):
    config.addinivalue_line("markers", "gui: needs a QApplication")


@pytest.fixture(scope="session")
def _qasync_session_loop(qapp):
    """One Qt+asyncio loop for the whole run, as in the app (which has one for its life).

    A qasync loop per test, closed after it, left timers whose objects were gone when
    Qt fired them in a later test (a segmentation fault in QApplication::notify).
    """
    import qasync
    loop = qasync.QEventLoop(qapp)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()  # ends its executor threads


@pytest.fixture
def qloop(_qasync_session_loop):
    """The session's qasync loop, set as the current event loop for this test."""
    asyncio.set_event_loop(_qasync_session_loop)
    yield _qasync_session_loop
    asyncio.set_event_loop(None)


@pytest.fixture(scope="module")
def helper_stack():
    """The privileged helper's private system bus with polkit and systemd mocks (tests/test_helper.py's
    stack), one per test module; skips where tests/test_helper.py does (no root, no tools)."""
    from test_helper import _start_stack
    s = _start_stack()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def bare_helper_stack():
    """:func:`helper_stack` without systemd on the bus (the lab, a container)."""
    from test_helper import _start_stack
    s = _start_stack(systemd=False)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def engine_stack():
    """The engine's private system bus (tests/enginebus.py: its real policy, dbusmock polkitd), one per test
    module; skips without dbus-python, root or the tools."""
    pytest.importorskip("dbus")
    from enginebus import start_stack
    s = start_stack()
    yield s
    s.stop()
