"""Memory at start and with many flows (issue 14): structural checks, not sizes (those are in
benchmarks/first_paint.py).

- the app imports asyncio without :mod:`ssl` (asyncio's TLS is not used), and pyroute2's ``import ssl``
  gets a stand-in (:mod:`mhgui._deferred`) that loads the real module at its first use only;
- the flows source keeps one Flow per socket between polls (no copy of the socket's raw fields) and
  still sees a socket whose addresses changed.
"""

from __future__ import annotations

import socket
import sys
import time

from mhgui.sources import flows as flows_mod
from test_startup import run_py

NO_TLS = r"""
import sys
from mhgui.ui.app import import_asyncio_without_tls
asyncio = import_asyncio_without_tls()
import asyncio.base_events, asyncio.sslproto, asyncio.selector_events
assert asyncio.base_events.ssl is None and asyncio.sslproto.ssl is None and asyncio.selector_events.ssl is None
assert "_ssl" not in sys.modules
import ssl                                   # what pyroute2's probe_msg does at its top
from pyroute2.netlink.rtnl import probe_msg  # noqa: F401 - imports ssl
assert "_ssl" not in sys.modules, "the stand-in was loaded by an import"
stand_in = ssl
ctx = ssl.create_default_context()           # the first use loads the real module
assert "_ssl" in sys.modules and sys.modules["ssl"] is not stand_in
assert isinstance(ctx, sys.modules["ssl"].SSLContext) and stand_in.SSLContext is sys.modules["ssl"].SSLContext
from ssl import CERT_REQUIRED                # `from` imports after that: the real module
assert CERT_REQUIRED == ctx.verify_mode
# an asyncio that was imported first (tests, an embedding program): nothing changes
print("ok")
"""

ALREADY = r"""
import sys, asyncio, ssl
from mhgui.ui.app import import_asyncio_without_tls
assert import_asyncio_without_tls() is asyncio
import asyncio.base_events
assert asyncio.base_events.ssl is ssl and sys.modules["ssl"] is ssl
print("ok")
"""


def test_asyncio_without_tls_and_ssl_loaded_at_its_first_use():
    assert run_py(NO_TLS).stdout.strip() == "ok"


def test_asyncio_imported_before_is_left_as_it_is():
    assert run_py(ALREADY).stdout.strip() == "ok"


def test_defer_module_refuses_what_it_cannot_stand_in_for():
    from mhgui._deferred import defer_module
    assert not defer_module("sys")  # imported already
    assert not defer_module("os.path")  # a submodule
    assert not defer_module("mhgui_no_such_module_here")
    assert "mhgui_no_such_module_here" not in sys.modules


def _one(table, port: int):
    got = [f for f in table.flows.values() if f.local_port == port]
    assert len(got) == 1, got
    return got[0]


def test_a_poll_keeps_an_unchanged_sockets_flow_and_remakes_a_changed_one():
    p = flows_mod._Poller(None, "struct", ("udp",), (socket.AF_INET,), None)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.connect(("127.0.0.1", 9))
        first = _one(p.poll(time.monotonic), port)
        assert (first.remote_address, first.remote_port, first.state) == ("127.0.0.1", 9, "ESTAB")
        assert _one(p.poll(time.monotonic), port) is first  # unchanged: the same Flow
        s.connect(("127.0.0.2", 9))  # the peer's address alone changes (same cookie, state and ports)
        moved = _one(p.poll(time.monotonic), port)
        assert moved is not first and moved.remote_address == "127.0.0.2"
        assert moved.id != first.id
        assert _one(p.poll(time.monotonic), port) is moved
    finally:
        s.close()
        p.close()
