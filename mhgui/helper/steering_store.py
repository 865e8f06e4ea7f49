"""The persisted steering rules: a state file and a journal of the changes since (I/O; the format is
:mod:`mhgui.core.steering`'s).

Files in the state directory (``/var/lib/mhgui-helper``):

- ``steering.json``: the rules, their slots and ``seq``, the number of the
  last change it includes (:func:`mhgui.core.steering.render_state`); written
  atomically (:func:`mhgui.atomicfile.atomic_replace`), the previous version
  kept as ``steering.json.bak``;
- ``steering.journal``: one line per change since (``{"seq": N, "add": RULE}``
  or ``{"seq": N, "remove": ID}``, :func:`mhgui.core.steering.render_change`),
  appended and fsync-ed: adding a rule writes one line, whatever the number of
  rules (issue 14: rewriting a 10,000-rule file cost ~25 ms per change, its
  fsync most of it, against ~3 ms for an append);
- ``steering.journal.bak``: the journal's lines that the state file took in
  at its last rewrite, which lead from ``steering.json.bak`` to it.

When the journal has as many lines as the state file has rules (at least
:data:`COMPACT_AFTER`), the state file is rewritten with everything and the
journal starts afresh: a rewrite costs O(n) once every n changes, and the
journal is never longer than the state file.

Reading: the state file (or, when it is damaged, its backup) and then the
changes after its ``seq`` from both journals. A last line cut short (the
helper died while appending) is ignored and cut off before the next append;
any other line that is not a change makes the state corrupt (nothing is
changed until it is fixed), as does a change that cannot be applied. Changes
that cannot be reached (one before them is missing: both state file and
journal damaged) are reported and dropped; the next change then rewrites the
state file, numbered after them.

Not thread-safe: the engine uses it one call at a time.
"""

from __future__ import annotations

import logging
import os

from mhgui.atomicfile import atomic_replace, fsync_dir
from mhgui.core import steering as core
from mhgui.core.steering import SteeringRule, SteeringState

__all__ = ["COMPACT_AFTER", "JOURNAL_FILE", "MAX_STATE_BYTES", "STATE_FILE", "StateStore"]

log = logging.getLogger("mhgui.helper.steering")

STATE_FILE = "steering.json"
JOURNAL_FILE = "steering.journal"
MAX_STATE_BYTES = 64 << 20
#: The journal is folded into the state file when it has this many lines, or as many as the file has rules.
COMPACT_AFTER = 1024


class StateStore:
    """``steering.json`` and ``steering.journal`` in ``state_dir`` (see the module docstring).

    :meth:`load` raises :class:`mhgui.core.steering.SteeringError` (``corrupt``)
    with one line naming the file; the writing methods raise OSError and then
    leave the files as they were (a cut-short line is taken back).
    """

    def __init__(self, state_dir: str, compact_after: int = COMPACT_AFTER) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, STATE_FILE)
        self.journal = os.path.join(state_dir, JOURNAL_FILE)
        self.compact_after = compact_after
        self.seq = 0  # the number of the last change
        self.lines = 0  # lines in the journal
        self._cut_at: int | None = None  # the journal's length without a cut-short last line
        self._from_backup = False
        self._must_rewrite = False
        self._base = 0  # rules in the state file

    # ----------------------------------------------------------------- reading

    def _read(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise core.SteeringError(f"cannot read {path}: {e.strerror or e}", "corrupt") from None
        if len(data) > MAX_STATE_BYTES:
            raise core.SteeringError(f"{path} is larger than {MAX_STATE_BYTES} bytes", "corrupt")
        return data

    def _snapshot(self, path: str) -> tuple[SteeringState, int] | None:
        data = self._read(path)
        if data is None:
            return None
        try:
            return core.parse_snapshot(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise core.SteeringError(f"{path} is not UTF-8", "corrupt") from None
        except core.SteeringError as e:
            raise core.SteeringError(f"{path}: {e}", "corrupt") from None

    def load(self) -> SteeringState:
        """The persisted rules. A damaged state file falls back to its backup (and the next change
        rewrites it); with neither readable: SteeringError ``corrupt`` (the first file's problem)."""
        self._from_backup = False
        try:
            snap = self._snapshot(self.path)
        except core.SteeringError as first:
            try:
                snap = self._snapshot(self.path + ".bak")
            except core.SteeringError:
                snap = None
            if snap is None:
                raise first from None
            log.warning("%s; using the backup %s.bak", first, self.path)
            self._from_backup = True
        state, seq = snap if snap is not None else (SteeringState(), 0)
        self._base = len(state.rules)
        lines: list[tuple[str, int, bytes]] = []
        self._cut_at = None
        self.lines = 0
        for path in (self.journal + ".bak", self.journal):
            data = self._read(path)
            if data is None:
                continue
            end = data.rfind(b"\n") + 1
            if end < len(data):
                log.warning("%s: the last line was cut short (the helper stopped while writing it): ignored",
                            path)
                if path == self.journal:
                    self._cut_at = end
            name = os.path.basename(path)
            numbered = [(name, i + 1, line) for i, line in enumerate(data[:end].split(b"\n")[:-1]) if line]
            lines += numbered
            if path == self.journal:
                self.lines = len(numbered)
        state, seq, warnings = core.replay(state, seq, lines)
        for w in warnings:
            log.warning("steering rules: %s", w)
        # number after every change seen, reachable or not, so that none is ever numbered twice
        highest = max((_seq_of(line) for _n, _i, line in lines), default=0)
        self.seq = max(seq, highest)
        self._must_rewrite = self._from_backup or bool(warnings)
        return state

    # ----------------------------------------------------------------- writing

    def record(self, state: SteeringState, *, add: SteeringRule | None = None, remove: str | None = None) -> None:
        """Persist one change; ``state``: the rules after it. OSError: nothing was persisted."""
        if self._must_rewrite:
            self.rewrite(state, self.seq + 1)
            return
        self._append(core.render_change(self.seq + 1, add=add, remove=remove))
        self.seq += 1
        self.lines += 1
        if self.lines >= max(self.compact_after, self._base):
            try:
                self.rewrite(state, self.seq)
            except OSError as e:  # the change is in the journal: it is kept; the next change tries again
                log.warning("cannot fold the steering journal into %s: %s", self.path, e.strerror or e)

    def _append(self, line: bytes) -> None:
        os.makedirs(self.state_dir, mode=0o755, exist_ok=True)
        created = not os.path.exists(self.journal)
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            size = os.fstat(fd).st_size
            if self._cut_at is not None and self._cut_at <= size:
                os.ftruncate(fd, self._cut_at)  # a line cut short before: not glued to this one
                size = self._cut_at
            self._cut_at = None
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    self._cut_at = size
                raise
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.state_dir)

    def rewrite(self, state: SteeringState, seq: int | None = None) -> None:
        """Write ``state`` (which includes the changes up to ``seq``, default: the last one) to the state
        file, keep the previous one as ``.bak`` and start a new journal. OSError: nothing changed."""
        seq = self.seq if seq is None else seq
        os.makedirs(self.state_dir, mode=0o755, exist_ok=True)
        text = core.render_state(state, seq).encode("utf-8")
        if self._from_backup or self._must_rewrite:
            # the state file was damaged or changes were lost: the backup becomes this state too
            atomic_replace(self.path + ".bak", lambda f: f.write(text))
        else:
            old = self._read_plain(self.path)
            if old is not None:
                atomic_replace(self.path + ".bak", lambda f: f.write(old))
        atomic_replace(self.path, lambda f: f.write(text))
        self.seq = seq
        self._base = len(state.rules)
        self._from_backup = self._must_rewrite = False
        # the journal's lines lead from the backup to this state file: they become the journal's backup
        try:
            os.replace(self.journal, self.journal + ".bak")
        except FileNotFoundError:
            pass
        else:
            fsync_dir(self.state_dir)
        self.lines = 0
        self._cut_at = None

    def _read_plain(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None


def _seq_of(line: bytes) -> int:
    try:
        return core.parse_change(line)[0]
    except core.SteeringError:
        return 0
