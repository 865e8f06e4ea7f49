"""The VT control socket, byte for byte as umip.md section 1 describes it.

* TCP on every ``getaddrinfo("localhost", service)`` result (usually
  ``127.0.0.1`` and ``::1``), backlog 1, no telnet negotiation.
* One client at a time: another gets ``Too many connections\\n`` and is closed.
* Greeting ``mip6d> `` (no NUL). Each ``recv()`` chunk (at most 8192 octets) is
  one command line whose *last byte is overwritten with NUL*; the line is the
  C string up to the first NUL.
* Reply: output, ``mip6d> `` when prompt is on, one NUL byte.
* ``quit``/``exit`` close the connection without prompt or NUL.
* Per-connection options: prompt=yes, verbose=no, fancy=yes.
* Errors: ``unknown command: "X"`` (``(null)`` for a single word that no
  whitespace follows, e.g. ``frob\\n`` sent with a bare LF), ``unknown args``.
* A write that fails with EPIPE ends the daemon, as SIGPIPE ends ``mip6d``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("umipdouble")

PROMPT = "mip6d> "
C_SPACE = " \t\n\v\f\r"
HELP_WIDTH = 60
RECV_MAX = 8192


def nip6(addr) -> str:
    """NIP6ADDR: eight groups in lowercase hex, no ``::``, no leading zeros."""
    p = addr.packed
    return ":".join(f"{(p[i] << 8) | p[i + 1]:x}" for i in range(0, 16, 2))


@dataclass
class Session:
    prompt: bool = True
    verbose: bool = False
    fancy: bool = True

    def bold_underline(self, text: str) -> str:
        return f"\x1b[1;4m{text}\x1b[0m" if self.fancy else text

    def bold(self, text: str) -> str:
        return f"\x1b[1m{text}\x1b[0m" if self.fancy else text


class Quit(Exception):
    pass


Handler = Callable[[Session, str], str]


class Command:
    """A node of the command tree: a leaf (``func``) and/or a parent (``children``).

    ``takes_args``: the leaf parses its own arguments; otherwise a leaf given
    arguments answers ``unknown args``. A parent given no arguments runs its
    ``func`` (``bc`` dumps on a home agent, ``bc add`` injects a BU).
    """

    def __init__(self, func: Handler | None = None, children: dict[str, Command] | None = None,
                 takes_args: bool = False) -> None:
        self.func = func
        self.children = children or {}
        self.takes_args = takes_args


def _chop(s: str) -> tuple[str, bool, str]:
    """First word, whether whitespace follows it, and the rest after that whitespace."""
    i = 0
    while i < len(s) and s[i] in C_SPACE:
        i += 1
    j = i
    while j < len(s) and s[j] not in C_SPACE:
        j += 1
    word = s[i:j]
    followed = j < len(s)
    k = j
    while k < len(s) and s[k] in C_SPACE:
        k += 1
    return word, followed, s[k:]


def help_text(names: list[str]) -> str:
    lines: list[str] = []
    cur = ""
    for n in names:
        cand = f"{cur} {n}" if cur else n
        if len(cand) >= HELP_WIDTH and cur:
            lines.append(cur)
            cur = n
        else:
            cur = cand
    if cur:
        lines.append(cur)
    return "".join(line + "\n" for line in lines)


def dispatch(tree: dict[str, Command], sess: Session, line: str) -> str:
    word, followed, rest = _chop(line)
    if not word:
        return ""
    if word == "help":
        if rest:
            return "unknown args\n"
        return help_text(sorted(visible(tree)))
    cmd = tree.get(word)
    if cmd is None:
        return f'unknown command: "{word if followed else "(null)"}"\n'
    if cmd.children and rest:
        return dispatch(cmd.children, sess, rest)
    if cmd.takes_args:
        return cmd.func(sess, rest)
    if rest:
        return "unknown args\n"
    if cmd.func is None:
        return help_text(sorted(visible(cmd.children)))
    return cmd.func(sess, rest)


def _yes_no(attr: str) -> Handler:
    def handler(sess: Session, rest: str) -> str:
        arg = rest.strip(C_SPACE)
        if arg in ("yes", "y"):
            setattr(sess, attr, True)
        elif arg in ("no", "n"):
            setattr(sess, attr, False)
        elif arg:
            return "unknown args\n"
        return "yes\n" if getattr(sess, attr) else "no\n"
    return handler


def _quit(sess: Session, rest: str) -> str:
    raise Quit()


def common_commands() -> dict[str, Command]:
    """Commands every node has (``vt.c``)."""
    return {
        "quit": Command(_quit),
        "exit": Command(_quit),
        "prompt": Command(_yes_no("prompt"), takes_args=True),
        "verbose": Command(_yes_no("verbose"), takes_args=True),
        "fancy": Command(_yes_no("fancy"), takes_args=True),
    }


def visible(tree: dict[str, Command]) -> dict[str, Command]:
    """The tree ``help`` lists: aliases (``exit``) are not shown."""
    return {k: v for k, v in tree.items() if k != "exit"}


class VTServer:
    def __init__(self, tree: dict[str, Command], service: str, on_sigpipe: Callable[[], None]) -> None:
        self.tree = tree
        self.service = service
        self.on_sigpipe = on_sigpipe
        self.listeners: list[socket.socket] = []
        self.client: socket.socket | None = None
        self._tasks: set[asyncio.Task] = set()

    def start(self) -> None:
        """Bind every localhost address; raises OSError when none could be bound."""
        infos = socket.getaddrinfo("localhost", self.service, socket.AF_UNSPEC, socket.SOCK_STREAM)
        seen = set()
        last_err: OSError | None = None
        for family, socktype, proto, _canon, sockaddr in infos:
            key = (family, sockaddr[:2])
            if key in seen:
                continue
            seen.add(key)
            s = socket.socket(family, socktype, proto)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind(sockaddr)
                s.listen(1)
                s.setblocking(False)
            except OSError as e:
                log.warning("vt: cannot listen on %s: %s", sockaddr, e.strerror)
                last_err = e
                s.close()
                continue
            self.listeners.append(s)
        if not self.listeners:
            raise last_err or OSError(errno.EADDRNOTAVAIL, "no localhost address")
        for s in self.listeners:
            self._spawn(self._accept_loop(s))

    def _spawn(self, coro) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _accept_loop(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _peer = await loop.sock_accept(lsock)
            except OSError as e:
                log.debug("vt accept: %s", e)
                await asyncio.sleep(0.05)
                continue
            if self.client is not None:
                try:
                    conn.send(b"Too many connections\n")
                except OSError:
                    pass
                conn.close()
                continue
            self.client = conn
            conn.setblocking(False)
            self._spawn(self._serve(conn))

    def handle(self, sess: Session, data: bytes) -> bytes | None:
        """The reply to one received chunk; None for quit."""
        buf = bytearray(data)
        buf[-1] = 0
        line = bytes(buf).split(b"\0", 1)[0].decode("latin-1")
        try:
            out = dispatch(self.tree, sess, line)
        except Quit:
            return None
        if sess.prompt:
            out += PROMPT
        return out.encode("latin-1") + b"\0"

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        sess = Session()
        try:
            if sess.prompt:
                await loop.sock_sendall(conn, PROMPT.encode())
            while True:
                data = await loop.sock_recv(conn, RECV_MAX)
                if not data:
                    break
                reply = self.handle(sess, data)
                if reply is None:
                    break
                await loop.sock_sendall(conn, reply)
        except BrokenPipeError:
            log.info("got SIGPIPE (VT client went away during a write): terminating")
            self.on_sigpipe()
        except OSError as e:
            log.debug("vt client: %s", e)
        finally:
            conn.close()
            if self.client is conn:
                self.client = None

    def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for s in self.listeners:
            s.close()
        if self.client is not None:
            self.client.close()
            self.client = None
