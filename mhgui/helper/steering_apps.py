"""Marked steering rules in nftables, as root: the helper's side of :mod:`mhgui.core.steering_nft`.

:class:`MarkedSteering` keeps table ``inet mhgui`` equal to the marked rules the planner realised
(:meth:`mhgui.core.steering_planner.SteeringPlanner.marked_slot`): one ``nft -f`` transaction
rebuilds it when the marked rules, their slots or interfaces, or the cgroup levels of their
applications change (cost: the number of *marked* rules; destination rules never touch nft).

Following applications (:meth:`MarkedSteering.follow`): nft resolves a cgroup path to its id when
it is loaded, and scopes appear with each launch of an application (nft cannot match the parent
``app.slice`` by unit-name pattern), so the helper watches cgroupfs and adds each new scope of an
application rule to the rule's set (``add element``: O(1) per scope). :class:`CgroupWatch`: inotify
(``IN_CREATE`` of directories, which kernfs reports for ``mkdir``) on every slice and user manager
down to the ``app.slice`` directories, new ones included (users log in later, slices nest); a
creation wakes :meth:`mhgui.helper.service.Helper.follow_apps` at once, and a poll every
:data:`POLL_SECONDS` catches what inotify missed (a watch that could not be added, an overflow).
Limits: a scope is steered a few milliseconds after systemd creates it (the scan and one nft call);
a process that connects before that is not (systemd moves the process in before it starts to run,
so in practice only a very fast start can lose this race); a scope that ended stays in the set until
the next rebuild (cgroup ids are not reused, so it matches nothing).

cgroupfs is read where cgroup2 is mounted (``/proc/self/mountinfo``); nft names cgroups relative to
``/sys/fs/cgroup`` (:func:`mhgui.core.cgroups.nft_prefix`). ``netns``: nft runs with ``nsenter
--net`` (not ``ip netns exec``, which mounts a new ``/sys`` without the cgroup2 hierarchy).
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections import Counter
from typing import Iterable

import inotify_simple

from mhgui.core import cgroups as cg
from mhgui.core.steering import SteeringRule
from mhgui.core.steering_nft import (
    MarkedRule,
    parse_echo,
    render_add,
    render_delete,
    render_elements,
    render_ruleset,
    set_name,
)

__all__ = ["CgroupTree", "CgroupWatch", "MarkedSteering", "NftFailed", "POLL_SECONDS"]

log = logging.getLogger("mhgui.helper.steering_apps")

POLL_SECONDS = 1.0
#: Directories a scan descends into: slices and user managers (never a service's or scope's own tree).
_MAX_DEPTH = 8
_MAX_DIRS = 20_000
#: Directories a scan lists in one user session (``user@UID.service``): each user may make cgroups in the
#: tree systemd delegates to their session, and one user's thousands must not hide the others' apps.
MAX_SESSION_DIRS = 2_000


class NftFailed(Exception):
    """nft refused a script (``message``: its first error line)."""


class CgroupTree:
    """The cgroup2 hierarchy as the helper sees it (``mount``: default from ``/proc/self/mountinfo``)."""

    def __init__(self, mount: str | None = None) -> None:
        if mount is None:
            try:
                with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
                    mount = cg.cgroup2_mount(f.read())
            except OSError:
                mount = None
        self.mount = mount
        self.prefix = cg.nft_prefix(mount) if mount else None

    @property
    def problem(self) -> str:
        """"" when application rules can work here, else why not."""
        if self.mount is None:
            return "cgroup v2 is not mounted: application rules cannot match"
        if self.prefix is None:
            return f"cgroup v2 is mounted at {self.mount}, where nft cannot name cgroups (/sys/fs/cgroup)"
        return ""

    def exists(self, path: str) -> bool:
        return self.mount is not None and os.path.isdir(os.path.join(self.mount, path))

    def scan(self) -> list[cg.AppScope]:
        """Every application scope of every user session (:func:`mhgui.core.cgroups.scopes_of`)."""
        if self.mount is None:
            return []
        found: list[str] = []
        stack = [("", 0)]
        seen = 0
        per_session: Counter[str | None] = Counter()
        while stack and seen < _MAX_DIRS:
            rel, depth = stack.pop()
            session = cg.own_session(rel)
            for e in _listing(os.path.join(self.mount, rel) if rel else self.mount):
                if session is not None and per_session[session] >= MAX_SESSION_DIRS:
                    break
                if not e.is_dir(follow_symlinks=False):
                    continue
                seen += 1
                per_session[session] += 1
                path = f"{rel}/{e.name}" if rel else e.name
                if rel.endswith("app.slice") or "/app.slice/" in f"/{rel}/":
                    found.append(path)
                if depth < _MAX_DEPTH and _descends(e.name):
                    stack.append((path, depth + 1))
        return cg.scopes_of(found)

    def matching(self, application: str, scopes: Iterable[cg.AppScope]) -> list[str]:
        """The cgroup paths an application selector (``app:ID`` / ``cgroup:PATH``) takes now."""
        kind, _, value = application.partition(":")
        if kind == "cgroup":
            return [value] if self.exists(value) else []
        return sorted(s.path for s in scopes if cg.matches(value, s))


MAX_WATCHES = 4096
#: Watches one user session (``user@UID.service``) may use of :data:`MAX_WATCHES` (see :data:`MAX_SESSION_DIRS`).
MAX_SESSION_WATCHES = 256
_FLAGS = inotify_simple.flags


def _descends(name: str) -> bool:
    """Whether scans (and watches) go into a directory of this name: slices and user managers."""
    return name.endswith(".slice") or (name.startswith("user@") and name.endswith(".service"))


def _listing(path: str) -> Iterable[os.DirEntry]:
    """The entries of a directory, lazily (a scan may stop early); none when it cannot be read."""
    try:
        with os.scandir(path) as it:
            yield from it
    except OSError:
        return


class CgroupWatch:
    """inotify on the cgroup2 hierarchy's slices and user managers: which directories were created.

    ``fileno()`` for the event loop's ``add_reader``; :meth:`read` drains the events (non-blocking),
    watches the new slices among them, and says whether any directory appeared. OSError from the
    constructor when inotify is not available (then only the poll follows applications). inotify
    through ``inotify_simple`` (pinned in pyproject.toml). At most :data:`MAX_WATCHES` watches, and
    :data:`MAX_SESSION_WATCHES` of them in one user session.
    """

    def __init__(self, mount: str) -> None:
        self.mount = mount
        self._ino = inotify_simple.INotify(nonblocking=True)
        self.fd = self._ino.fileno()
        self._dirs: dict[int, str] = {}  # watch descriptor -> path relative to the mount ("" the root)
        self._per_session: Counter[str | None] = Counter()
        self.overflowed = False
        try:
            self._watch_tree("", 0)
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        return self.fd

    def _watch(self, rel: str) -> bool:
        session = cg.own_session(rel)
        if len(self._dirs) >= MAX_WATCHES or (session is not None
                                              and self._per_session[session] >= MAX_SESSION_WATCHES):
            return False
        path = os.path.join(self.mount, rel) if rel else self.mount
        try:
            wd = self._ino.add_watch(path, _FLAGS.CREATE | _FLAGS.MOVED_TO)
        except OSError:  # gone already, or the user's watches (fs.inotify.max_user_watches) are used up
            return False
        if wd not in self._dirs:
            self._per_session[session] += 1
        self._dirs[wd] = rel
        return True

    def _watch_tree(self, rel: str, depth: int) -> None:
        if not self._watch(rel) or depth >= _MAX_DEPTH:
            return
        for e in _listing(os.path.join(self.mount, rel) if rel else self.mount):
            if _descends(e.name) and e.is_dir(follow_symlinks=False):
                sub = f"{rel}/{e.name}" if rel else e.name
                session = cg.own_session(sub)
                if len(self._dirs) >= MAX_WATCHES or (session is not None
                                                      and self._per_session[session] >= MAX_SESSION_WATCHES):
                    break
                self._watch_tree(sub, depth + 1)

    def read(self) -> list[str]:
        """The directories created since the last call (paths relative to the mount); new slices are
        watched from now on (with what they already hold)."""
        out: list[str] = []
        while True:
            try:
                events = self._ino.read(timeout=0)
            except OSError:
                return out
            if not events:
                return out
            for ev in events:
                if ev.mask & _FLAGS.Q_OVERFLOW:
                    self.overflowed = True
                    continue
                if ev.mask & _FLAGS.IGNORED:
                    rel = self._dirs.pop(ev.wd, None)
                    if rel is not None:
                        self._per_session[cg.own_session(rel)] -= 1
                    continue
                parent = self._dirs.get(ev.wd)
                if parent is None or not ev.mask & _FLAGS.ISDIR or not ev.name:
                    continue
                rel = f"{parent}/{ev.name}" if parent else ev.name
                out.append(rel)
                if _descends(ev.name):
                    self._watch_tree(rel, rel.count("/") + 1)

    @property
    def watched(self) -> int:
        return len(self._dirs)

    def close(self) -> None:
        if self.fd >= 0:
            self._ino.close()
            self.fd = -1


class MarkedSteering:
    """Table ``inet mhgui`` for the marked rules (see the module docstring). Synchronous: run by the
    steering engine in the helper's executor, one call at a time."""

    def __init__(self, netns: str | None = None, tree: CgroupTree | None = None) -> None:
        self.netns = netns
        self.tree = tree or CgroupTree()
        self._want: list[MarkedRule] = []  # the realised marked rules, without levels
        self._paths: dict[str, list[str]] = {}  # rule id -> cgroup paths in its sets
        self._applied: tuple | None = None  # what the last rebuild put in the kernel (None: rebuild next time)
        self._applied_rules: list[MarkedRule] = []  # (and as a list, for one-rule changes)
        self._applied_elements: dict[tuple[str, int], list[str]] = {}
        self._handles: dict[str, list[tuple[str, int]]] = {}  # rule id -> its (chain, handle)s
        self._slot_handles: dict[int, list[tuple[str, int]]] = {}  # slot -> restore and masquerade lines
        #: how the last change was made: "rebuild", "add", "remove" or "" (nothing to do); for tests
        self.last_change = ""
        #: whether the kernel holds the wanted rules (the last rebuild or scope addition worked)
        self.ok = True

    # ----------------------------------------------------------------- nft

    def _nft(self, script: str, echo: bool = False) -> str:
        cmd = ["nft", "--echo", "--handle", "-f", "-"] if echo else ["nft", "-f", "-"]
        if self.netns:
            cmd = ["nsenter", f"--net=/run/netns/{self.netns}", *cmd]
        try:
            p = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise NftFailed(f"cannot run nft: {e}") from None
        if p.returncode:
            lines = [x for x in p.stderr.splitlines() if x.strip()]
            raise NftFailed(next((x for x in lines if "Error" in x), lines[0] if lines else f"nft exit {p.returncode}"))
        return p.stdout

    def _remember(self, echo: str) -> None:
        for chain, kind, key, handle in parse_echo(echo):
            if kind == "mhgui":
                self._handles.setdefault(key, []).append((chain, handle))
            elif key.isdigit():
                self._slot_handles.setdefault(int(key), []).append((chain, handle))

    # ----------------------------------------------------------------- state

    def scopes(self, rule_id: str) -> list[str]:
        """The cgroups an application rule matches now (as last applied)."""
        return list(self._paths.get(rule_id, ()))

    def _rules(self) -> tuple[list[MarkedRule], dict[tuple[str, int], list[str]]]:
        scopes = self.tree.scan() if any(m.rule.application for m in self._want) else []
        out, elements = [], {}
        self._paths = {}
        for m in self._want:
            if not m.rule.application:
                out.append(m)
                continue
            paths = self.tree.matching(m.rule.application, scopes) if not self.tree.problem else []
            self._paths[m.rule.id] = paths
            levels = sorted({cg.level_of(p) for p in paths})
            for p in paths:
                elements.setdefault((m.rule.id, cg.level_of(p)), []).append((self.tree.prefix or "") + p)
            out.append(MarkedRule(m.rule, m.slot, m.ifname, m.families, tuple(levels)))
        return out, elements

    def set_rules(self, marked: Iterable[MarkedRule]) -> None:
        """Make the kernel hold ``marked`` (order: first match wins); NftFailed when nft refuses twice
        (a scope that ended between the scan and nft: once more with a new scan)."""
        marked = list(marked)
        if marked == self._want and self._applied is not None:
            # unchanged (a destination rule was added or removed): no cgroupfs scan; new scopes come with follow()
            self.ok = True
            self.last_change = ""
            return
        self._want = marked
        for attempt in (1, 2):
            rules, elements = self._rules()
            key = _key(rules, elements)
            if key == self._applied:
                self.ok = True
                self.last_change = ""
                return
            try:
                if self._applied is not None and self._one_change(rules, elements):
                    pass
                else:
                    elements = self._rebuild(rules, elements)
                    key = _key(rules, elements)
            except NftFailed:
                self._applied = None
                if attempt == 2:
                    self.ok = False
                    raise
                continue
            self._applied, self.ok = key, True
            self._applied_rules, self._applied_elements = rules, elements
            return

    def _rebuild(self, rules: list[MarkedRule], elements: dict[tuple[str, int], list[str]]
                 ) -> dict[tuple[str, int], list[str]]:
        """The whole table in one transaction; the elements it holds (returned) are ``elements`` less the
        cgroups that ended before nft resolved them (a user can start and end scopes named like an
        application all the time: one of them must not keep the table, or the live scopes, out)."""
        self._applied = None
        self._handles, self._slot_handles = {}, {}
        try:
            self._remember(self._nft(render_ruleset(rules, elements), echo=True))
        except NftFailed:
            if not any(elements.values()):
                raise
            self._handles, self._slot_handles = {}, {}
            self._remember(self._nft(render_ruleset(rules, {}), echo=True))  # the sets, empty
            elements = self._add_elements(elements)
            for rid, paths in self._paths.items():
                self._paths[rid] = [p for p in paths
                                    if (self.tree.prefix or "") + p in elements.get((rid, cg.level_of(p)), ())]
        self.last_change = "rebuild"
        return elements

    def _add_elements(self, elements: dict[tuple[str, int], list[str]]) -> dict[tuple[str, int], list[str]]:
        """Add cgroup paths to their sets, one nft call per set; when it fails, path by path (nft resolves
        a path when it loads it: a cgroup that ended fails the call). Returns what was added."""
        added: dict[tuple[str, int], list[str]] = {}
        for (rid, level), paths in elements.items():
            if not paths:
                continue
            try:
                self._nft(render_elements(rid, level, paths))
                added[(rid, level)] = sorted(paths)
                continue
            except NftFailed:
                pass
            for p in paths:
                try:
                    self._nft(render_elements(rid, level, [p]))
                except NftFailed as e:
                    log.info("cgroup %s not added to steering rule %s (%s)", p, rid, e)
                    continue
                added.setdefault((rid, level), []).append(p)
        return added

    def _one_change(self, rules: list[MarkedRule], elements: dict[tuple[str, int], list[str]]) -> bool:
        """Apply ``rules`` as one rule appended to or taken from the applied ones (nothing else changed);
        False when it is not such a change (then the caller rebuilds)."""
        old, old_el = self._applied_rules, self._applied_elements

        def same_elements(ids: set[str]) -> bool:
            return {k: v for k, v in elements.items() if k[0] in ids} == \
                {k: v for k, v in old_el.items() if k[0] in ids}
        if len(rules) == len(old) + 1 and rules[:-1] == old:
            m = rules[-1]
            if not same_elements({x.rule.id for x in old}):
                return False
            slots = {(x.slot, x.ifname) for x in old}
            if any(s == m.slot and n != m.ifname for s, n in slots):
                return False
            self._remember(self._nft(render_add(m, elements, new_slot=(m.slot, m.ifname) not in slots), echo=True))
            self.last_change = "add"
            return True
        if len(rules) == len(old) - 1:
            gone = next((i for i, (a, b) in enumerate(zip(old, rules)) if a != b), len(rules))
            if old[gone + 1:] != rules[gone:] or not same_elements({x.rule.id for x in rules}):
                return False
            m = old[gone]
            handles = self._handles.get(m.rule.id, [])
            if not handles and (m.levels or not m.rule.application):  # it has lines: their handles are unknown
                return False
            last_of_slot = not any(x.slot == m.slot for x in rules)
            if last_of_slot and m.slot not in self._slot_handles:
                return False
            drop = list(handles) + (self._slot_handles.get(m.slot, []) if last_of_slot else [])
            if not rules:  # the last one: no table at all
                self._nft(render_ruleset([]))
                self._handles, self._slot_handles = {}, {}
            else:
                self._nft(render_delete(drop, [set_name(m.rule.id, lv) for lv in m.levels]))
                self._handles.pop(m.rule.id, None)
                if last_of_slot:
                    self._slot_handles.pop(m.slot, None)
            self.last_change = "remove"
            return True
        return False

    def forget(self) -> None:
        """The kernel may have changed behind our back: apply everything at the next call."""
        self._applied = None
        self.ok = False

    def follow(self) -> bool:
        """Add the scopes started since the last call to their rules' sets; True when something changed.
        A scope at a new cgroup level (a new set) rebuilds the table."""
        apps = [m for m in self._want if m.rule.application]
        if not apps or self.tree.problem:
            return False
        scopes = self.tree.scan()
        changed = False
        for m in apps:
            now = self.tree.matching(m.rule.application, scopes)  # type: ignore[arg-type]
            old = set(self._paths.get(m.rule.id, ()))
            new = [p for p in now if p not in old]
            if set(now) != old:
                changed = True
            if not new:
                self._paths[m.rule.id] = now
                continue
            known = {cg.level_of(p) for p in old}
            if any(cg.level_of(p) not in known for p in new):
                self.forget()
                self.set_rules(self._want)
                return True
            by_level: dict[tuple[str, int], list[str]] = {}
            for p in new:
                by_level.setdefault((m.rule.id, cg.level_of(p)), []).append((self.tree.prefix or "") + p)
            # (a scope gone already is left out: the next poll sees the truth)
            added = self._add_elements(by_level)
            got = {p for ps in added.values() for p in ps}
            if not got:
                continue
            log.info("steering rule %s follows %s", m.rule.id,
                     ", ".join(p for p in new if (self.tree.prefix or "") + p in got))
            self._paths[m.rule.id] = [p for p in now if p in old or (self.tree.prefix or "") + p in got]
            # the sets in the kernel hold the old paths (also of scopes that ended) and the new ones
            if self._applied is not None:
                for (_rid, lv), ps in added.items():
                    self._applied_elements[(m.rule.id, lv)] = sorted({*self._applied_elements.get((m.rule.id, lv), ()),
                                                                      *ps})
                self._applied = _key(self._applied_rules, self._applied_elements)
        return changed


def _key(rules: list[MarkedRule], elements: dict[tuple[str, int], list[str]]) -> tuple:
    return tuple(rules), tuple(sorted((k, tuple(sorted(v))) for k, v in elements.items()))


def marked_rules(rules: Iterable[SteeringRule], planner) -> list[MarkedRule]:
    """The realised marked rules among ``rules`` (in their order), with the planner's slots."""
    out = []
    for r in rules:
        got = planner.marked_slot(r.id) if r.id in planner else None
        if got is not None:
            slot, ifname, fams = got
            out.append(MarkedRule(r, slot, ifname, fams))
    return out
