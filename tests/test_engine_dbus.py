"""The mobile node daemon's control API (mhgui.engine.mn_dbus) on a private system bus.

The real service and the real D-Bus policy (resources/io.github.mhgui.MHGui.MobileNode1.conf)
serve a stand-in for MobileNodeDaemon (tests/enginebus.py); polkit is dbusmock's polkitd.
Callers: dbus-fast as root (in this process), dbus-send as nobody (setpriv).
"""

from __future__ import annotations

import asyncio
import grp
import inspect
import json
import stat

import pytest
import pytest_asyncio

from enginebus import HA, HOA1, HOA2, StandInDaemon, dbus_send, start_stack  # noqa: E402 (skips without root or tools)

from dbus_fast import BusType, Message, MessageType  # noqa: E402
from dbus_fast.aio import MessageBus  # noqa: E402

from waiting import until  # noqa: E402
from mhgui.engine import config as engine_config  # noqa: E402
from mhgui.engine import mn_dbus  # noqa: E402
from mhgui.engine.mn_dbus import (  # noqa: E402
    ACTION_CONFIGURE, ACTION_PREFERENCES, ACTION_REBIND, BUS_NAME, ERROR_PREFIX, INTERFACE, OBJECT_PATH, serve,
)

NOT_AUTHORIZED = ERROR_PREFIX + "NotAuthorized"
INVALID = ERROR_PREFIX + "InvalidArgs"
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"


@pytest.fixture(scope="module")
def stack():
    s = start_stack()
    yield s
    s.stop()


@pytest_asyncio.fixture
async def daemon(stack):
    """The stand-in, served on the test bus for one test."""
    stack.reset()
    d = StandInDaemon()
    service = await serve(d, stack.address)
    d.service = service
    try:
        yield d
    finally:
        await service.close()
    assert not stack.has_owner(BUS_NAME)


@pytest_asyncio.fixture
async def client(stack):
    bus = await MessageBus(bus_address=stack.address, bus_type=BusType.SYSTEM).connect()
    try:
        yield bus
    finally:
        bus.disconnect()
        await bus.wait_for_disconnect()


async def call(bus: MessageBus, member: str, signature: str = "", body: list | None = None) -> Message:
    return await bus.call(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE, member=member,
                                  signature=signature, body=body or []))


def ok(reply: Message) -> list:
    assert reply.message_type is MessageType.METHOD_RETURN, (reply.error_name, reply.body)
    return reply.body


def error(reply: Message) -> tuple[str, str]:
    assert reply.message_type is MessageType.ERROR, reply.body
    return reply.error_name, reply.body[0]


# --------------------------------------------------------------------------- reading


@pytest.mark.asyncio
async def test_reading_is_json_and_asks_no_one(stack, daemon, client):
    assert json.loads(ok(await call(client, "GetBindings"))[0]) == daemon.bindings()
    assert json.loads(ok(await call(client, "GetUplinks"))[0]) == daemon.uplinks()
    st = json.loads(ok(await call(client, "GetStatus"))[0])
    assert st["api_version"] == "1"
    assert st["identity"] == "mn1@example.net"
    assert st["home_agent"] == HA
    assert st["home_agent_addresses"] == ["2001:db8:ffff::1", "192.0.2.1"]
    assert st["port"] == 4191
    assert st["counters"] == {"bu-sent": 3, "auth-failed": 1}
    assert st["config_path"] is None
    assert stack.auth_calls() == []  # reading never asks polkit


@pytest.mark.asyncio
async def test_introspection_signature_and_unknown_method(stack, daemon, client):
    intro = await client.introspect(BUS_NAME, OBJECT_PATH)
    iface = next(i for i in intro.interfaces if i.name == INTERFACE)
    assert {m.name for m in iface.methods} == {"GetBindings", "GetUplinks", "GetStatus", "Rebind", "SetPreferences",
                                               "ConfigureHomeAgent", "GetFlowBindings", "AddFlowBinding",
                                               "ChangeFlowBinding", "RemoveFlowBinding", "SetLoadSharing"}
    add = next(m for m in iface.methods if m.name == "AddFlowBinding")
    assert [a.signature for a in add.in_args] == ["s", "s", "as"] and [a.signature for a in add.out_args] == \
        ["b", "q", "d", "s"]
    assert [s.name for s in iface.signals] == ["Changed"]
    rebind = next(m for m in iface.methods if m.name == "Rebind")
    assert rebind.in_signature == "ss" and rebind.out_signature == "bdsss"
    name, text = error(await call(client, "Rebind", "s", [HOA1]))
    assert name == "org.freedesktop.DBus.Error.InvalidArgs" and "'ss'" in text
    name, _ = error(await call(client, "Reboot"))
    assert name == "org.freedesktop.DBus.Error.UnknownMethod"
    assert daemon.calls == [] and stack.auth_calls() == []


# --------------------------------------------------------------------------- Rebind


@pytest.mark.asyncio
async def test_rebind_allowed_returns_the_daemons_answer(stack, daemon, client):
    stack.allow(ACTION_REBIND)
    body = ok(await call(client, "Rebind", "ss", ["2001:DB8:1:0::200", "wlan0"]))
    assert body == [True, 12.5, "10.0.3.5", "wlan0", ""]
    assert daemon.calls == [("rebind", HOA2, "wlan0")]  # the HoA in RFC 5952 form
    # polkit was asked about this caller, for this action, with user interaction allowed
    assert stack.auth_calls() == [("system-bus-name", client.unique_name, ACTION_REBIND, 1)]


@pytest.mark.asyncio
async def test_rebind_refused_by_the_daemon_is_an_answer_not_an_error(stack, daemon, client):
    stack.allow(ACTION_REBIND)
    body = ok(await call(client, "Rebind", "ss", [HOA1, "eth9"]))
    assert body == [False, 0.0, "", "eth9", "eth9 is not an access interface of this node"]


@pytest.mark.asyncio
async def test_rebind_denied_by_polkit(stack, daemon, client):
    stack.allow(ACTION_PREFERENCES)  # not the rebind action
    name, text = error(await call(client, "Rebind", "ss", [HOA1, "wlan0"]))
    assert name == NOT_AUTHORIZED
    assert ACTION_REBIND in text and "denied" in text
    assert daemon.calls == []
    assert [c[2] for c in stack.auth_calls()] == [ACTION_REBIND]


@pytest.mark.asyncio
async def test_nobody_may_read_but_not_change(stack, daemon):
    stack.allow(ACTION_REBIND, ACTION_PREFERENCES, ACTION_CONFIGURE)
    rc, out, err = await dbus_send(stack, "GetBindings")
    assert rc == 0, err
    assert HOA1 in out and "registered" in out
    for member in ("GetUplinks", "GetStatus"):
        rc, out, err = await dbus_send(stack, member)
        assert rc == 0, err
    rc, out, err = await dbus_send(stack, "Introspect", iface="org.freedesktop.DBus.Introspectable")
    assert rc == 0 and "ConfigureHomeAgent" in out, err
    for member, args in (("Rebind", (f"string:{HOA1}", "string:wlan0")),
                         ("SetPreferences", (f"string:{HOA1}", "array:string:wlan0", "array:string:eth0",
                                             "array:string:usb0")),
                         ("ConfigureHomeAgent", ("array:string:2001:db8:ffff::2", f"string:{HA}", "string:x@y",
                                                 "uint32:300", "array:byte:" + ",".join(["1"] * 16)))):
        rc, out, err = await dbus_send(stack, member, *args)
        assert rc != 0
        assert ACCESS_DENIED in err, err  # the bus said no: polkit never asked
    assert stack.auth_calls() == []
    assert daemon.calls == [] and daemon.restarts == 0


@pytest.mark.asyncio
async def test_netdev_members_reach_polkit(stack, daemon):
    gid = grp.getgrnam("netdev").gr_gid if _has_group("netdev") else pytest.skip("no netdev group")
    rc, out, err = await dbus_send(stack, "Rebind", f"string:{HOA1}", "string:wlan0", groups=f"--groups={gid}")
    assert rc != 0 and NOT_AUTHORIZED in err, err
    stack.allow(ACTION_REBIND)
    rc, out, err = await dbus_send(stack, "Rebind", f"string:{HOA1}", "string:wlan0", groups=f"--groups={gid}")
    assert rc == 0, err
    assert "boolean true" in out and "double 12.5" in out and '"10.0.3.5"' in out
    assert daemon.calls == [("rebind", HOA1, "wlan0")]
    assert [c[2] for c in stack.auth_calls()] == [ACTION_REBIND] * 2


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


# --------------------------------------------------------------------------- invalid arguments


KEY = bytes(range(32))
GOOD_HA = [["2001:db8:ffff::1", "192.0.2.1"], HA, "mn1@example.net", 4242, KEY]


@pytest.mark.parametrize("member,signature,body,words", [
    ("Rebind", "ss", ["not-an-address", "wlan0"], "not an IPv6 address"),
    ("Rebind", "ss", ["192.0.2.7", "wlan0"], "not an IPv6 address"),
    ("Rebind", "ss", ["", "wlan0"], "empty"),
    ("Rebind", "ss", ["2001:db8::1" + "0" * 100, "wlan0"], "too long"),
    ("Rebind", "ss", [HOA1, "x" * 16], "longer than 15 bytes"),
    ("Rebind", "ss", [HOA1, "é" * 8], "longer than 15 bytes"),
    ("Rebind", "ss", [HOA1, "a/b"], "'/'"),
    ("Rebind", "ss", [HOA1, "a b"], "' '"),
    ("Rebind", "ss", [HOA1, ".."], "not allowed"),
    ("Rebind", "ss", [HOA1, ""], "empty"),
    ("SetPreferences", "sasasas", [HOA1, ["eth0", "eth0"], [], []], "listed twice"),
    ("SetPreferences", "sasasas", [HOA1, ["eth0"], ["wlan:0"], []], "':'"),
    ("SetPreferences", "sasasas", [HOA1, ["n%d" % i for i in range(65)], [], []], "at most 64"),
    ("SetPreferences", "sasasas", ["fe80::1%eth0", ["eth0"], [], []], "not an IPv6 address"),
    ("ConfigureHomeAgent", "asssuay", [[]] + GOOD_HA[1:], "at least one address"),
    ("ConfigureHomeAgent", "asssuay", [["2001:db8:ffff::1", "2001:db8:ffff::2"]] + GOOD_HA[1:], "one per family"),
    ("ConfigureHomeAgent", "asssuay", [["2001:db8::1", "192.0.2.1", "192.0.2.2"]] + GOOD_HA[1:], "at most one"),
    ("ConfigureHomeAgent", "asssuay", [["ha.example.net"]] + GOOD_HA[1:], "not an IP address"),
    ("ConfigureHomeAgent", "asssuay", [["ff02::1"]] + GOOD_HA[1:], "not a unicast address"),
    ("ConfigureHomeAgent", "asssuay", [GOOD_HA[0], "192.0.2.1"] + GOOD_HA[2:], "not an IPv6 address"),
    ("ConfigureHomeAgent", "asssuay", [GOOD_HA[0], "::"] + GOOD_HA[2:], "not a unicast address"),
    ("ConfigureHomeAgent", "asssuay", GOOD_HA[:2] + ["", 4242, KEY], "1..253 bytes"),
    ("ConfigureHomeAgent", "asssuay", GOOD_HA[:2] + ["x" * 254, 4242, KEY], "1..253 bytes"),
    ("ConfigureHomeAgent", "asssuay", GOOD_HA[:2] + ["a b@c", 4242, KEY], "not a NAI"),
    ("ConfigureHomeAgent", "asssuay", GOOD_HA[:3] + [255, KEY], "256..4294967295"),
    ("ConfigureHomeAgent", "asssuay", GOOD_HA[:3] + [0, KEY], "256..4294967295"),
    ("ConfigureHomeAgent", "asssuay", GOOD_HA[:4] + [bytes(15)], "16..64 bytes"),
    ("ConfigureHomeAgent", "asssuay", GOOD_HA[:4] + [bytes(65)], "16..64 bytes"),
])
@pytest.mark.asyncio
async def test_invalid_arguments(stack, daemon, client, member, signature, body, words):
    stack.allow(ACTION_REBIND, ACTION_PREFERENCES, ACTION_CONFIGURE)
    name, text = error(await call(client, member, signature, body))
    assert name == INVALID
    assert words in text, text
    assert "\n" not in text and "Traceback" not in text
    assert daemon.calls == [] and daemon.restarts == 0
    assert stack.auth_calls() == []  # checked before polkit: a request that cannot work prompts no one


# --------------------------------------------------------------------------- SetPreferences


@pytest.mark.asyncio
async def test_set_preferences(stack, daemon, client):
    stack.allow(ACTION_PREFERENCES)
    changed = await _listen(client)
    ok(await call(client, "SetPreferences", "sasasas", [HOA1, ["wlan0", "eth0"], ["wwan0"], ["usb0"]]))
    assert daemon.calls == [("set_preferences", HOA1, ["wlan0", "eth0"], ["wwan0"], ["usb0"])]
    await until(lambda: changed, "the Changed signal")
    assert changed[0] == ("preferences", {"hoa": HOA1})
    # the daemon's own refusal comes back as InvalidArgs with its sentence
    name, text = error(await call(client, "SetPreferences", "sasasas", [HOA1, ["eth0"], [], ["eth0"]]))
    assert (name, text) == (INVALID, "eth0: both used and marked 'never'")
    assert [c[2] for c in stack.auth_calls()] == [ACTION_PREFERENCES] * 2


# --------------------------------------------------------------------------- the Changed signal


async def _listen(bus: MessageBus) -> list[tuple[str, dict]]:
    got: list[tuple[str, dict]] = []

    def handler(msg: Message):
        if msg.message_type is MessageType.SIGNAL and msg.interface == INTERFACE and msg.member == "Changed":
            got.append((msg.body[0], json.loads(msg.body[1])))

    bus.add_message_handler(handler)
    ok(await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                              interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                              body=[f"type='signal',sender='{BUS_NAME}',interface='{INTERFACE}'"])))
    return got


@pytest.mark.asyncio
async def test_changed_signal_for_every_daemon_change(stack, daemon, client):
    got = await _listen(client)
    daemon.emit("uplinks", {"event": "unreachable", "uplink": "wwan0", "at": 12.25})
    daemon.emit("bindings", {"event": "registered", "hoa": HOA1, "uplink": "eth0", "coa": "2001:db8:a::5",
                             "nat": False, "lifetime": 600, "extra": ("a", 1)})
    await until(lambda: len(got) == 2, "two Changed signals")
    assert got[0] == ("uplinks", {"event": "unreachable", "uplink": "wwan0", "at": 12.25})
    assert got[1][0] == "bindings" and got[1][1]["coa"] == "2001:db8:a::5" and got[1][1]["extra"] == ["a", 1]
    # a rebind's registration is signalled too
    stack.allow(ACTION_REBIND)
    ok(await call(client, "Rebind", "ss", [HOA2, "eth0"]))
    await until(lambda: len(got) == 3, "the rebind's Changed signal")
    assert got[2] == ("bindings", {"event": "registered", "hoa": HOA2, "uplink": "eth0", "coa": "2001:db8:a::5",
                                   "nat": False, "lifetime": 600})


# --------------------------------------------------------------------------- ConfigureHomeAgent


MN_TOML = """\
[node]
identity = "old@example.net"
spi = 300
key_file = "{key}"

[home_agent]
addresses = ["2001:db8:eeee::1"]
address = "2001:db8:1::1"
port = 4191

[[home_address]]
address = "2001:db8:1::100/64"
preference = ["eth0", "wlan0"]
never = ["usb0"]

[tunnel]
lifetime = 300
"""


@pytest.fixture
def mn_toml(tmp_path):
    keydir = tmp_path / "keys"
    path = tmp_path / "etc" / "mn.toml"
    path.parent.mkdir()
    key = keydir / "mn.key"
    engine_config.write_key_file(str(key), b"\x01" * 32)
    path.write_text(MN_TOML.format(key=key))
    return path, key


@pytest.mark.asyncio
async def test_configure_home_agent_writes_files_and_restarts(stack, client, mn_toml):
    path, key = mn_toml
    stack.reset()
    stack.allow(ACTION_CONFIGURE)
    d = StandInDaemon()
    service = await serve(d, stack.address, config_path=str(path))
    try:
        st = json.loads(ok(await call(client, "GetStatus"))[0])
        assert st["config_path"] == str(path)
        ok(await call(client, "ConfigureHomeAgent", "asssuay",
                      [["192.0.2.10", "2001:DB8:FFFF::10"], "2001:db8:1::2", "mn7@example.net", 4242, KEY]))
    finally:
        await service.close()
    cfg = engine_config.load_mn_config(str(path))
    assert cfg.identity == "mn7@example.net" and cfg.spi == 4242
    assert cfg.home_agent.addresses == ("192.0.2.10", "2001:db8:ffff::10")
    assert cfg.home_agent.address == "2001:db8:1::2" and cfg.home_agent.port == 4191
    # what the call did not name stays as it was
    assert [h.address for h in cfg.home_addresses] == [HOA1]
    assert cfg.home_addresses[0].preference == ("eth0", "wlan0") and cfg.home_addresses[0].never == ("usb0",)
    assert cfg.tunnel.lifetime == 300 and cfg.key_file == str(key)
    assert (path.parent / "mn.toml.bak").read_text() == MN_TOML.format(key=key)
    assert engine_config.read_key_file(str(key)) == KEY
    st = key.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert d.restarts == 1
    assert [c[2] for c in stack.auth_calls()] == [ACTION_CONFIGURE]
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.asyncio
async def test_configure_home_agent_denied_changes_nothing(stack, client, mn_toml):
    path, key = mn_toml
    before, key_before = path.read_bytes(), key.read_bytes()
    stack.reset()
    stack.allow(ACTION_REBIND, ACTION_PREFERENCES)  # auth_admin_keep in real life: the mock says no
    d = StandInDaemon()
    service = await serve(d, stack.address, config_path=str(path))
    try:
        name, text = error(await call(client, "ConfigureHomeAgent", "asssuay", GOOD_HA))
    finally:
        await service.close()
    assert name == NOT_AUTHORIZED and ACTION_CONFIGURE in text
    assert path.read_bytes() == before and key.read_bytes() == key_before
    assert not (path.parent / "mn.toml.bak").exists()
    assert d.restarts == 0


@pytest.mark.asyncio
async def test_configure_home_agent_without_a_known_file(stack, daemon, client):
    stack.allow(ACTION_CONFIGURE)
    name, text = error(await call(client, "ConfigureHomeAgent", "asssuay", GOOD_HA))
    assert name == ERROR_PREFIX + "Failed" and "not known" in text
    assert daemon.restarts == 0


@pytest.mark.asyncio
async def test_configure_home_agent_key_write_failure_puts_the_file_back(stack, client, mn_toml, monkeypatch):
    path, key = mn_toml
    key_before = key.read_bytes()
    stack.reset()
    stack.allow(ACTION_CONFIGURE)

    def boom(p, k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engine_config, "write_key_file", boom)
    d = StandInDaemon()
    service = await serve(d, stack.address, config_path=str(path))
    try:
        name, text = error(await call(client, "ConfigureHomeAgent", "asssuay", GOOD_HA))
    finally:
        await service.close()
    assert name == ERROR_PREFIX + "WriteFailed"
    assert "No space left on device" in text and "put back" in text
    cfg = engine_config.load_mn_config(str(path))
    assert (cfg.identity, cfg.spi, cfg.home_agent.addresses) == ("old@example.net", 300, ("2001:db8:eeee::1",))
    assert key.read_bytes() == key_before
    assert d.restarts == 0


# --------------------------------------------------------------------------- the name


@pytest.mark.asyncio
async def test_second_service_cannot_take_the_name(stack, daemon):
    with pytest.raises(RuntimeError, match="already owned"):
        await serve(StandInDaemon(), stack.address)
    assert stack.has_owner(BUS_NAME)


@pytest.mark.asyncio
async def test_close_releases_the_name_and_stops_signals(stack):
    d = StandInDaemon()
    service = await serve(d, stack.address)
    assert stack.has_owner(BUS_NAME)
    await service.close()
    await service.close()  # idempotent
    assert not stack.has_owner(BUS_NAME)
    d.emit("bindings", {})  # a late event after close is dropped, not an error


def test_check_functions_alone():
    assert mn_dbus.check_hoa("2001:DB8:1:0:0:0:0:100") == HOA1
    assert mn_dbus.check_interface_name("wlp3s0") == "wlp3s0"
    s = mn_dbus.check_home_agent_setting(["2001:db8:ffff::1"], HA, "a@b", 256, bytearray(16))
    assert s.spi == 256 and s.key == bytes(16)
    assert "key=" not in repr(s)  # the secret is never logged by accident
    with pytest.raises(mn_dbus.ControlFailure) as e:
        mn_dbus.check_home_agent_setting(["2001:db8:ffff::1"], HA, "a@b", True, bytes(16))
    assert e.value.name == INVALID
    assert inspect.iscoroutinefunction(serve)  # (asyncio.iscoroutinefunction is deprecated in 3.14)


@pytest.mark.asyncio
async def test_changes_in_flight_are_bounded_per_caller(stack, daemon, client):
    """A flood of changes (each asks polkit and may wait for the home agent) gets Busy, not a dead bus
    connection: the bus's pending-reply limit is never reached by one caller."""
    stack.allow(ACTION_REBIND)
    daemon.gate = asyncio.Event()
    calls = [asyncio.ensure_future(call(client, "Rebind", "ss", [HOA1, "wlan0"])) for _ in range(10)]
    await until(lambda: len(daemon.calls) == 4, "four rebinds in the daemon")
    done, pending = await asyncio.wait(calls, timeout=2)
    busy = [error(t.result()) for t in done]
    assert len(busy) == 6 and all(n.endswith(".Busy") and "too many requests" in m for n, m in busy)
    daemon.gate.set()
    for t in pending:
        assert ok(await t)[0] is True
    assert ok(await call(client, "Rebind", "ss", [HOA1, "wlan0"]))[0] is True  # free again
