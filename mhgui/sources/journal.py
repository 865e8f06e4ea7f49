"""The failover journal: every failover the window saw, kept on disk for ``mhctl log``.

File: ``$XDG_STATE_HOME/mhgui/failover.jsonl`` (default
``~/.local/state/mhgui/failover.jsonl``, XDG Base Directory spec), one JSON
object a line, appended as an entry is recorded and again as its timings fill
in (Binding Update seen, acknowledged): the last line of a ``(session, id)``
pair wins. Each line is :meth:`mhgui.core.failover.FailoverEntry.to_json`
plus:

- ``session``: the writing process's ``"PID-START"`` (ids restart at 1 in every run);
- ``wall``: the same times as ``trigger_time``/``decision_time``/``bu_time``/
  ``ack_time`` as seconds since the epoch (the entry's own times are on the
  process's monotonic clock, meaningless to another process), from the writer's
  ``wall_of`` (:meth:`mhgui.failover_service.FailoverService.wall_of`: the wall time
  noted when each time was recorded, so that a line written again after a suspend
  keeps its times; CLOCK_MONOTONIC stops during a suspend).

When the file passes :data:`MAX_BYTES` it is rewritten, atomically, with the
newest :data:`KEEP` entries. Reading skips lines that are not JSON objects
(a crash mid-line, a hand edit) and says how many.

Writes run in one worker thread, in order: never on the GUI thread.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from typing import Callable

from ..atomicfile import atomic_replace, remove_stale_temp_files

log = logging.getLogger(__name__)

__all__ = ["FailoverJournal", "JournalRead", "MAX_BYTES", "KEEP", "default_path", "past_entries", "read_journal"]

MAX_BYTES = 1 << 20
KEEP = 500
_TIMES = ("trigger_time", "decision_time", "bu_time", "ack_time")


def default_path() -> str:
    """``$XDG_STATE_HOME/mhgui/failover.jsonl`` (default ``~/.local/state/mhgui/failover.jsonl``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "mhgui", "failover.jsonl")


@dataclass
class JournalRead:
    """``entries``: the latest version of each entry, oldest first; ``skipped``: unreadable lines;
    ``error``: why the file could not be read at all ("" when it could, or does not exist)."""

    entries: list[dict] = field(default_factory=list)
    skipped: int = 0
    error: str = ""


class FailoverJournal:
    """Append-only JSON-lines journal (module docstring). ``path``: default :func:`default_path`.

    ``monotonic``/``wall``: the clocks used to turn entry times into epoch seconds when the writer gives no
    ``wall_of`` (the offset now: right only for times taken since the last suspend).
    """

    def __init__(self, path: str | None = None, *, monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.path = path or default_path()
        self.session = f"{os.getpid()}-{int(wall())}"
        self._monotonic = monotonic
        self._wall = wall
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mhgui-journal")
        # first job of the writer: what a compaction killed mid-write left (issue 13, 14f)
        self._pool.submit(remove_stale_temp_files, os.path.dirname(self.path), [os.path.basename(self.path)])
        self._warned = False

    def line(self, entry: dict, wall_of: Callable[[float], float] | None = None) -> str:
        """The journal line for one :meth:`FailoverEntry.to_json` dict (times on the monotonic clock);
        ``wall_of(t)``: epoch seconds for such a time (default: ``t`` plus the offset between the clocks now)."""
        if wall_of is None:
            offset = self._wall() - self._monotonic()
            wall_of = (lambda t: t + offset)  # noqa: E731
        out = dict(entry)
        out["session"] = self.session
        out["wall"] = {k.removesuffix("_time"): (None if entry.get(k) is None else round(wall_of(entry[k]), 3))
                       for k in _TIMES}
        return json.dumps(out, separators=(",", ":"), sort_keys=True) + "\n"

    def append(self, entry: dict, wall_of: Callable[[float], float] | None = None) -> concurrent.futures.Future:
        """Queue one entry for writing (``wall_of``: as for :meth:`line`); returns the write's future (errors
        are logged once, not raised)."""
        return self._pool.submit(self._write, self.line(entry, wall_of))

    def close(self) -> None:
        """Wait for queued writes, then stop the worker."""
        self._pool.shutdown(wait=True)

    def _write(self, text: str) -> None:
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO would block this thread, and quitting
                    raise OSError(f"{self.path} is not a regular file")
                os.write(fd, text.encode())
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > MAX_BYTES:
                self._compact()
        except OSError as e:
            if not self._warned:
                self._warned = True
                log.warning("cannot write the failover journal %s: %s", self.path, e)

    def _compact(self) -> None:
        got = read_journal(self.path, max_bytes=os.path.getsize(self.path) + 1)
        if got.error:  # never replace what could not be read
            return
        keep = got.entries[-KEEP:]
        text = "".join(json.dumps(e, separators=(",", ":"), sort_keys=True) + "\n" for e in keep)
        atomic_replace(self.path, lambda f: f.write(text.encode()), 0o600)


def read_journal(path: str | None = None, *, max_bytes: int = 4 * MAX_BYTES) -> JournalRead:
    """Read the journal (blocking: CLI, or an executor). Never raises for the file's content."""
    path = path or default_path()
    out = JournalRead()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return out
    except OSError as e:
        out.error = f"cannot open {path}: {e.strerror or e}"
        return out
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            out.error = f"{path} is not a regular file"
            return out
        data = os.read(fd, max_bytes + 1)
    except OSError as e:
        out.error = f"cannot read {path}: {e.strerror or e}"
        return out
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        out.error = f"{path} is larger than {max_bytes} bytes: not read"
        return out
    latest: dict[tuple, dict] = {}
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"), parse_constant=lambda c: None)  # NaN, Infinity: null
        except (UnicodeDecodeError, ValueError):
            out.skipped += 1
            continue
        if not isinstance(obj, dict) or type(obj.get("id")) is not int or not isinstance(obj.get("session"), str):
            out.skipped += 1
            continue
        key = (obj["session"], obj["id"])
        latest.pop(key, None)  # re-insert: the order is that of the last update
        latest[key] = obj
    out.entries = sorted(latest.values(), key=_order)
    return out


def past_entries(entries: list[dict], to_clock: Callable[[float], float], *, skip_session: str | None = None,
                 limit: int = 100) -> list:
    """:class:`~mhgui.core.failover.FailoverEntry` objects for journal lines of earlier runs (the window's
    history), newest ``limit``; times from their ``wall`` values, turned into this process's clock by
    ``to_clock(epoch seconds)``; ids negative (they never collide with this run's). Odd lines are skipped."""
    from ..core.failover import FailoverEntry

    def t(wall: dict, k: str) -> float | None:
        v = wall.get(k)
        return to_clock(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) \
            and abs(v) < 1e11 else None

    out = []
    for i, e in enumerate(entries[-limit:] if limit else entries):
        if e.get("session") == skip_session:
            continue
        wall = e.get("wall") if isinstance(e.get("wall"), dict) else {}
        decision = t(wall, "decision")
        if decision is None or e.get("who") not in ("user", "app", "daemon", "system"):
            continue
        hoas = e.get("hoas") if isinstance(e.get("hoas"), list) else []

        def name(k: str) -> str | None:
            v = e.get(k)
            return v[:15] if isinstance(v, str) else None

        out.append(FailoverEntry(-(i + 1), e["who"], name("from"), name("to"), str(e.get("reason"))[:32],
                                 t(wall, "trigger"), decision, t(wall, "bu"), t(wall, "ack"),
                                 tuple(str(h)[:45] for h in hoas[:16])))
    return out


def _order(e: dict) -> tuple:
    wall = e.get("wall") if isinstance(e.get("wall"), dict) else {}
    t = wall.get("decision") if isinstance(wall.get("decision"), (int, float)) else 0.0
    return (t, e["session"], e["id"])
