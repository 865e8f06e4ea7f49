"""A fake org.kde.StatusNotifierWatcher (dbus-fast) for tray tests; imports nothing from mhgui.

Recipe: /work/shared/domain/sni-tray.md. Runs in a background thread with its
own asyncio loop; exported at /StatusNotifierWatcher before it owns its name.
Qt registers an item with the unique name of a private connection (":1.N"):
the caller is taken from the message (``add_message_handler``), since a
dbus-fast ``@method`` does not get it. Items whose connection goes away are
dropped (NameOwnerChanged) and ``StatusNotifierItemUnregistered`` is emitted.

Also a small client (:func:`call`) for the tests: one raw method call on a
short-lived connection, run in the watcher's loop.
"""

import asyncio
import threading
import time

from dbus_fast import BusType, Message, MessageType, NameFlag, RequestNameReply, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method, signal

WATCHER = "org.kde.StatusNotifierWatcher"
PATH = "/StatusNotifierWatcher"


class _Watcher(ServiceInterface):
    def __init__(self, owner: "SniWatcher") -> None:
        super().__init__(WATCHER)
        self._owner = owner

    @method()
    def RegisterStatusNotifierItem(self, service: "s") -> None:  # noqa: F821,N802
        self._owner._register(service)

    @method()
    def RegisterStatusNotifierHost(self, service: "s") -> None:  # noqa: F821,N802
        self.StatusNotifierHostRegistered()

    @dbus_property(access=PropertyAccess.READ)
    def RegisteredStatusNotifierItems(self) -> "as":  # noqa: F821,N802
        return list(self._owner.items)

    @dbus_property(access=PropertyAccess.READ)
    def IsStatusNotifierHostRegistered(self) -> "b":  # noqa: F821,N802
        return True

    @dbus_property(access=PropertyAccess.READ)
    def ProtocolVersion(self) -> "i":  # noqa: F821,N802
        return 0

    @signal()
    def StatusNotifierItemRegistered(self, item) -> "s":  # noqa: F821,N802
        return item

    @signal()
    def StatusNotifierItemUnregistered(self, item) -> "s":  # noqa: F821,N802
        return item

    @signal()
    def StatusNotifierHostRegistered(self) -> None:  # noqa: N802
        return None


class SniWatcher:
    """The fake watcher on the bus at ``address``. ``items``: "service/path" registered, in order.

    ``events``: ("registered" | "unregistered", "service/path", monotonic time).
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.items: list[str] = []
        self.events: list[tuple[str, str, float]] = []
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._bus: MessageBus | None = None
        self._iface: _Watcher | None = None
        self._caller: str | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ---- lifecycle
    def start(self, timeout: float = 5.0) -> "SniWatcher":
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="sni-watcher", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the fake StatusNotifierWatcher did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._setup())
        except BaseException as e:  # reported to start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    async def _setup(self) -> None:
        bus = await MessageBus(bus_address=self.address, bus_type=BusType.SESSION).connect()
        self._bus = bus
        self._iface = _Watcher(self)
        bus.add_message_handler(self._on_message)
        bus.export(PATH, self._iface)
        await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                               interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                               body=["type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"]))
        reply = await bus.request_name(WATCHER, NameFlag.DO_NOT_QUEUE)
        if reply is not RequestNameReply.PRIMARY_OWNER:
            raise RuntimeError(f"cannot own {WATCHER}: {reply}")

    def stop(self) -> None:
        if self._loop is None:
            return

        async def down() -> None:
            if self._bus is not None:
                self._bus.disconnect()
                await self._bus.wait_for_disconnect()

        try:
            asyncio.run_coroutine_threadsafe(down(), self._loop).result(5)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None

    # ---- watcher behaviour
    def _on_message(self, msg: Message):
        if msg.message_type is MessageType.METHOD_CALL and msg.member == "RegisterStatusNotifierItem":
            self._caller = msg.sender
        elif msg.message_type is MessageType.SIGNAL and msg.member == "NameOwnerChanged" and msg.body \
                and not msg.body[2]:
            gone = msg.body[0]
            for item in [i for i in self.items if i.split("/", 1)[0] == gone]:
                with self._cond:
                    self.items.remove(item)
                    self.events.append(("unregistered", item, time.monotonic()))
                    self._cond.notify_all()
                self._iface.StatusNotifierItemUnregistered(item)
        return None

    def _register(self, arg: str) -> None:
        if arg.startswith("/"):
            service, path = self._caller, arg
        else:
            service, path = arg, "/StatusNotifierItem"
        item = f"{service}{path}"
        with self._cond:
            if item not in self.items:
                self.items.append(item)
            self.events.append(("registered", item, time.monotonic()))
            self._cond.notify_all()
        self._iface.StatusNotifierItemRegistered(item)
        self._iface.emit_properties_changed({"RegisteredStatusNotifierItems": list(self.items)})

    # ---- for tests
    def wait_for(self, pred, timeout: float = 10.0):
        """Wait until ``pred(self)`` is truthy; returns its value (TimeoutError when it never is)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                v = pred(self)
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"watcher: condition not met; events {self.events}")
                self._cond.wait(left)

    def wait_registration(self, after: int = 0, timeout: float = 10.0) -> str:
        """The first item registered after the first ``after`` registration events."""
        def found(w):
            regs = [e for e in w.events if e[0] == "registered"]
            return regs[after][1] if len(regs) > after else None
        return self.wait_for(found, timeout)

    def call(self, service: str, path: str, interface: str, member: str, signature: str = "",
             body: list | None = None, timeout: float = 10.0):
        """One method call from a fresh connection; returns the reply body (RuntimeError on a D-Bus error)."""
        async def go():
            bus = await MessageBus(bus_address=self.address).connect()
            try:
                reply = await asyncio.wait_for(bus.call(Message(
                    destination=service, path=path, interface=interface, member=member,
                    signature=signature, body=body or [])), timeout)
            finally:
                bus.disconnect()
            if reply.message_type is MessageType.ERROR:
                raise RuntimeError(f"{reply.error_name}: {reply.body}")
            return reply.body
        return asyncio.run_coroutine_threadsafe(go(), self._loop).result(timeout + 1)


def unwrap(v):
    """Variants (nested) to plain Python values."""
    if isinstance(v, Variant):
        return unwrap(v.value)
    if isinstance(v, list):
        return [unwrap(x) for x in v]
    if isinstance(v, dict):
        return {k: unwrap(x) for k, x in v.items()}
    return v
