"""Traffic selectors as JSON (the control API and ``mhctl flow-bindings``), checked: pure, no I/O.

A selector object has the keys of :class:`~mhgui.engine.selectors.TrafficSelector`
(``source_address``, ``destination_address``, ``spi``, ``flow_label``,
``source_port``, ``destination_port``, ``traffic_class``, ``next_header``); each
value is one value or a ``[start, end]`` pair. As in RFC 6088 the flow is written
the way the home agent sees it: ``source_*`` is the correspondent, ``destination_*``
the home address. ``protocol`` ("tcp", "udp", "icmpv6" or a number) may stand
for ``next_header``.
"""

from __future__ import annotations

import json

from .selectors import TrafficSelector

__all__ = ["MAX_SELECTOR_JSON", "selector_from_json", "selector_to_json"]

MAX_SELECTOR_JSON = 2048  # characters: a selector is far shorter
_PROTOCOLS = {"tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132, "dccp": 33, "udplite": 136}
_KEYS = ("source_address", "destination_address", "spi", "flow_label", "source_port", "destination_port",
         "traffic_class", "next_header")


def selector_from_json(text_or_obj) -> TrafficSelector:
    """A :class:`TrafficSelector` from JSON text or an already-parsed dict. ValueError (one sentence) when
    the text is not JSON, a key is unknown, a value has the wrong type or range, or the selector could
    never match a packet."""
    obj = text_or_obj
    if isinstance(obj, str):
        if len(obj) > MAX_SELECTOR_JSON:
            raise ValueError(f"selector longer than {MAX_SELECTOR_JSON} characters")
        try:
            obj = json.loads(obj)
        except ValueError as e:
            raise ValueError(f"selector is not JSON: {e}") from None
        except RecursionError:
            raise ValueError("selector is nested too deeply") from None
    if not isinstance(obj, dict):
        raise ValueError("selector must be a JSON object")
    fields = {}
    for k, v in obj.items():
        if k == "protocol":
            if isinstance(v, str):
                if v.lower() not in _PROTOCOLS:
                    raise ValueError(f"protocol {v!r}: one of {', '.join(_PROTOCOLS)} or a number")
                v = _PROTOCOLS[v.lower()]
            if "next_header" in obj:
                raise ValueError("give protocol or next_header, not both")
            k = "next_header"
        elif k not in _KEYS:
            raise ValueError(f"unknown selector key {k!r} (known: protocol, {', '.join(_KEYS)})")
        if v is None:
            raise ValueError(f"{k}: null is not a value (leave the key out to match any)")
        if isinstance(v, list):
            if len(v) != 2:
                raise ValueError(f"{k}: a value or a [start, end] pair")
            v = tuple(v)
        fields[k] = v
    if not fields:
        raise ValueError("an empty selector matches every packet: name at least one field")
    return TrafficSelector(**fields)


def selector_to_json(ts: TrafficSelector) -> dict:
    """The JSON object for ``ts`` (single values where start equals end)."""
    out = {}
    for k in _KEYS:
        v = getattr(ts, k)
        if v is not None:
            out[k] = v[0] if v[0] == v[1] else [v[0], v[1]]
    return out
