"""Issue 13.6: modems in ``mhctl status`` (the status picture shared with the window).

- An IPv4-only interface (a modem on an IPv4-only APN, typically) says on its row what it gives: an
  IPv4 care-of address where the daemon takes them (mhgui's engine, RFC 5555), otherwise why none
  (UMIP takes IPv6 care-of addresses only; no daemon). Property-based over the addresses of the link.
- A modem whose data interface does not exist yet (NetworkManager: a modem device with no
  ``IpInterface``, its bearer not connected) is listed with that state.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mhgui.core.capabilities import NO_DAEMON, DaemonCapabilities
from mhgui.core.model import Address, Interface, InterfaceKind as K
from mhgui.core.report import render_text, status
from mhgui.core.state import AddressUpsert, LinkUpsert, NmDevice, StateStore

ENGINE = DaemonCapabilities(name="engine", connected=True, per_hoa_choice=True, runtime_rebind=True, failover=True,
                            ipv4_coas=True)
UMIP = DaemonCapabilities(name="umip", connected=True, failover=True)
CAPS = {"engine": ENGINE, "umip": UMIP, "none": NO_DAEMON}

V4 = {"carrier-grade NAT": ("100.64.3.7", 10, 0), "private": ("10.64.1.5", 30, 0), "public": ("8.8.4.9", 24, 0),
      "link-local": ("169.254.3.3", 16, 0), "host scope": ("10.9.9.9", 8, 254)}
V6 = {"global": ("2001:db8:5::9", 64), "ula": ("fd00:5::9", 64), "link-local": ("fe80::9", 64)}


def modem_store(kind=K.WWAN, up=True) -> StateStore:
    store = StateStore()
    store.apply(LinkUpsert(Interface(5, "wwan0", kind, admin_up=up, oper_up=up, carrier=up,
                                     operstate="up" if up else "down")))
    return store


@settings(max_examples=200, deadline=None)
@given(st.sets(st.sampled_from(sorted(V4))), st.sets(st.sampled_from(sorted(V6))), st.sampled_from(sorted(CAPS)),
       st.sampled_from([K.WWAN, K.ETHERNET, K.VIRTUAL]), st.booleans())
def test_an_ipv4_only_link_says_what_it_gives(v4, v6, daemon, kind, up):
    store = modem_store(kind, up)
    for name in v4:
        a, plen, scope = V4[name]
        store.apply(AddressUpsert(Address(5, a, plen, family=2, scope=scope)))
    for name in v6:
        store.apply(AddressUpsert(Address(5, *V6[name])))
    caps = CAPS[daemon]
    s = status(store, 0.0, caps=caps)
    row = s["interfaces"][0]
    usable_v4 = [V4[n][0] for n in sorted(v4) if n not in ("link-local", "host scope")]
    ipv4_only = up and kind is not K.VIRTUAL and bool(usable_v4) and not (v6 & {"global", "ula"})
    assert (row["note"] is not None) == ipv4_only, row
    if not ipv4_only:
        return
    assert row["note"].startswith("IPv4-only " + ("modem " if kind is K.WWAN else "") + "link")
    counted = [a for a in row["addresses"] if a["role"] == "coa"]
    if daemon == "engine":
        # the engine registers it: a CoA, counted in z and x
        assert counted and "care-of address (engine, RFC 5555)" in row["note"]
        assert s["taxonomy"]["care_of_addresses"] == len(usable_v4) and s["taxonomy"]["interfaces"] == 1
    else:
        assert not counted and "no " in row["note"] and "RFC 5555" in row["note"]
        assert ("umip takes IPv6 care-of addresses only" in row["note"]) == (daemon == "umip")
        assert ("no mobility daemon connected" in row["note"]) == (daemon == "none")
        assert s["taxonomy"]["care_of_addresses"] == 0
    assert row["note"] in render_text(s)


def test_a_modem_without_a_data_interface_is_listed_with_that_state():
    store = StateStore()
    store.apply(NmDevice("/org/freedesktop/NetworkManager/Devices/7", 0, "cdc-wdm0", K.WWAN, 30, managed=True))
    s = status(store, 0.0)
    assert s["modems"] == [{
        "name": "cdc-wdm0", "path": "/org/freedesktop/NetworkManager/Devices/7", "networkmanager_state": 30,
        "state": "no data interface yet: not connected (NetworkManager: disconnected)",
        "data_interface": None, "ifindex": None}]
    assert "modem cdc-wdm0 (wwan): no data interface yet: not connected (NetworkManager: disconnected)" \
        in render_text(s)
    # connected: the bearer's data interface exists, the modem is its row
    store.apply(LinkUpsert(Interface(5, "wwan0", K.WWAN, admin_up=True, oper_up=True, carrier=True, operstate="up")))
    store.apply(NmDevice("/org/freedesktop/NetworkManager/Devices/7", 5, "cdc-wdm0", K.WWAN, 100, managed=True,
                         ip_interface="wwan0"))
    s = status(store, 0.0)
    assert s["modems"][0]["data_interface"] == "wwan0" and s["modems"][0]["ifindex"] == 5
    assert "NetworkManager: activated" in s["modems"][0]["state"]
    assert "modem cdc-wdm0" not in render_text(s)
    # NetworkManager knows it, the kernel not (yet)
    store.apply(NmDevice("/org/freedesktop/NetworkManager/Devices/8", 0, "cdc-wdm1", K.WWAN, 70, managed=True,
                         ip_interface="wwan1"))
    row = next(m for m in status(store, 0.0)["modems"] if m["name"] == "cdc-wdm1")
    assert row["state"].startswith("data interface wwan1 not seen by the kernel")
