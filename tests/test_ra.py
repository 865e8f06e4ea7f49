"""Router advertisements: the parser (mhgui.core.ra.parse_ra) against scapy's encoder and hostile bytes,
the envelope checks, and the router table's lifetimes (RFC 4861 sections 4.2, 4.6.2, 6.1.2, 6.3.4)."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mhgui.core import ra as core
from mhgui.core.ra import (
    INFINITY,
    Advert,
    PrefixInfo,
    RAError,
    RouterAdvertisement,
    RouterTable,
)

scapy_inet6 = pytest.importorskip("scapy.layers.inet6")

# --------------------------------------------------------------------------- building RAs with scapy

lifetimes = st.one_of(st.just(0), st.just(INFINITY), st.integers(1, 2**32 - 1))
pio_st = st.builds(
    dict,
    prefixlen=st.integers(0, 128),
    prefix=st.integers(0, 2**128 - 1),
    L=st.booleans(), A=st.booleans(),
    valid=lifetimes, preferred=lifetimes,
)
option_st = st.one_of(
    pio_st.map(lambda d: ("pio", d)),
    st.binary(min_size=6, max_size=6).map(lambda mac: ("sll", mac)),
    st.integers(0, 2**32 - 1).map(lambda mtu: ("mtu", mtu)),
    st.tuples(st.sampled_from([2, 4, 24, 25, 31, 200]), st.integers(1, 4)).map(lambda t: ("other", t)),
)
ra_st = st.builds(
    dict,
    chlim=st.integers(0, 255), M=st.booleans(), O=st.booleans(), prf=st.integers(0, 3),
    lifetime=st.integers(0, 65535), reachable=st.integers(0, 2**32 - 1), retrans=st.integers(0, 2**32 - 1),
    options=st.lists(option_st, max_size=8),
)


def _scapy_ra(spec: dict) -> bytes:
    s = scapy_inet6
    pkt = s.ICMPv6ND_RA(cksum=0, chlim=spec["chlim"], M=int(spec["M"]), O=int(spec["O"]), prf=spec["prf"],
                        routerlifetime=spec["lifetime"], reachabletime=spec["reachable"],
                        retranstimer=spec["retrans"])
    for kind, value in spec["options"]:
        if kind == "pio":
            prefix = str(ipaddress.IPv6Address(value["prefix"]))
            pkt = pkt / s.ICMPv6NDOptPrefixInfo(prefixlen=value["prefixlen"], L=int(value["L"]), A=int(value["A"]),
                                                validlifetime=value["valid"], preferredlifetime=value["preferred"],
                                                prefix=prefix)
        elif kind == "sll":
            pkt = pkt / s.ICMPv6NDOptSrcLLAddr(lladdr=":".join(f"{b:02x}" for b in value))
        elif kind == "mtu":
            pkt = pkt / s.ICMPv6NDOptMTU(mtu=value)
        else:
            otype, olen = value
            pkt = pkt / s.ICMPv6NDOptUnknown(type=otype, len=olen, data=b"\xab" * (olen * 8 - 2))
    return bytes(pkt)


@settings(max_examples=400, deadline=None)
@given(ra_st)
def test_parse_agrees_with_scapy(spec):
    ra = core.parse_ra(_scapy_ra(spec))
    assert (ra.cur_hop_limit, ra.managed, ra.other, ra.router_lifetime, ra.reachable_time, ra.retrans_timer) == (
        spec["chlim"], spec["M"], spec["O"], spec["lifetime"], spec["reachable"], spec["retrans"])
    assert ra.preference == {0: "medium", 1: "high", 2: "reserved", 3: "low"}[spec["prf"]]
    want = [PrefixInfo(ipaddress.IPv6Network((v["prefix"], v["prefixlen"]), strict=False), v["L"], v["A"],
                       v["valid"], v["preferred"]) for k, v in spec["options"] if k == "pio"]
    assert list(ra.prefixes) == want
    macs = [v for k, v in spec["options"] if k == "sll"]
    assert ra.source_lladdr == (macs[-1] if macs else None)
    mtus = [v for k, v in spec["options"] if k == "mtu"]
    assert ra.mtu == (mtus[-1] if mtus else None)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_raerror(data):
    try:
        ra = core.parse_ra(data)
    except RAError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert isinstance(ra, RouterAdvertisement)


@settings(max_examples=1500, deadline=None)
@given(ra_st, st.data())
def test_damaged_advertisements_parse_or_raise_raerror(spec, data):
    raw = bytearray(_scapy_ra(spec))
    how = data.draw(st.sampled_from(["cut", "flip", "zero-length", "grow"]))
    if how == "cut":
        raw = raw[:data.draw(st.integers(0, len(raw)))]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= data.draw(st.integers(1, 255))
    elif how == "zero-length" and len(raw) > 16:
        raw[17] = 0  # the first option's length
    else:
        raw += data.draw(st.binary(min_size=1, max_size=40))
    try:
        core.parse_ra(bytes(raw))
    except RAError as e:
        assert str(e) and "\n" not in str(e)


RA_HEAD = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)


def _pio(prefix: str, plen: int, valid: int = 86400, preferred: int = 14400, flags: int = 0xC0,
         length: int = 4) -> bytes:
    body = struct.pack("!BBBBII4x", 3, length, plen, flags, valid, preferred) + ipaddress.IPv6Address(prefix).packed
    return body + b"\0" * max(0, length * 8 - len(body))


@pytest.mark.parametrize("data,words", [
    (b"", "at least 16 bytes"),
    (RA_HEAD[:15], "at least 16 bytes"),
    (struct.pack("!BB", 135, 0) + RA_HEAD[2:], "not a router advertisement"),
    (struct.pack("!BB", 134, 1) + RA_HEAD[2:], "code 0"),
    (RA_HEAD + b"\x03", "cut short"),
    (RA_HEAD + b"\x01\x00" + b"\0" * 6, "length 0"),
    (RA_HEAD + b"\x03\x05" + b"\0" * 30, "claims 40 bytes"),
    (RA_HEAD + _pio("2001:db8::", 64, length=3)[:24], "length 3, not 4"),
    (RA_HEAD + _pio("2001:db8::", 129), "prefix length 129"),
    (RA_HEAD + b"\x05\x02" + b"\0" * 14, "MTU option"),
    ("not bytes", "bytes, not str"),
])
def test_malformed_advertisements_are_refused_with_the_reason(data, words):
    with pytest.raises(RAError) as e:
        core.parse_ra(data)  # type: ignore[arg-type]
    assert words in str(e.value)


def test_prefix_bits_beyond_the_length_are_ignored():
    ra = core.parse_ra(RA_HEAD + _pio("2001:db8:1:2::ff", 48))
    assert ra.prefixes[0].prefix == ipaddress.IPv6Network("2001:db8:1::/48")


@pytest.mark.parametrize("source,hop,words", [
    ("fe80::1", 254, "hop limit 254"),
    ("fe80::1", None, "hop limit None"),
    ("2001:db8::1", 255, "not link-local"),
    ("::", 255, "not link-local"),
    ("not an address", 255, "not an IPv6 address"),
    (None, 255, "not an IPv6 address"),
])
def test_envelope_checks(source, hop, words):
    with pytest.raises(RAError) as e:
        core.check_envelope(source, hop)
    assert words in str(e.value)


def test_envelope_accepts_a_link_local_source_with_zone():
    assert core.check_envelope("fe80::1%eth0", 255) == ipaddress.IPv6Address("fe80::1")


def test_router_solicitation_bytes():
    assert core.router_solicitation() == bytes([133, 0, 0, 0, 0, 0, 0, 0])


# --------------------------------------------------------------------------- the table


def _ra(lifetime: int = 1800, *prefixes: tuple[str, int, int]) -> RouterAdvertisement:
    return RouterAdvertisement(64, False, False, "medium", lifetime, 0, 0, tuple(
        PrefixInfo(ipaddress.IPv6Network(p), True, True, valid, preferred) for p, valid, preferred in prefixes))


def test_table_records_each_routers_prefixes_and_lifetimes():
    t = RouterTable()
    assert t.feed(100.0, 2, "fe80::1", _ra(1800, ("2001:db8:1::/64", 600, 300)))
    assert t.feed(100.0, 2, "fe80::2", _ra(1800, ("2001:db8:2::/64", INFINITY, INFINITY)))
    assert t.adverts(100.0) == (Advert(2, "fe80::1", "2001:db8:1::/64", True),
                                Advert(2, "fe80::2", "2001:db8:2::/64", True))
    # the same advertisement again changes nothing
    assert not t.feed(150.0, 2, "fe80::1", _ra(1800, ("2001:db8:1::/64", 600, 300)))
    assert t.next_expiry(150.0) == 750.0
    # the prefix runs out at 750; the router stays a default router until 1950
    assert t.expire(751.0)
    assert t.adverts(751.0) == (Advert(2, "fe80::2", "2001:db8:2::/64", True),)
    assert t.next_expiry(751.0) == 1900.0  # fe80::2's router lifetime (its prefix never ends)
    assert not t.expire(800.0)


def test_table_router_lifetime_zero_and_withdrawn_prefixes():
    t = RouterTable()
    t.feed(0.0, 3, "fe80::1", _ra(1800, ("2001:db8:1::/64", 600, 300), ("2001:db8:9::/64", 600, 300)))
    # router lifetime 0: no longer a default router, its prefixes still hold
    assert t.feed(1.0, 3, "fe80::1", _ra(0))
    assert {a.default_router for a in t.adverts(1.0)} == {False}
    # valid lifetime 0 withdraws that prefix of that router
    assert t.feed(2.0, 3, "fe80::1", _ra(0, ("2001:db8:9::/64", 0, 0)))
    assert [a.prefix for a in t.adverts(2.0)] == ["2001:db8:1::/64"]
    # a link-local prefix and a preferred lifetime above the valid one are ignored (RFC 4862 5.5.3)
    assert not t.feed(3.0, 3, "fe80::1", _ra(0, ("fe80::/64", 600, 300), ("2001:db8:7::/64", 100, 200)))
    assert t.forget_link(3) and t.adverts(3.0) == ()


def test_table_is_bounded():
    t = RouterTable()
    for i in range(core.MAX_ROUTERS_PER_LINK + 5):
        t.feed(0.0, 1, f"fe80::{i + 1:x}", _ra(1800, ("2001:db8::/64", 600, 300)))
    assert len({a.router for a in t.adverts(0.0)}) == core.MAX_ROUTERS_PER_LINK and t.refused == 5
    t.feed(0.0, 2, "fe80::1", _ra(1800, *((f"2001:db8:{i:x}::/64", 600, 300)
                                          for i in range(core.MAX_PREFIXES_PER_ROUTER + 3))))
    assert len([a for a in t.adverts(0.0) if a.ifindex == 2]) == core.MAX_PREFIXES_PER_ROUTER


event_st = st.tuples(
    st.floats(0, 1000, allow_nan=False),  # time step
    st.integers(1, 3),  # ifindex
    st.integers(1, 4),  # router
    st.sampled_from([0, 1, 30, 1800, 65535]),  # router lifetime
    st.lists(st.tuples(st.integers(0, 5), st.sampled_from([0, 1, 10, 600, INFINITY]),
                       st.sampled_from([0, 1, 10, 600, INFINITY])), max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(event_st, max_size=30))
def test_table_against_a_reference_model(events):
    """What holds is exactly what the last advertisement of each router said and has not run out."""
    t = RouterTable()
    ref: dict[tuple[int, str], tuple[float, dict[str, float]]] = {}
    now = 0.0
    last: tuple = ()
    for step, ifindex, r, lifetime, prefixes in events:
        now += step
        router = f"fe80::{r}"
        ra = _ra(lifetime, *((f"2001:db8:{p}::/64", v, pr) for p, v, pr in prefixes))
        changed = t.feed(now, ifindex, router, ra)
        until, pfx = ref.get((ifindex, router), (-1.0, {}))
        pfx = {k: v for k, v in pfx.items() if v > now}
        until = (float("inf") if lifetime == INFINITY else now + lifetime) if lifetime else -1.0
        for p, valid, preferred in prefixes:
            key = str(ipaddress.IPv6Network(f"2001:db8:{p}::/64"))
            if preferred > valid:
                continue
            if valid == 0:
                pfx.pop(key, None)
            else:
                pfx[key] = float("inf") if valid == INFINITY else now + valid
        ref[(ifindex, router)] = (until, pfx)
        want = tuple(sorted(Advert(i, rt, p, u > now) for (i, rt), (u, ps) in ref.items()
                            for p, v in ps.items() if v > now))
        got = t.adverts(now)
        assert got == want
        assert changed == (got != last)
        last = got
        nxt = t.next_expiry(now)
        assert nxt is None or nxt > now
