"""What mhgui's two D-Bus services (the privileged helper, :mod:`mhgui.helper.service`, and the engine's
control API, :mod:`mhgui.engine.mn_dbus`) answer alike: the standard interfaces of their introspection
data and the first look at a call (is it ours, an ``Introspect``, a known method with the right
signature). The D-Bus specification, "Standard Interfaces" and "Message Protocol"."""

from __future__ import annotations

from typing import Mapping, Protocol, TypeVar

from dbus_fast import Message, MessageType

__all__ = ["STANDARD_INTERFACES_XML", "claim_call"]

#: the standard interfaces a service's object answers (Peer by dbus-fast itself), as introspection XML
#: lines to put before ``</node>``
STANDARD_INTERFACES_XML = """\
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect"><arg name="xml_data" type="s" direction="out"/></method>
  </interface>
  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
    <method name="GetMachineId"><arg name="machine_uuid" type="s" direction="out"/></method>
  </interface>
"""


class _HasSignature(Protocol):
    in_signature: str


M = TypeVar("M", bound=_HasSignature)


def claim_call(msg: Message, path: str, interface: str, introspection_xml: str,
               methods: Mapping[str, M]) -> M | Message | bool:
    """The first look at a message for the object ``path`` with ``interface``'s ``methods`` (by member
    name, each with its ``in_signature``): False when it is not a method call to ``path`` or is for
    another interface (Peer is answered by dbus-fast, everything else gets UnknownMethod); the reply
    to send for ``Introspect`` (``introspection_xml``), for an unknown method (``UnknownMethod``) or
    a wrong signature (``InvalidArgs``); else the method to run."""
    if msg.message_type is not MessageType.METHOD_CALL or msg.path != path:
        return False
    if msg.interface == "org.freedesktop.DBus.Introspectable" and msg.member == "Introspect":
        return Message.new_method_return(msg, "s", [introspection_xml])
    if msg.interface not in (interface, None):
        return False
    method = methods.get(msg.member or "")
    if method is None:
        return Message.new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod",
                                 f"{interface} has no method {msg.member!r}")
    if msg.signature != method.in_signature:
        return Message.new_error(
            msg, "org.freedesktop.DBus.Error.InvalidArgs",
            f"{msg.member} takes arguments of type '{method.in_signature}', not '{msg.signature}'")
    return method
