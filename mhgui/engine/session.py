"""The data-session option carried in BU and BA: RFC 5094 vendor-specific mobility option (type 19).

Layout after the option's Vendor ID (0: we hold no IANA enterprise number; 0 is
reserved and never assigned) and Sub-type (1, "mhgui session")::

    version (1) = 1 | reserved (2) = 0 | nonce (16) | receiver index (u32)

The BU carries the mobile node's nonce and the index it wants data addressed
to; the BA carries the home agent's. Both sit inside the authenticated Mobility
Header (RFC 4285), so the data keys derived from them (``dataplane.derive_keys``)
are bound to the node's long-term key. See ``docs/engine-design.md``.
"""

from __future__ import annotations

import struct

from . import wire

__all__ = ["SESSION_GRACE_S", "SESSION_SUBTYPE", "VENDOR_ID", "parse_session_option", "session_option"]

VENDOR_ID = 0
SESSION_SUBTYPE = 1
SESSION_VERSION = 1
#: frames of a replaced registration still open this long (s): packets already in flight
SESSION_GRACE_S = 5.0

_BODY = struct.Struct("!BH16sI")


def session_option(nonce: bytes, index: int) -> wire.VendorSpecific:
    """The option for ``nonce`` (16 bytes) and receiver ``index`` (u32, not 0); ValueError otherwise."""
    if len(nonce) != 16 or not 0 < index <= 0xFFFFFFFF:
        raise ValueError("session option: a 16-byte nonce and an index in 1..2**32-1")
    return wire.VendorSpecific(VENDOR_ID, SESSION_SUBTYPE, _BODY.pack(SESSION_VERSION, 0, nonce, index))


def parse_session_option(opt: wire.VendorSpecific | None) -> tuple[bytes, int] | None:
    """``(nonce, index)`` from our option; None when absent, another vendor's, or malformed."""
    if opt is None or opt.vendor_id != VENDOR_ID or opt.subtype != SESSION_SUBTYPE or len(opt.data) != _BODY.size:
        return None
    version, _rsvd, nonce, index = _BODY.unpack(opt.data)
    if version != SESSION_VERSION or index == 0:
        return None
    return nonce, index
