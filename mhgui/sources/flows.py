"""Flow source: the kernel's TCP and UDP socket table (``sock_diag``), with owning processes.

Each poll dumps ``SOCK_DIAG_BY_FAMILY`` for TCP and UDP over IPv4 and IPv6
(netlink(7) ``NETLINK_SOCK_DIAG``, sock_diag(7)), in one worker thread that
owns the netlink socket (a socket is used only by the thread that created it:
``../shared/domain/test-lab.md`` section 3), then hands a
:class:`~mhgui.core.flows.FlowTable` to a callback on the event loop. Nothing
blocks the loop (the GUI thread under qasync).

Decoding: pyroute2's :class:`~pyroute2.netlink.diag.DiagSocket` decodes each
message through its generic marshal at about 70 µs a socket (0.8 to 1.1 s for
15,000 sockets here), holding the GIL and so the GUI for that long on every
poll. The hot path sends the same request and decodes the fixed
``struct inet_diag_msg`` header (``include/uapi/linux/inet_diag.h``) with
:mod:`struct` instead; ``decoder="pyroute2"`` keeps DiagSocket's decoding,
and the tests check that both give the same table. pyroute2 still opens the
socket inside a named network namespace (``netns=``).

Costs at 50,000 sockets (a 2-core machine, idle): the dump and its decoding
about 0.15 s, the owners about 0.2 s (one ``readlink`` per descriptor, about
3 µs each in the kernel: each is read relative to the open ``/proc/PID/fd``
directory, not by its whole path), the flows about 0.1 s (built by
:func:`~mhgui.core.flows.make_flow`, reused from the last poll while their
socket and owner are unchanged). ``benchmarks/flows_poll.py`` measures them.

Owners: ``/proc/PID/fd/*`` links read ``socket:[INODE]``. Only inodes not
seen before start a scan; the processes that owned sockets before are
scanned first and the scan stops once every new inode is found; in a process
scanned before, only descriptors that are new or held a socket now gone are
read again; an inode that a scan could not place is not looked for again. A
cached owner is dropped when its process exits. Inside a Flatpak sandbox (``/.flatpak-info``) the
host's processes are hidden: the table says so (``process_visibility:
"hidden"``) and owners stay unknown rather than guessed.
"""

from __future__ import annotations

import array
import asyncio
import collections
import concurrent.futures
import errno
import itertools
import ipaddress
import logging
import os
import socket
import struct
import time
from typing import Callable, Iterable, Mapping

from ..core.flows import (AF_INET, AF_INET6, MHGUI_PROCESSES, Flow, FlowTable, OwnSockets, dbus_tcp_endpoints,
                          make_flow, service_endpoints, tcp_state_name)

from ..gcpause import gc_paused
from ..i18n import _, ngettext
from ..tasks import cancel_and_wait

log = logging.getLogger(__name__)

__all__ = ["FlowSource", "ProcessResolver", "SockDiag", "parse_inet_diag", "read_flows", "own_sockets"]

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_DUMP_INTR, NLM_F_DUMP = 0x1, 0x2, 0x10, 0x300
IPPROTO_TCP, IPPROTO_UDP = 6, 17
#: every TCP state, TCP_ESTABLISHED (1) to TCP_NEW_SYN_RECV (12), as ``ss -a`` asks
ALL_STATES = (1 << 13) - 1

_NLMSGHDR = struct.Struct("=IHHII")
# struct inet_diag_req_v2: family, protocol, ext, pad, states, then a zero inet_diag_sockid (48 bytes)
_REQ = struct.Struct("=BBBBI48x")
# struct inet_diag_msg: family, state, timer, retrans, sport, dport (big endian), src[16], dst[16],
# if, cookie (2 x u32, read as one u64), expires, rqueue, wqueue, uid, inode
_MSG_LEN = struct.calcsize("=BBBB2s2s16s16sIQIIIII")  # 72
# the header and the message in one: length, type, flags, seq, pid; family, state, (timer, retrans skipped),
# sport, dport (big endian, read as native and swapped by _SWAP), src, dst, if, cookie, (expires, rqueue,
# wqueue skipped), uid, inode
_WHOLE = struct.Struct("=IHHIIBB2xHH16s16sIQ12xII")
_WHOLE_LEN = _WHOLE.size  # 88
assert _WHOLE_LEN == 16 + _MSG_LEN
# an array, not a list: 65,536 int objects were 2.5 MiB of the window's memory (issue 14)
_SWAP = array.array("H", range(1 << 16))
if struct.pack("=H", 1) == b"\x01\x00":
    _SWAP.byteswap()

PROTOCOLS = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP}
#: a scan looking for this many sockets or more reads several processes at once (ProcessResolver._reads)
PARALLEL_FROM = 4096
FLATPAK_INFO = "/.flatpak-info"


# --------------------------------------------------------------------------- decoding (pure)
_addr_cache: dict[bytes, str] = {}
_ADDR_CACHE_MAX = 1 << 16


#: state number -> ``ss`` name (tcp_state_name, as a dict for the hot loop)
_TCP_STATE_NAMES = {n: tcp_state_name(n) for n in range(16)}


def _addr_text(family: int, raw: bytes) -> str:
    """RFC 5952 text of a 16-byte ``idiag_src``/``idiag_dst`` (IPv4 in the first 4 bytes; 4 bytes: IPv4),
    remembered by its bytes."""
    key = raw[:4] if family == AF_INET else raw
    s = _addr_cache.get(key)
    if s is not None:
        return s
    if family == AF_INET:
        s = str(ipaddress.IPv4Address(key))
    else:
        ip = ipaddress.IPv6Address(raw)
        mapped = ip.ipv4_mapped
        # RFC 5952 section 5: IPv4-mapped addresses in mixed notation (as ``ss`` prints them)
        s = f"::ffff:{mapped}" if mapped is not None else ip.compressed
    if len(_addr_cache) >= _ADDR_CACHE_MAX:
        _addr_cache.clear()
    _addr_cache[key] = s
    return s


def parse_inet_diag(data, protocol: str, seq: int | None = None, *, problems: list[str] | None = None,
                    out: list | None = None) -> tuple[list[tuple], bool, int | None]:
    """Decode one buffer of a ``SOCK_DIAG_BY_FAMILY`` dump.

    Returns ``(records, done, error)``: ``records`` are ``(rawkey, fields)``
    pairs where ``fields`` = (family, state, sport, dport, src, dst, if,
    cookie, uid, inode) and ``rawkey`` identifies the socket's stable content
    (everything but the timers and queue sizes: the fields themselves); ``done`` is True at
    ``NLMSG_DONE``; ``error`` is an errno from ``NLMSG_ERROR`` (None when none).
    Malformed messages (too short, a length running past the buffer, an
    unknown family) are skipped with a sentence in ``problems``; messages of
    another sequence number (a stale dump) are ignored.
    """
    mv = memoryview(data)
    n = len(mv)
    off = 0
    records = out if out is not None else []
    add = records.append
    done = False
    error = None
    hdr_unpack = _NLMSGHDR.unpack_from
    whole = _WHOLE.unpack_from
    swap = _SWAP
    while off + 16 <= n:
        if off + _WHOLE_LEN <= n:
            # header and struct inet_diag_msg at once (the usual message), checked below
            t = whole(mv, off)
            length, mtype, mseq = t[0], t[1], t[3]
        else:
            t = None
            length, mtype, _flags, mseq, _pid = hdr_unpack(mv, off)
        if length < 16 or off + length > n:
            if problems is not None:
                problems.append(f"{protocol}: malformed netlink message (length {length} at offset {off} "
                                f"of {n}): rest of the buffer skipped")
            break
        nxt = off + ((length + 3) & ~3)
        if seq is not None and mseq != seq:
            off = nxt
            continue
        if mtype == SOCK_DIAG_BY_FAMILY and length >= _WHOLE_LEN:
            family = t[5]
            if family == AF_INET6 or family == AF_INET:
                # the fields are the socket's stable content (no timers, no queue sizes): they are its key too
                fields = (family, t[6], swap[t[7]], swap[t[8]], t[9], t[10], t[11], t[12], t[13], t[14])
                add((fields, fields))
            elif problems is not None:
                problems.append(f"{protocol}: skipped a socket of address family {family}")
            off = nxt
            continue
        body = off + 16
        if mtype == NLMSG_DONE:
            done = True
            if length >= 20:
                (code,) = struct.unpack_from("=i", mv, body)
                if code < 0:
                    error = -code
            break
        if mtype == NLMSG_ERROR:
            code = struct.unpack_from("=i", mv, body)[0] if length >= 20 else -errno.EPROTO
            done = True
            if code < 0:
                error = -code
            break
        if problems is not None:
            problems.append(f"{protocol}: skipped a message of type {mtype} and length {length}")
        off = nxt
    return records, done, error


def flow_from_fields(protocol: str, fields: tuple, owner: tuple[int, str] | None) -> Flow:
    family, state, sport, dport, src, dst, ifindex, cookie, uid, inode = fields
    pid, process = owner if owner is not None else (None, None)
    return make_flow(protocol, family, _addr_text(family, src), sport, _addr_text(family, dst), dport,
                     tcp_state_name(state), inode, uid, pid, process, ifindex, cookie)


# --------------------------------------------------------------------------- the socket (blocking)
class SockDiag:
    """A ``NETLINK_SOCK_DIAG`` socket and its dumps. Blocking: use it from one thread only.

    ``netns``: a named network namespace (``/run/netns/NAME``); pyroute2
    creates the socket there. ``decoder``: ``"struct"`` (default) or
    ``"pyroute2"`` (pyroute2's DiagSocket decoding; slow, for cross-checks).
    """

    def __init__(self, netns: str | None = None, *, decoder: str = "struct", timeout: float = 5.0) -> None:
        if decoder not in ("struct", "pyroute2"):
            raise ValueError(f"unknown decoder {decoder!r}")
        self.decoder = decoder
        self._netns = netns
        self._seq = 0
        # one read is one of the kernel's dump buffers, at most 32 KiB (af_netlink.c, netlink_recvmsg caps
        # max_recvmsg_len at SKB_WITH_OVERHEAD(32768)): 64 KiB holds any; 1 MiB was 1 MiB of resident memory
        self._buf = bytearray(1 << 16)
        self._pr = None
        if decoder == "pyroute2":
            self._pr = _open_diagsocket(netns)
            self._sock = None
        elif netns is not None:
            from pyroute2 import netns as _ns
            # flags=0: a missing namespace is an error (pyroute2's default O_CREAT would make an empty one)
            self._sock = _ns.create_socket(netns=netns, family=socket.AF_NETLINK, socket_type=socket.SOCK_DGRAM,
                                           proto=NETLINK_SOCK_DIAG, flags=0)
        else:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
        if self._sock is not None:
            self._sock.settimeout(timeout)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self._sock.bind((0, 0))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._pr is not None:
            self._pr.close()
            self._pr = None

    def dump(self, family: int, protocol: str, problems: list[str]) -> list[tuple]:
        """Every socket of one (family, protocol) as ``(rawkey, fields)`` records (see :func:`parse_inet_diag`).

        An interrupted dump (``NLM_F_DUMP_INTR``: the table changed meanwhile)
        is retried twice, then kept with a note. Raises ``OSError`` when the
        kernel refuses the dump.
        """
        if self._pr is not None:
            return self._dump_pyroute2(family, protocol)
        for attempt in range(3):
            records, intr = self._dump_once(family, protocol, problems)
            if not intr:
                return records
        problems.append(f"{protocol}/{'IPv6' if family == AF_INET6 else 'IPv4'}: the table kept changing "
                        "during the dump; it may be slightly inconsistent")
        return records

    def _dump_once(self, family: int, protocol: str, problems: list[str]) -> tuple[list[tuple], bool]:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        seq = self._seq
        states = ALL_STATES if protocol == "tcp" else 0xFFFFFFFF
        req = _NLMSGHDR.pack(16 + _REQ.size, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) \
            + _REQ.pack(family, PROTOCOLS[protocol], 0, 0, states)
        self._sock.send(req)
        records: list[tuple] = []
        intr = False
        buf = self._buf
        while True:
            nbytes = self._sock.recv_into(buf)
            if nbytes == 0:
                raise OSError(errno.EPROTO, "sock_diag: empty read")
            view = memoryview(buf)[:nbytes]
            if nbytes >= 16 and _NLMSGHDR.unpack_from(view, 0)[2] & NLM_F_DUMP_INTR:
                intr = True
            _, done, err = parse_inet_diag(view, protocol, seq, problems=problems, out=records)
            view.release()
            if err is not None:
                raise OSError(err, f"sock_diag {protocol}/{'IPv6' if family == AF_INET6 else 'IPv4'}: "
                                   f"{os.strerror(err)}")
            if done:
                return records, intr

    def _dump_pyroute2(self, family: int, protocol: str) -> list[tuple]:
        from pyroute2.netlink.diag import SS_ALL
        states = SS_ALL if protocol == "tcp" else 0xFFFFFFFF
        out = []
        for m in self._pr.get_sock_stats(family=family, protocol=PROTOCOLS[protocol], states=states):
            if m.get("header", {}).get("type") != SOCK_DIAG_BY_FAMILY:
                continue
            fam = m["idiag_family"]
            src = ipaddress.ip_address(m["idiag_src"]).packed.ljust(16, b"\0")
            dst = ipaddress.ip_address(m["idiag_dst"]).packed.ljust(16, b"\0")
            fields = (fam, m["idiag_state"], m["idiag_sport"], m["idiag_dport"], src, dst, m["idiag_if"],
                      m["idiag_cookie"], m["idiag_uid"], m["idiag_inode"])
            out.append(((protocol, fields), fields))
        return out


def _open_diagsocket(netns: str | None):
    """pyroute2's DiagSocket, in ``netns`` when given (DiagSocket itself takes no netns argument)."""
    from pyroute2.netlink.diag import DiagSocket, MarshalDiag
    from pyroute2.netlink.nlsocket import NetlinkSocket

    class _DiagSocket(DiagSocket):
        def __init__(self, netns=None):
            NetlinkSocket.__init__(self, NETLINK_SOCK_DIAG, netns=netns, flags=0)
            self.set_marshal(MarshalDiag())

    ds = _DiagSocket(netns)
    ds.bind()
    return ds


# --------------------------------------------------------------------------- owners (blocking)
class ProcessResolver:
    """Socket inode → (pid, process name) from ``/proc/PID/fd`` (blocking; one thread).

    ``proc``: where procfs is mounted; ``sandbox_marker``: a file whose
    presence says the host's processes are hidden (Flatpak's ``/.flatpak-info``).
    After :meth:`resolve`, ``visibility``/``reason`` describe what could be
    seen and ``scans``/``last_scan_pids``/``last_scan_reads`` what it cost (scans
    so far; processes and descriptors read by the last one).

    ``netns_inode``: the inode of the network namespace whose sockets are
    looked for (``/proc/PID/ns/net`` reads ``net:[INODE]``); a scan reads the
    processes of that namespace before the others (a socket usually stays
    with the processes of the namespace it was made in), so a namespace's
    sockets are found without reading every descriptor of the machine.
    """

    def __init__(self, proc: str = "/proc", sandbox_marker: str = FLATPAK_INFO,
                 netns_inode: int | None = None) -> None:
        self.proc = proc
        self.sandbox_marker = sandbox_marker
        self.netns_inode = netns_inode
        self.owners: dict[int, tuple[int, str]] = {}
        self._tried: set[int] = set()
        #: pid -> {fd name: socket inode} from the last scan of that process
        self._fds: dict[int, dict[str, int]] = {}
        self._denied = 0
        self.visibility = "full"
        self.reason = ""
        self.scans = 0
        self.last_scan_pids = 0
        self.last_scan_reads = 0

    def _comm(self, pid: int) -> str:
        try:
            with open(f"{self.proc}/{pid}/comm", "rb") as f:
                raw = f.read(256)
        except OSError:
            return f"pid {pid}"
        return raw.rstrip(b"\n").decode("utf-8", "backslashreplace") or f"pid {pid}"

    def _pids(self) -> list[int]:
        try:
            names = os.listdir(self.proc)
        except OSError:
            return []
        return [int(n) for n in names if n.isdigit()]

    def resolve(self, inodes: Iterable[int]) -> dict[int, tuple[int, str]]:
        """Owners of ``inodes`` (0 = no inode, never looked for) that could be found."""
        live = {i for i in inodes if i}
        # forget sockets that are gone, and owners whose process exited
        for i in [i for i in self.owners if i not in live]:
            del self.owners[i]
        self._tried &= live
        for pid in {p for p, _ in self.owners.values()}:
            if not os.path.exists(f"{self.proc}/{pid}"):
                for i in [i for i, o in self.owners.items() if o[0] == pid]:
                    del self.owners[i]
        wanted = live - self.owners.keys() - self._tried
        if wanted:
            self._scan(wanted, live)
        sandboxed = bool(self.sandbox_marker) and os.path.exists(self.sandbox_marker)
        unknown = len(live) - len(self.owners)
        if sandboxed:
            self.visibility = "hidden"
            self.reason = _("running inside a Flatpak sandbox: the host's processes are hidden, so the owner of "
                            "a socket is shown only when it is this application's")
        elif self._denied or unknown:
            self.visibility = "partial"
            parts = []
            if self._denied:
                parts.append(ngettext("{n} processes' file descriptors are not readable (other users' "
                                      "processes: run as root to see them)",
                                      "{n} processes' file descriptors are not readable (other users' "
                                      "processes: run as root to see them)", self._denied).format(n=self._denied))
            if unknown:
                parts.append(ngettext("{n} sockets have no visible owner (a process of another PID namespace, "
                                      "or one that closed it meanwhile)",
                                      "{n} sockets have no visible owner (a process of another PID namespace, "
                                      "or one that closed it meanwhile)", unknown).format(n=unknown))
            self.reason = "; ".join(parts)
        else:
            self.visibility, self.reason = "full", ""
        return self.owners

    def _same_netns_first(self, pids: list[int]) -> list[int]:
        """``pids`` with the processes of :attr:`netns_inode`'s namespace first (one readlink each)."""
        if self.netns_inode is None:
            return pids
        want = f"net:[{self.netns_inode}]"
        same, other = [], []
        for pid in pids:
            try:
                link = os.readlink(f"{self.proc}/{pid}/ns/net")
            except OSError:  # another user's process, or gone
                other.append(pid)
                continue
            (same if link == want else other).append(pid)
        return same + other

    def _read(self, pid: int, live: set[int]) -> tuple[dict[str, int] | None, int]:
        """The socket descriptors of ``pid``: ``({fd: inode}, descriptors read)``; ``(None, 1)`` when
        they are not readable (another user's process), ``(None, 0)`` when it is gone. Reads no shared
        state but :attr:`_fds` (a descriptor that still names a live socket is not read again)."""
        # one descriptor for the directory: each readlink then resolves one name, not a whole path
        try:
            dfd = os.open(f"{self.proc}/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except PermissionError:
            return None, 1
        except OSError:
            return None, 0  # exited meanwhile
        try:
            try:
                fds = os.listdir(dfd)
            except PermissionError:
                return None, 1
            except OSError:
                return None, 0
            before_get = self._fds.get(pid, {}).get
            readlink = os.readlink
            sockets: dict[str, int] = {}
            reads = 0
            for fd in fds:
                ino = before_get(fd)
                if ino is None or ino not in live:
                    reads += 1
                    try:
                        link = readlink(fd, dir_fd=dfd)
                    except OSError:
                        continue
                    if link[:8] != "socket:[":
                        continue
                    try:
                        ino = int(link[8:-1])
                    except ValueError:
                        continue
                sockets[fd] = ino
            return sockets, reads
        finally:
            os.close(dfd)

    def _reads(self, pids: Iterable[int], live: set[int], parallel: bool):
        """``(pid, sockets, n)`` for ``pids`` in order (:meth:`_read`). ``parallel``: read a few processes
        at once in worker threads (the kernel's part of each ``readlink`` runs without the GIL: on two
        cores a large scan takes about half as long); stopping early cancels the reads not started."""
        workers = min(4, os.cpu_count() or 1)
        if not parallel or workers < 2:
            for pid in pids:
                yield (pid, *self._read(pid, live))
            return
        it = iter(pids)
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="mhgui-owners") as ex:
            window: collections.deque = collections.deque()
            try:
                for pid in itertools.islice(it, 2 * workers):
                    window.append((pid, ex.submit(self._read, pid, live)))
                while window:
                    pid, fut = window.popleft()
                    yield (pid, *fut.result())
                    nxt = next(it, None)
                    if nxt is not None:
                        window.append((nxt, ex.submit(self._read, nxt, live)))
            finally:
                for _, fut in window:
                    fut.cancel()

    def _scan(self, wanted: set[int], live: set[int]) -> None:
        """Look for ``wanted`` inodes: known owners first, then the processes of :attr:`netns_inode`'s
        namespace, then the others; stop when all are found.

        A process scanned before is read again only where it may hold
        something new: descriptors whose number is new, and those that held a
        socket now gone (the number may be reused); a descriptor that still
        names a live socket is not read again.
        """
        self.scans += 1
        left = set(wanted)
        known = sorted({p for p, _ in self.owners.values()})
        pids = self._pids()
        alive = set(pids)
        for pid in [p for p in self._fds if p not in alive]:
            del self._fds[pid]
        known_set = set(known)

        def order():
            yield from known
            if left:  # the known owners did not hold them all: the others, this namespace's first
                yield from self._same_netns_first([p for p in sorted(pids) if p not in known_set])
        denied = 0
        scanned = 0
        reads = 0
        owners = self.owners
        reader = self._reads(order(), live, parallel=len(left) >= PARALLEL_FROM)
        try:
            for pid, sockets, n in reader:
                if sockets is None:
                    denied += n
                    continue
                scanned += 1
                reads += n
                self._fds[pid] = sockets
                owner = None  # one (pid, name) tuple for all the process's sockets
                for ino in sockets.values():
                    if ino in left:
                        left.discard(ino)
                        if owner is None:
                            owner = (pid, self._comm(pid))
                        owners[ino] = owner
                if not left:
                    break
        finally:
            reader.close()  # stops the reads not started yet
        self._denied = denied
        self.last_scan_pids = scanned
        self.last_scan_reads = reads
        self._tried |= left


# --------------------------------------------------------------------------- one poll (blocking)
class _Poller:
    """What the worker thread keeps between polls: the socket, the owner cache, the last flows."""

    def __init__(self, netns: str | None, decoder: str, protocols: tuple[str, ...], families: tuple[int, ...],
                 resolver: ProcessResolver | None) -> None:
        self.netns = netns
        self.decoder = decoder
        self.protocols = protocols
        self.families = families
        self.resolver = resolver
        self.diag: SockDiag | None = None
        #: protocol -> socket cookie -> its Flow: reused while unchanged (compared with the Flow's own
        #: fields: keeping each socket's raw fields too was about 3.5 MiB with 10,000 sockets, issue 14)
        self._cache: dict[str, dict[int, Flow]] = {}

    def close(self) -> None:
        if self.diag is not None:
            self.diag.close()
            self.diag = None

    def poll(self, clock: Callable[[], float]) -> FlowTable:
        with gc_paused():  # tens of thousands of flows, no reference cycles: no collection passes meanwhile
            return self._poll(clock)

    def _poll(self, clock: Callable[[], float]) -> FlowTable:
        t0 = time.perf_counter()
        if self.diag is None:
            self.diag = SockDiag(self.netns, decoder=self.decoder)
            if self.resolver is not None and self.resolver.netns_inode is None:
                self.resolver.netns_inode = _netns_inode(self.netns)
        problems: list[str] = []
        dumps: list[tuple[str, list[tuple]]] = []
        refused = 0
        for protocol in self.protocols:
            for family in self.families:
                try:
                    dumps.append((protocol, self.diag.dump(family, protocol, problems)))
                except TimeoutError as e:
                    self.close()  # a wedged socket: this poll fails, the next one starts afresh
                    raise OSError(errno.ETIMEDOUT, f"sock_diag {protocol}: no answer from the kernel") from e
                except OSError as e:
                    refused += 1
                    problems.append(f"{protocol}/{'IPv6' if family == AF_INET6 else 'IPv4'}: {e}")
        if refused == len(self.protocols) * len(self.families):
            raise OSError(problems[0] if problems else "sock_diag: no dump succeeded")
        owners = self.resolver.resolve(f[9] for _, recs in dumps for _, f in recs) \
            if self.resolver is not None else {}
        owner_of = owners.get
        new_cache: dict[str, dict[int, Flow]] = {}
        flows: dict[str, Flow] = {}
        dupes: list[Flow] = []
        text_of = _addr_cache.get
        state_of = _TCP_STATE_NAMES.get
        for protocol, recs in dumps:
            cached = self._cache.get(protocol, {}).get
            keep = new_cache.setdefault(protocol, {})
            for _, fields in recs:
                family, state, sport, dport, src, dst, ifindex, cookie, uid, inode = fields
                owner = owner_of(inode)
                # a flow from the last poll is reused while its socket (found by its cookie, a number the
                # kernel never gives two sockets) and owner are unchanged
                f = cached(cookie)
                if f is not None and f.inode == inode and f.local_port == sport and f.remote_port == dport \
                        and f.family == family and f.bound_ifindex == ifindex and f.uid == uid \
                        and f.state == state_of(state) and (
                            f.pid is None if owner is None else (f.pid, f.process) == owner) \
                        and f.local_address == text_of(src[:4] if family == AF_INET else src) \
                        and f.remote_address == text_of(dst[:4] if family == AF_INET else dst):
                    pass  # the same socket as at the last poll: its Flow is kept
                else:
                    # flow_from_fields(), inlined: this loop runs once per socket
                    if family == AF_INET:
                        src, dst = src[:4], dst[:4]
                    pid, process = owner if owner is not None else (None, None)
                    f = make_flow(protocol, family, text_of(src) or _addr_text(family, src), sport,
                                  text_of(dst) or _addr_text(family, dst), dport,
                                  state_of(state) or tcp_state_name(state), inode, uid, pid, process, ifindex,
                                  cookie)
                keep[cookie] = f
                if f.id in flows:
                    dupes.append(f)
                else:
                    flows[f.id] = f
        if dupes:
            flows = _disambiguate(flows, dupes)
        self._cache = new_cache
        vis, why = ("full", "")
        if self.resolver is not None:
            vis, why = self.resolver.visibility, self.resolver.reason
        else:
            vis, why = "hidden", "process owners are not looked up"
        return FlowTable(flows, vis, why, tuple(problems), clock(), time.perf_counter() - t0)


def _netns_inode(netns: str | None) -> int | None:
    """The inode of the named network namespace (``/run/netns/NAME``), or of this thread's; None if unknown."""
    try:
        return os.stat(f"/run/netns/{netns}" if netns else "/proc/thread-self/ns/net").st_ino
    except OSError:
        return None


def _disambiguate(flows: dict[str, Flow], dupes: list[Flow]) -> dict[str, Flow]:
    """Sockets sharing a whole 5-tuple (SO_REUSEPORT) each get their socket cookie as a tag."""
    from dataclasses import replace
    shared = {f.id for f in dupes}
    out = {k: f for k, f in flows.items() if k not in shared}
    for f in [flows[k] for k in shared] + dupes:
        g = replace(f, tag=f"{f.cookie:x}")
        out[g.id] = g
    return out


def read_flows(netns: str | None = None, *, decoder: str = "struct", resolve_processes: bool = True,
               proc: str = "/proc", sandbox_marker: str = FLATPAK_INFO,
               protocols: tuple[str, ...] = ("tcp", "udp"),
               families: tuple[int, ...] = (AF_INET, AF_INET6)) -> FlowTable:
    """One blocking poll (tests, scripts): open, dump, resolve owners, close."""
    resolver = ProcessResolver(proc, sandbox_marker) if resolve_processes else None
    p = _Poller(netns, decoder, protocols, families, resolver)
    try:
        return p.poll(time.monotonic)
    finally:
        p.close()


# --------------------------------------------------------------------------- mhgui's own sockets
def own_sockets(daemon=None, bus_addresses: Iterable[str | None] = (), *,
                environ: Mapping[str, str] | None = None) -> OwnSockets:
    """What makes a socket this app's own (:func:`mhgui.core.flows.own_flow_ids`), from what it knows.

    This process's pid, mhgui's program names, and the services it talks to:
    the mobility daemon's terminal (``daemon``: a driver with ``port`` and
    ``hosts``, UMIP's ``localhost`` port 7777), and every D-Bus bus over TCP
    among ``bus_addresses``, the driver's ``bus_address`` and
    ``$DBUS_SYSTEM_BUS_ADDRESS``/``$DBUS_SESSION_BUS_ADDRESS``. No I/O
    beyond reading the environment (host names other than ``localhost`` are
    not looked up).
    """
    env = os.environ if environ is None else environ
    services: list[tuple[str, str, int]] = []
    port = getattr(daemon, "port", None)
    if isinstance(port, int):
        services += service_endpoints("tcp", getattr(daemon, "hosts", None) or ("localhost",), port)
    for address in (*bus_addresses, getattr(daemon, "bus_address", None), env.get("DBUS_SYSTEM_BUS_ADDRESS"),
                    env.get("DBUS_SESSION_BUS_ADDRESS")):
        if isinstance(address, str):
            services += dbus_tcp_endpoints(address)
    return OwnSockets(frozenset({os.getpid()}), MHGUI_PROCESSES, frozenset(services))


# --------------------------------------------------------------------------- the source (asyncio)
class FlowSource:
    """Polls the socket table every ``interval`` seconds in its own worker thread.

    ``callback(table)`` runs on the event loop after each successful poll;
    ``on_status(status, detail)`` (optional) hears ``"ok"``/``"error"`` when
    the source's health changes. ``netns``: a named network namespace
    (None: this process's). ``resolve_processes``: look up owning processes
    in ``proc``. ``decoder``: see :class:`SockDiag`.

    :meth:`poll` runs one poll now (``mhctl flows``); :meth:`start` /
    :meth:`stop` the periodic polling. The netlink socket is created, used
    and closed in the worker thread only.
    """

    def __init__(self, callback: Callable[[FlowTable], None] | None = None, *, interval: float = 1.0,
                 netns: str | None = None, resolve_processes: bool = True, proc: str = "/proc",
                 sandbox_marker: str = FLATPAK_INFO, decoder: str = "struct",
                 protocols: tuple[str, ...] = ("tcp", "udp"), families: tuple[int, ...] = (AF_INET, AF_INET6),
                 on_status: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        for p in protocols:
            if p not in PROTOCOLS:
                raise ValueError(f"unknown protocol {p!r}")
        self.callback = callback
        self.interval = interval
        self.on_status = on_status
        self.clock = clock
        resolver = ProcessResolver(proc, sandbox_marker) if resolve_processes else None
        self._poller = _Poller(netns, decoder, tuple(protocols), tuple(families), resolver)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None
        self.status: tuple[str, str] = ("stopped", "")
        self.last: FlowTable | None = None
        self.polls = 0

    @property
    def resolver(self) -> ProcessResolver | None:
        return self._poller.resolver

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mhgui-flows")
        return self._executor

    def _set_status(self, status: str, detail: str = "") -> None:
        if self.status != (status, detail):
            self.status = (status, detail)
            if self.on_status is not None:
                self.on_status(status, detail)

    async def poll(self) -> FlowTable:
        """One poll in the worker thread; raises ``OSError`` when no dump succeeded."""
        loop = asyncio.get_running_loop()
        table = await loop.run_in_executor(self._pool(), self._poller.poll, self.clock)
        self.last = table
        self.polls += 1
        return table

    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="flow-source")

    async def _run(self) -> None:
        while True:
            started = self.clock()
            try:
                table = await self.poll()
            except OSError as e:
                self._set_status("error", str(e))
            else:
                self._set_status("ok", "; ".join(table.problems))
                if self.callback is not None:
                    try:
                        self.callback(table)
                    except Exception:  # a subscriber's bug must not stop the source
                        log.exception("flow table callback failed")
            # a slow poll (a huge table) still leaves the loop a fifth of the interval
            await asyncio.sleep(max(self.interval * 0.2, self.interval - (self.clock() - started)))

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        ex, self._executor = self._executor, None
        if ex is not None:
            # the socket is closed by the thread that owns it, after any poll still running
            await asyncio.get_running_loop().run_in_executor(ex, self._poller.close)
            ex.shutdown(wait=False)
        self._set_status("stopped")
