"""Flows: the pure rules (ids, placement, diff), the sock_diag decoder, owner look-up, and the
real kernel in network namespaces (TCP and UDP between a node and a peer, a HoA-local flow,
``mhctl flows --json``)."""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mhgui.core.analysis import analyse
from mhgui.core.bindings import Binding, BindingState
from mhgui.core.flows import (
    Classifier, Flow, FlowTable, classify, diff, flow_id, flow_json, format_endpoint, make_flow, tcp_state_name,
)
from mhgui.core.model import Address, AddressFlag, HomeAddress, Interface, InterfaceKind, NodeState
from mhgui.core.state import HomeAddressesSet, StateStore
from mhgui.sources import flows as flows_mod
from mhgui.sources.flows import FlowSource, ProcessResolver, parse_inet_diag, read_flows
from mhgui.sources.netlink import NetlinkSource
from netns import lab  # noqa: F401  (fixture)

NOW = 100.0
HOA = "2001:db8:1::100"
COA = "2001:db8:2::10"
PEER6 = "2001:db8:2::1"
NODE4, PEER4 = "192.0.2.10", "192.0.2.1"


# --------------------------------------------------------------------------- pure: ids, diff
def f(local="2001:db8:2::10", lport=40000, remote="2001:db8:9::1", rport=443, state="ESTAB", proto="tcp",
      family=10, **kw) -> Flow:
    return Flow(proto, family, local, lport, remote, rport, state, **kw)


def test_flow_id_is_protocol_and_five_tuple():
    a = f()
    assert a.id == "tcp [2001:db8:2::10]:40000 [2001:db8:9::1]:443"
    assert f(proto="udp").id != a.id
    assert f(rport=444).id != a.id and f(lport=40001).id != a.id
    # owner, state, inode do not change the identity
    assert f(pid=7, process="curl", state="FIN-WAIT-1", inode=99).id == a.id
    assert Flow("udp", 2, "192.0.2.10", 53, "0.0.0.0", 0, "UNCONN").id == "udp 192.0.2.10:53 0.0.0.0:0"
    # bound to an interface (a link-local scope, SO_BINDTODEVICE): the interface is part of the identity
    assert f(local="fe80::1", bound_ifindex=3).id == "tcp [fe80::1%3]:40000 [2001:db8:9::1]:443"
    assert f(tag="1f").id.endswith(" #1f")
    assert flow_id("tcp", "::1", 1, "::1", 2) == "tcp [::1]:1 [::1]:2"
    assert format_endpoint("192.0.2.1", 80, 2) == "192.0.2.1%2:80"


def test_state_names_follow_ss():
    assert [tcp_state_name(n) for n in (1, 6, 7, 10)] == ["ESTAB", "TIME-WAIT", "UNCONN", "LISTEN"]
    assert tcp_state_name(99) == "state-99"


def test_diff_reports_added_removed_changed():
    a, b, c = f(lport=1), f(lport=2), f(lport=3)
    old = {x.id: x for x in (a, b, c)}
    b2 = f(lport=2, state="CLOSE-WAIT")
    d = f(lport=4)
    new = {x.id: x for x in (a, b2, d)}
    assert diff(old, new) == ([d.id], [c.id], [b.id])
    assert diff(old, dict(old)) == ([], [], [])
    # an equal flow object (a new poll with the same content) is not a change
    assert diff(old, {x.id: f(lport=x.local_port) for x in (a, b, c)}) == ([], [], [])


# --------------------------------------------------------------------------- pure: placement
def node(bound_coas=(), hoas=(HomeAddress(HOA, 64, "2001:db8:1::1"),)) -> tuple[NodeState, object]:
    st_ = NodeState()
    st_.interfaces = {
        1: Interface(1, "lo", InterfaceKind.LOOPBACK, True, True, True, "unknown"),
        2: Interface(2, "eth0", InterfaceKind.ETHERNET, True, True, True, "up"),
        3: Interface(3, "wlan0", InterfaceKind.WIFI, True, True, True, "up"),
        4: Interface(4, "ip6tnl1", InterfaceKind.TUNNEL, True, True, True, "unknown"),
    }
    for a in (Address(1, "::1", 128, scope=254), Address(1, "127.0.0.1", 8, family=2, scope=254),
              Address(2, COA, 64), Address(2, "fe80::1", 64, scope=253), Address(2, NODE4, 24, family=2),
              Address(3, "2001:db8:3::10", 64), Address(3, "fe80::1", 64, scope=253),
              Address(4, HOA, 128, flags=AddressFlag.HOMEADDRESS)):
        st_.addresses[a.key] = a
    st_.home_addresses = tuple(hoas)
    st_.bound_coas = frozenset(bound_coas)
    return st_, analyse(st_, NOW)


def bul(coa, state=BindingState.REGISTERED, hoa=HOA, **kw) -> Binding:
    return Binding(hoa=hoa, coa=coa, peer="2001:db8:1::1", state=state, flags=("A", "H"), source="bul", **kw)


def test_hoa_flow_is_transparent_on_the_interface_of_its_bound_coa():
    s, an = node()
    p = classify(f(local=HOA), s, an, [bul("2001:db8:3::10")])
    assert (p.ifindex, p.interface, p.local_role, p.movable) == (3, "wlan0", "hoa", "transparent")
    assert "2001:db8:3::10" in p.reason and "registered" in p.reason
    # waiting for its acknowledgement still places it
    p = classify(f(local=HOA), s, an, [bul(COA, BindingState.WAITING_ACK)])
    assert (p.interface, p.movable) == ("eth0", "transparent")
    # a registered binding wins over one waiting; the CoA's text form does not matter
    p = classify(f(local=HOA), s, an, [bul(COA, BindingState.WAITING_ACK), bul("2001:DB8:3:0:0:0:0:10")])
    assert p.interface == "wlan0" and "1 other binding" in p.reason


def test_hoa_without_a_live_binding_has_an_unknown_interface():
    s, an = node()
    for bindings in ([], [bul(COA, BindingState.EXPIRED)], [bul(COA, BindingState.ERROR)],
                     [bul(HOA)],  # CoA == HoA: a de-registration
                     [Binding(HOA, COA, state=BindingState.REGISTERED, source="bc")],  # an HA's cache entry
                     [bul("not an address")]):  # malformed daemon output
        p = classify(f(local=HOA), s, an, bindings)
        assert (p.ifindex, p.interface, p.local_role, p.movable) == (None, None, "hoa", "transparent"), bindings
        assert "unknown" in p.reason


def test_hoa_binding_whose_coa_is_not_in_the_live_model_uses_the_daemons_interface_name():
    s, an = node()
    p = classify(f(local=HOA), s, an, [bul("2001:db8:77::1", interface="wlan0")])
    assert (p.ifindex, p.interface) == (3, "wlan0")
    p = classify(f(local=HOA), s, an, [bul("2001:db8:77::1", interface="ppp9")])
    assert (p.ifindex, p.interface, p.movable) == (None, "ppp9", "transparent")


def test_hoa_at_home_is_on_its_home_link():
    s, _ = node()
    s.addresses[Address(3, "2001:db8:1::5", 64).key] = Address(3, "2001:db8:1::5", 64)  # wlan0 is on the home link
    an = analyse(s, NOW)
    p = classify(f(local=HOA), s, an, [])
    assert (p.interface, p.local_role, p.movable) == ("wlan0", "hoa", "transparent")
    assert "at home" in p.reason


def test_hoa_is_recognised_by_its_kernel_flag_alone():
    s, _ = node(hoas=())
    an = analyse(s, NOW)
    assert classify(f(local=HOA), s, an, [bul(COA)]).local_role == "hoa"


def test_coa_and_other_addresses_move_only_by_re_establishing():
    s, an = node()
    p = classify(f(local=COA), s, an)
    assert (p.ifindex, p.interface, p.local_role, p.movable) == (2, "eth0", "coa", "re-establish")
    p = classify(f(local=NODE4, family=2, remote="198.51.100.1"), s, an)
    assert (p.interface, p.local_role, p.movable) == ("eth0", "other", "re-establish")
    # a dual-stack socket talking IPv4 shows an IPv4-mapped address: the IPv4 address's interface
    p = classify(f(local="::ffff:192.0.2.10", remote="::ffff:198.51.100.1"), s, an)
    assert (p.interface, p.local_role) == ("eth0", "other")
    # an address that left every interface
    p = classify(f(local="2001:db8:66::1"), s, an)
    assert (p.ifindex, p.local_role, p.movable) == (None, "other", "re-establish")
    assert "no longer" in p.reason


def test_link_local_and_loopback_are_not_movable():
    s, an = node()
    p = classify(f(local="fe80::1", remote="fe80::2", bound_ifindex=3), s, an)
    assert (p.ifindex, p.interface, p.local_role, p.movable) == (3, "wlan0", "other", "no")  # its scope, not eth0
    p = classify(f(local="::1", remote="::1"), s, an)
    assert (p.interface, p.movable) == ("lo", "no") and "loopback" in p.reason
    p = classify(f(local="127.0.0.53", family=2, remote="127.0.0.1"), s, an)
    assert (p.interface, p.movable) == ("lo", "no")
    p = classify(f(local="169.254.3.4", family=2, remote="169.254.3.5"), s, an)
    assert p.movable == "no" and "link-local" in p.reason


def test_unspecified_local_address_says_listening_or_unconnected():
    s, an = node()
    p = classify(f(local="::", remote="::", rport=0, state="LISTEN"), s, an)
    assert (p.ifindex, p.interface, p.movable) == (None, None, "no") and "listening" in p.reason
    p = classify(f(local="0.0.0.0", family=2, remote="0.0.0.0", rport=0, state="UNCONN", proto="udp"), s, an)
    assert p.movable == "no" and "not connected" in p.reason and "every address" in p.reason
    p = classify(f(local="0.0.0.0", family=2, remote="0.0.0.0", rport=0, state="UNCONN", bound_ifindex=2), s, an)
    assert p.interface == "eth0" and "bound to eth0" in p.reason
    p = classify(f(local="ff02::fb", remote="::", rport=0, state="UNCONN", proto="udp"), s, an)
    assert p.movable == "no" and "multicast" in p.reason


def test_malformed_local_address_is_not_an_exception():
    s, an = node()
    p = classify(f(local="bogus%%"), s, an)
    assert (p.ifindex, p.movable) == (None, "no")


addresses = st.one_of(st.ip_addresses().map(str), st.sampled_from([HOA, COA, "::1", "fe80::1", "::", "0.0.0.0",
                                                                    "::ffff:192.0.2.10", NODE4]), st.text(max_size=8))


@settings(max_examples=300, deadline=None)
@given(local=addresses, bound=st.integers(0, 6), state=st.sampled_from(["ESTAB", "LISTEN", "UNCONN", "TIME-WAIT"]),
       coa=addresses, bstate=st.sampled_from(list(BindingState)), iface=st.one_of(st.none(), st.text(max_size=5)))
def test_placement_is_always_one_of_the_documented_values(local, bound, state, coa, bstate, iface):
    s, an = node()
    b = Binding(HOA, coa, state=bstate, interface=iface, source="bul")
    p = classify(f(local=local, bound_ifindex=bound, state=state), s, an, [b])
    assert p.local_role in ("hoa", "coa", "other") and p.movable in ("transparent", "re-establish", "no")
    assert p.reason and (p.ifindex is None or p.ifindex in s.interfaces or p.ifindex == bound)
    closing = state == "TIME-WAIT"  # a closing TCP connection has nothing left to move
    assert (p.movable == "transparent") == (p.local_role == "hoa" and not closing)
    if closing:
        assert p.movable == "no"


def test_classifier_reuses_one_answer_per_local_address():
    s, an = node()
    c = Classifier(s, an, [])
    a, b = c.classify(f(lport=1)), c.classify(f(lport=2, remote="2001:db8:5::5"))
    assert a is b


flow_st = st.builds(
    lambda proto, local, lport, remote, rport, state, bound: f(
        local=local, lport=lport, remote=remote, rport=rport, state=state, proto=proto, bound_ifindex=bound,
        family=10 if ":" in local else 2),
    st.sampled_from(["tcp", "udp"]), st.sampled_from([HOA, COA, "::", "0.0.0.0", "::1", "fe80::1", NODE4, "ff02::fb"]),
    st.integers(0, 3), st.sampled_from(["::", PEER6, PEER4]), st.integers(0, 3),
    st.sampled_from(["ESTAB", "LISTEN", "UNCONN", "TIME-WAIT", "CLOSE-WAIT", "SYN-SENT"]), st.integers(0, 3))


@settings(max_examples=300, deadline=None)
@given(st.lists(flow_st, max_size=20), st.sampled_from([(), (COA,)]), st.booleans())
def test_one_classifier_answers_as_a_fresh_one_and_says_which_answers_changed(flows, bound, with_binding):
    """The classifier's remembered answers never change an answer (a TCP LISTEN and a UDP UNCONN socket on
    one unspecified address used to share one); changed_keys covers every flow whose placement changed."""
    s, an = node()
    bindings = [bul(COA)] if with_binding else []
    one = Classifier(s, an, bindings)
    for x in flows:
        assert one.classify(x) == classify(x, s, an, bindings)
    s2, an2 = node(bound_coas=bound)
    other = Classifier(s2, an2, [bul("2001:db8:3::10")])
    keys = other.changed_keys(one)
    for x in flows:
        if other.classify(x) != one.classify(x):
            assert Classifier.key(x) in keys


def test_listening_and_unconnected_on_one_address_read_differently():
    s, an = node()
    c = Classifier(s, an)
    tcp = c.classify(f(local="::", remote="::", rport=0, state="LISTEN"))
    udp = c.classify(f(local="::", remote="::", rport=0, state="UNCONN", proto="udp"))
    assert "listening" in tcp.reason and "not connected" in udp.reason


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["tcp", "udp"]), st.sampled_from([2, 10]), st.ip_addresses().map(str), st.integers(0, 65535),
       st.ip_addresses().map(str), st.integers(0, 65535), st.sampled_from(["ESTAB", "TIME-WAIT", "state-99"]),
       st.integers(0, 2 ** 32 - 1), st.integers(0, 2 ** 32 - 1), st.one_of(st.none(), st.integers(1, 2 ** 22)),
       st.one_of(st.none(), st.text(max_size=15)), st.integers(0, 2 ** 31), st.integers(0, 2 ** 64 - 1))
def test_make_flow_is_flow(proto, family, local, lport, remote, rport, state, inode, uid, pid, process, bound,
                           cookie):
    args = (proto, family, local, lport, remote, rport, state, inode, uid, pid, process, bound, cookie)
    fast, slow = make_flow(*args), Flow(*args)
    assert fast == slow and fast.id == slow.id and repr(fast) == repr(slow)


def test_flow_json_has_exactly_the_documented_keys():
    s, an = node()
    fl = f(pid=None, process=None)
    j = flow_json(fl, classify(fl, s, an))
    assert set(j) == {"id", "protocol", "local", "remote", "state", "pid", "process", "interface", "local_role",
                      "movable"}
    assert j["local"] == {"address": COA, "port": 40000} and j["pid"] is None and j["process"] is None
    assert json.loads(json.dumps(j)) == j


# --------------------------------------------------------------------------- decoder
def nlmsg(body: bytes, mtype=20, seq=1, flags=2) -> bytes:
    length = 16 + len(body)
    return struct.pack("=IHHII", length, mtype, flags, seq, 0) + body + b"\0" * ((-length) % 4)


def diag(family=10, state=1, sport=40000, dport=443, src=COA, dst=PEER6, ifindex=0, cookie=7, uid=0, inode=1234,
         attrs=b"") -> bytes:
    def raw(a):
        import ipaddress
        return ipaddress.ip_address(a).packed.ljust(16, b"\0")
    return struct.pack("=BBBB2s2s16s16sIQIIIII", family, state, 0, 0, sport.to_bytes(2, "big"),
                       dport.to_bytes(2, "big"), raw(src), raw(dst), ifindex, cookie, 0, 0, 0, uid, inode) + attrs


def done(seq=1, code=0) -> bytes:
    return nlmsg(struct.pack("=i", code), mtype=3, seq=seq)


def test_decoder_reads_inet_diag_messages():
    buf = nlmsg(diag()) + nlmsg(diag(family=2, src=NODE4, dst=PEER4, state=10, attrs=b"\x05\0\x08\0\x01\0\0\0")) \
        + done()
    recs, fin, err = parse_inet_diag(buf, "tcp", 1)
    assert fin and err is None and len(recs) == 2
    fam, state, sport, dport, src, dst, ifindex, cookie, uid, inode = recs[0][1]
    assert (fam, state, sport, dport, cookie, inode) == (10, 1, 40000, 443, 7, 1234)
    fl = flows_mod.flow_from_fields("tcp", recs[1][1], (42, "sshd"))
    assert (fl.local_address, fl.remote_address, fl.state, fl.pid, fl.process) == (NODE4, PEER4, "LISTEN", 42, "sshd")
    fl = flows_mod.flow_from_fields("tcp", parse_inet_diag(nlmsg(diag(src="::ffff:192.0.2.10")), "tcp")[0][0][1],
                                    None)
    assert fl.local_address == "::ffff:192.0.2.10" and fl.pid is None  # RFC 5952 section 5 mixed notation


def test_decoder_reports_and_skips_malformed_input():
    problems: list[str] = []
    good = nlmsg(diag())
    buf = nlmsg(b"short") + good + nlmsg(diag(family=1)) + nlmsg(diag(), seq=99) + good[:40]
    recs, fin, err = parse_inet_diag(buf, "tcp", 1, problems=problems)
    assert len(recs) == 1 and not fin and err is None
    assert len(problems) == 3  # the short one, the unknown family, the truncated tail
    # a kernel error ends the dump with its errno
    assert parse_inet_diag(nlmsg(struct.pack("=i", -2) + b"\0" * 16, mtype=2), "udp", 1)[2] == 2
    assert parse_inet_diag(done(code=-22), "udp", 1)[1:] == (True, 22)
    # a length field smaller than a header does not loop forever
    assert parse_inet_diag(struct.pack("=IHHII", 4, 20, 0, 1, 0) * 3, "tcp", 1, problems=problems)[0] == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 200))
def test_decoder_never_raises_on_garbage(data, cut):
    parse_inet_diag(data, "tcp", None, problems=[])
    buf = nlmsg(diag()) + data
    parse_inet_diag(buf[:cut] + data, "tcp", 1, problems=[])


# --------------------------------------------------------------------------- owners (a fake /proc)
def fake_proc(root, procs: dict[int, tuple[str, list[int]]]):
    for pid, (comm, inodes) in procs.items():
        d = root / str(pid) / "fd"
        d.mkdir(parents=True, exist_ok=True)
        (root / str(pid) / "comm").write_bytes(comm.encode("utf-8", "surrogateescape") + b"\n")
        for n, ino in enumerate(inodes, 3):
            os.symlink(f"socket:[{ino}]", d / str(n))
        os.symlink("/dev/null", d / "0")
        os.symlink("pipe:[77]", d / "1")


def test_resolver_scans_only_for_new_inodes(tmp_path):
    proc = tmp_path / "proc"
    fake_proc(proc, {10: ("sshd", [100, 101]), 20: ("curl", [200]), 30: ("b\udcffad", [300])})
    (proc / "self").mkdir()
    r = ProcessResolver(str(proc), sandbox_marker=str(tmp_path / "absent"))
    assert r.resolve([100, 200, 0]) == {100: (10, "sshd"), 200: (20, "curl")}
    assert (r.scans, r.visibility) == (1, "full")
    r.resolve([100, 200])
    assert r.scans == 1  # nothing new: no scan
    r.resolve([100, 200, 300])
    assert r.owners[300] == (30, "b\\xffad") and r.scans == 2  # non-UTF-8 names are escaped, not dropped
    # a new socket in a process scanned before: its live sockets' descriptors are not read again
    os.symlink("socket:[102]", proc / "10" / "fd" / "5")
    assert r.resolve([100, 101, 200, 300, 102])[102] == (10, "sshd")
    assert (r.scans, r.last_scan_pids, r.last_scan_reads) == (3, 1, 3)  # fds 0, 1 and 5 of pid 10
    # a descriptor number reused after its socket closed is read again
    (proc / "10" / "fd" / "4").unlink()
    os.symlink("socket:[103]", proc / "10" / "fd" / "4")
    assert r.resolve([100, 200, 300, 102, 103])[103] == (10, "sshd") and r.scans == 4
    # an inode nobody holds (another PID namespace) is looked for once, and said so
    r.resolve([100, 999])
    assert r.scans == 5 and r.visibility == "partial" and "1 sockets have no visible owner" in r.reason
    r.resolve([100, 999])
    assert r.scans == 5
    # the owner exits: its sockets are looked for again (here: handed to pid 20)
    (proc / "10" / "fd" / "3").unlink()
    os.symlink("socket:[100]", proc / "20" / "fd" / "9")
    import shutil
    shutil.rmtree(proc / "10")
    assert r.resolve([100])[100] == (20, "curl") and r.scans == 6


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([7, 8]), st.integers(0, 4)), min_size=1, max_size=12))
def test_a_cold_scan_reads_the_namespaces_own_processes_first(procs):
    """Sockets of network namespace 8 are looked for in its processes first: the scan reads no process of
    namespace 7 (before: every process in pid order, whatever its namespace)."""
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        proc = Path(d)
        table = {}
        ino = 1000
        for i, (ns, n) in enumerate(procs):
            pid = 10 + i
            table[pid] = (f"p{pid}", list(range(ino, ino + n)))
            ino += n
        fake_proc(proc, table)
        for i, (ns, _) in enumerate(procs):
            (proc / str(10 + i) / "ns").mkdir()
            os.symlink(f"net:[{ns}]", proc / str(10 + i) / "ns" / "net")  # as /proc/PID/ns/net reads
        wanted = {x for pid, (_, inos) in table.items() for x in inos if procs[pid - 10][0] == 8}
        r = ProcessResolver(str(proc), sandbox_marker=str(proc / "absent"), netns_inode=8)
        found = r.resolve(wanted)
        assert set(found) == wanted
        in8 = sum(1 for ns, n in procs if ns == 8)
        assert r.last_scan_pids <= in8 if wanted else r.scans == 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(1, 60), max_size=8), min_size=1, max_size=10), st.data())
def test_reading_processes_in_parallel_finds_what_one_by_one_finds(procs, data):
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        proc = Path(d)
        fake_proc(proc, {10 + i: (f"p{i}", inos) for i, inos in enumerate(procs)})
        every = sorted({x for inos in procs for x in inos} | {61, 62})  # 61, 62: held by nobody
        wanted = data.draw(st.sets(st.sampled_from(every)))
        got = []
        for parallel_from in (1, 10 ** 9):
            old = flows_mod.PARALLEL_FROM
            flows_mod.PARALLEL_FROM = parallel_from
            try:
                r = ProcessResolver(str(proc), sandbox_marker=str(proc / "absent"))
                got.append((dict(r.resolve(wanted)), r.last_scan_pids, r.last_scan_reads, r.scans))
            finally:
                flows_mod.PARALLEL_FROM = old
        assert got[0] == got[1]
        first = {x: 10 + i for i, inos in reversed(list(enumerate(procs))) for x in inos}
        assert {k: v[0] for k, v in got[0][0].items()} == {x: first[x] for x in wanted if x in first}


@pytest.mark.netns
def test_a_cold_poll_of_a_namespace_reads_only_its_processes(lab):  # noqa: F811
    from socketopener import OPENER
    opener = Proc(lab.ns, OPENER, "50")
    try:
        assert opener.line(timeout=30) == "ready"
        src = FlowSource(netns=lab.ns)

        async def once():
            try:
                return await src.poll()
            finally:
                await src.stop()

        table = asyncio.run(once())
        assert sum(1 for x in table.flows.values() if x.pid == opener.pid) == 102
        assert src.resolver.last_scan_pids == 1  # the opener, the namespace's only process
    finally:
        opener.stop()


def test_resolver_says_hidden_inside_a_sandbox(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    marker = tmp_path / ".flatpak-info"
    marker.write_text("[Application]\nname=io.github.mhgui.MHGui\n")
    r = ProcessResolver(str(proc), sandbox_marker=str(marker))
    assert r.resolve([5, 6]) == {}
    assert r.visibility == "hidden" and "Flatpak" in r.reason


# --------------------------------------------------------------------------- the kernel, this namespace
def test_read_flows_sees_this_process_socket_and_both_decoders_agree():
    """No root needed: sock_diag dumps this network namespace."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        want = f"tcp [::1]:{port} [::]:0"
        t = read_flows(protocols=("tcp",), families=(10,))
        got = t.flows[want]
        assert (got.state, got.pid, got.inode) == ("LISTEN", os.getpid(), os.fstat(s.fileno()).st_ino)
        with open(f"/proc/{os.getpid()}/comm") as fh:
            assert got.process == fh.read().strip()
        p = read_flows(protocols=("tcp",), families=(10,), decoder="pyroute2")
        assert p.flows[want] == got
    t = read_flows(protocols=("tcp",), families=(10,))
    assert want not in t.flows


def test_sockets_sharing_a_five_tuple_get_distinct_ids():
    socks = []
    try:
        for _ in range(2):
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("::1", socks[0].getsockname()[1] if socks else 0))
            socks.append(s)
        base = flow_id("udp", "::1", socks[0].getsockname()[1], "::", 0)
        t = read_flows(protocols=("udp",), families=(10,))
        assert base not in t.flows
        twins = [x for k, x in t.flows.items() if k.startswith(base + " #")]
        assert len(twins) == 2 and {x.inode for x in twins} == {os.fstat(s.fileno()).st_ino for s in socks}
        assert {x.id for x in twins} == {f"{base} #{x.cookie:x}" for x in twins}
    finally:
        for s in socks:
            s.close()


def test_process_owner_unknown_and_said_so_when_proc_shows_nothing(tmp_path):
    empty = tmp_path / "proc"
    empty.mkdir()
    marker = tmp_path / ".flatpak-info"
    marker.write_text("")
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        t = read_flows(proc=str(empty), sandbox_marker=str(marker), protocols=("udp",), families=(10,))
        fl = t.flows[f"udp [::1]:{s.getsockname()[1]} [::]:0"]
        assert (fl.pid, fl.process, fl.state) == (None, None, "UNCONN")
        assert t.process_visibility == "hidden" and "Flatpak" in t.visibility_reason


@pytest.mark.asyncio
async def test_source_polls_in_its_own_thread_and_calls_back_on_the_loop(monkeypatch):
    made_in, polled_in, called_in = [], [], []
    real_init = flows_mod.SockDiag.__init__

    def init(self, *a, **kw):
        made_in.append(threading.current_thread().name)
        real_init(self, *a, **kw)

    real_dump = flows_mod.SockDiag.dump

    def dump(self, *a, **kw):
        polled_in.append(threading.current_thread().name)
        return real_dump(self, *a, **kw)

    monkeypatch.setattr(flows_mod.SockDiag, "__init__", init)
    monkeypatch.setattr(flows_mod.SockDiag, "dump", dump)
    got: list[FlowTable] = []
    loop_thread = threading.current_thread().name

    def cb(t):
        called_in.append(threading.current_thread().name)
        got.append(t)

    statuses = []
    src = FlowSource(cb, interval=0.02, protocols=("tcp",), on_status=lambda s, d: statuses.append(s))
    await src.start()
    try:
        await until(lambda: len(got) >= 3, what="three polls")
    finally:
        await src.stop()
    assert made_in and all(n.startswith("mhgui-flows") for n in made_in + polled_in)
    assert len(made_in) == 1  # one socket, kept between polls
    assert set(called_in) == {loop_thread}
    assert statuses[0] == "ok" and statuses[-1] == "stopped"
    with pytest.raises(ValueError):
        FlowSource(interval=0)


@pytest.mark.asyncio
async def test_source_reports_an_error_and_keeps_polling(monkeypatch):
    calls = []

    def broken(self, family, protocol, problems):
        calls.append(protocol)
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(flows_mod.SockDiag, "dump", broken)
    statuses = []
    tables = []
    src = FlowSource(tables.append, interval=0.02, on_status=lambda s, d: statuses.append((s, d)))
    await src.start()
    try:
        await until(lambda: len(calls) >= 8, what="two failed polls")
    finally:
        await src.stop()
    assert tables == [] and statuses[0][0] == "error" and "Invalid argument" in statuses[0][1]


def test_a_kernel_that_stops_answering_fails_the_poll_and_reopens(monkeypatch):
    def wedged(self, family, protocol, problems):
        raise TimeoutError("timed out")

    monkeypatch.setattr(flows_mod.SockDiag, "dump", wedged)
    p = flows_mod._Poller(None, "struct", ("tcp",), (10,), None)
    with pytest.raises(OSError, match="no answer"):
        p.poll(time.monotonic)
    assert p.diag is None
    monkeypatch.undo()
    t = p.poll(time.monotonic)
    assert p.diag is not None and t.process_visibility == "hidden"  # owners not looked up: said so
    p.close()


# --------------------------------------------------------------------------- the kernel, two namespaces
TCP_SERVER = r"""
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port)); s.listen(8)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    buf = b""
    while not buf.endswith(b"bye"):
        d = c.recv(100)
        if not d:
            break
        buf += d
    c.close()
"""

TCP_CLIENT = r"""
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
c = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
if len(sys.argv) > 3:
    c.bind((sys.argv[3], 0))
c.connect((addr, port))
print("connected", c.getsockname()[1], flush=True)
sys.stdin.readline()
c.sendall(b"bye")
while c.recv(100):   # the server closes first: no TIME-WAIT on this side
    pass
c.close()
print("closed", flush=True)
sys.stdin.readline()
"""

UDP_CLIENT = r"""
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
c = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
c.connect((addr, port)); c.send(b"hello")
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind(("::", 0))
print("ready", c.getsockname()[1], u.getsockname()[1], flush=True)
sys.stdin.readline()
c.close(); u.close()
print("closed", flush=True)
sys.stdin.readline()
"""


class Proc:
    """A python helper in a namespace, talked to line by line; always ended by its own pid."""

    def __init__(self, ns: str, code: str, *args: str) -> None:
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.pid = self.p.pid  # `ip netns exec` execs the command: same process

    def line(self, timeout: float = 10.0) -> str:
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            raise AssertionError(f"helper said nothing in {timeout} s; stderr: {self.stop()}")
        out = self.p.stdout.readline()
        if not out:
            raise AssertionError(f"helper ended: {self.stop()}")
        return out.strip()

    def say(self, text: str = "go") -> None:
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def stop(self) -> str:
        if self.p.poll() is None:
            self.p.terminate()
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        err = self.p.stderr.read() if self.p.stderr else ""
        for s in (self.p.stdin, self.p.stdout, self.p.stderr):
            if s:
                s.close()
        return err

    def comm(self) -> str:
        with open(f"/proc/{self.pid}/comm") as fh:
            return fh.read().strip()


async def until(pred, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def wire(lab) -> int:
    """eth0 in the node namespace ↔ p-eth0 in the peer, IPv6 and IPv4; returns eth0's ifindex."""
    eth0 = lab.uplink("eth0")
    lab.ip("-6", "addr", "add", f"{COA}/64", "dev", "eth0", "nodad")
    lab.ip("-6", "addr", "add", f"{PEER6}/64", "dev", "p-eth0", "nodad", ns=lab.peer)
    lab.ip("addr", "add", f"{NODE4}/24", "dev", "eth0")
    lab.ip("addr", "add", f"{PEER4}/24", "dev", "p-eth0", ns=lab.peer)
    return eth0


class Live:
    """The node namespace's state (netlink) and flows (sock_diag), on the test's loop."""

    def __init__(self, lab, hoas=()) -> None:
        self.store = StateStore()
        if hoas:
            self.store.apply(HomeAddressesSet(tuple(hoas)))
        self.netlink = NetlinkSource(self.store.apply, netns=lab.ns)
        self.tables: list[FlowTable] = []
        self.flows = FlowSource(self.tables.append, interval=0.05, netns=lab.ns)

    async def __aenter__(self):
        await self.netlink.start()
        await until(lambda: self.store.sources.get("netlink", ("",))[0] == "ok", what="netlink snapshot")
        await self.flows.start()
        await until(lambda: self.tables, what="first flow table")
        return self

    async def __aexit__(self, *exc):
        await self.flows.stop()
        await self.netlink.stop()

    @property
    def table(self) -> dict[str, Flow]:
        return self.tables[-1].flows

    def fresh(self) -> int:
        return len(self.tables)

    async def wait(self, pred, what: str):
        """``pred(flows)`` true on a table polled after now."""
        n = self.fresh()
        await until(lambda: len(self.tables) > n and pred(self.table), what=what)

    def place(self, flow: Flow, bindings=()):
        return classify(flow, self.store.state, analyse(self.store.state, time.monotonic()), bindings)


def one(flows: dict[str, Flow], proto: str, remote: str, rport: int) -> Flow | None:
    hits = [x for x in flows.values() if x.protocol == proto and x.remote_address == remote and x.remote_port == rport]
    assert len(hits) <= 1, hits
    return hits[0] if hits else None


@pytest.mark.netns
@pytest.mark.asyncio
@pytest.mark.parametrize("peer,local,family", [(PEER6, COA, 10), (PEER4, NODE4, 2)], ids=["ipv6", "ipv4"])
async def test_tcp_flow_appears_on_its_interface_with_its_process_and_goes_when_closed(lab, peer, local, family):  # noqa: F811
    eth0 = wire(lab)
    server = Proc(lab.peer, TCP_SERVER, peer, "5000")
    client = None
    try:
        assert server.line() == "listening"
        async with Live(lab) as live:
            client = Proc(lab.ns, TCP_CLIENT, peer, "5000")
            word, lport = client.line().split()
            assert word == "connected"
            await live.wait(lambda t: one(t, "tcp", peer, 5000) is not None, "the client's flow")
            fl = one(live.table, "tcp", peer, 5000)
            assert (fl.family, fl.local_address, fl.local_port, fl.state) == (family, local, int(lport), "ESTAB")
            assert fl.id == flow_id("tcp", local, int(lport), peer, 5000)
            assert (fl.pid, fl.process) == (client.pid, client.comm())
            assert live.tables[-1].process_visibility == "full"
            p = live.place(fl)
            assert (p.ifindex, p.interface) == (eth0, "eth0")
            want_role = "coa" if family == 10 else "other"
            assert (p.local_role, p.movable) == (want_role, "re-establish")
            client.say("close")
            assert client.line() == "closed"
            await live.wait(lambda t: one(t, "tcp", peer, 5000) is None, "the flow to go")
    finally:
        if client is not None:
            client.stop()
        server.stop()


@pytest.mark.netns
@pytest.mark.asyncio
async def test_udp_flows_connected_and_unconnected(lab):  # noqa: F811
    eth0 = wire(lab)
    async with Live(lab) as live:
        client = Proc(lab.ns, UDP_CLIENT, PEER6, "5353")
        try:
            word, cport, uport = client.line().split()
            assert word == "ready"
            await live.wait(lambda t: one(t, "udp", PEER6, 5353) is not None, "the connected UDP flow")
            fl = one(live.table, "udp", PEER6, 5353)
            assert (fl.local_address, fl.local_port, fl.state, fl.pid) == (COA, int(cport), "ESTAB", client.pid)
            p = live.place(fl)
            assert (p.interface, p.ifindex, p.local_role, p.movable) == ("eth0", eth0, "coa", "re-establish")
            unconnected = live.table[flow_id("udp", "::", int(uport), "::", 0)]
            assert (unconnected.state, unconnected.pid) == ("UNCONN", client.pid)
            p = live.place(unconnected)
            assert (p.interface, p.movable) == (None, "no") and "not connected" in p.reason
            client.say("close")
            assert client.line() == "closed"
            await live.wait(lambda t: one(t, "udp", PEER6, 5353) is None
                            and flow_id("udp", "::", int(uport), "::", 0) not in t, "the UDP flows to go")
        finally:
            client.stop()


@pytest.mark.netns
@pytest.mark.asyncio
async def test_hoa_local_flow_is_transparent_on_its_bound_coas_interface(lab):  # noqa: F811
    eth0 = wire(lab)
    # away from home: the HoA sits on a non-access interface (UMIP uses its ip6tnl tunnel; this kernel has
    # none, so lo), the peer routes the home prefix back through the node's CoA
    lab.ip("-6", "addr", "add", f"{HOA}/128", "dev", "lo", "home", "nodad")
    lab.ip("-6", "route", "add", "2001:db8:1::/64", "via", COA, ns=lab.peer)
    server = Proc(lab.peer, TCP_SERVER, PEER6, "6000")
    client = None
    try:
        assert server.line() == "listening"
        async with Live(lab, hoas=[HomeAddress(HOA, 64, "2001:db8:1::1")]) as live:
            client = Proc(lab.ns, TCP_CLIENT, PEER6, "6000", HOA)
            assert client.line().startswith("connected")
            await live.wait(lambda t: one(t, "tcp", PEER6, 6000) is not None, "the HoA flow")
            fl = one(live.table, "tcp", PEER6, 6000)
            assert (fl.local_address, fl.state, fl.pid) == (HOA, "ESTAB", client.pid)
            # with the daemon's binding: on the CoA's interface, transparent
            p = live.place(fl, [bul(COA)])
            assert (p.ifindex, p.interface, p.local_role, p.movable) == (eth0, "eth0", "hoa", "transparent")
            # without a binding: the interface is unknown, and said so
            p = live.place(fl, [])
            assert (p.interface, p.local_role, p.movable) == (None, "hoa", "transparent") and "unknown" in p.reason
            client.say("close")
            assert client.line() == "closed"
    finally:
        if client is not None:
            client.stop()
        server.stop()


@pytest.mark.netns
def test_mhctl_flows_json_shows_the_connection(lab):  # noqa: F811
    wire(lab)
    server = Proc(lab.peer, TCP_SERVER, PEER6, "7000")
    client = None
    try:
        assert server.line() == "listening"
        client = Proc(lab.ns, TCP_CLIENT, PEER6, "7000")
        lport = int(client.line().split()[1])
        cmd = ["ip", "netns", "exec", lab.ns, sys.executable, "-m", "mhgui.cli"]
        p = subprocess.run([*cmd, "flows", "--json", "--no-networkmanager"], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        hits = [x for x in out["flows"] if x["remote"] == {"address": PEER6, "port": 7000}]
        assert hits == [{
            "id": flow_id("tcp", COA, lport, PEER6, 7000), "protocol": "tcp",
            "local": {"address": COA, "port": lport}, "remote": {"address": PEER6, "port": 7000},
            "state": "ESTAB", "pid": client.pid, "process": client.comm(), "interface": "eth0",
            "local_role": "coa", "movable": "re-establish",
        }]
        for x in out["flows"]:
            assert x["protocol"] in ("tcp", "udp") and x["local_role"] in ("hoa", "coa", "other")
            assert x["movable"] in ("transparent", "re-establish", "no")
        assert out["process_visibility"] in ("full", "partial")
        # the readable table names it too
        p = subprocess.run([*cmd, "flows", "--no-networkmanager"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        line = next(x for x in p.stdout.splitlines() if f"[{PEER6}]:7000" in x)
        assert "eth0" in line and "re-establish" in line and f"[{client.pid}]" in line
    finally:
        if client is not None:
            client.stop()
        server.stop()
