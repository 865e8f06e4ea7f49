"""mhctl's manual page and shell completions (resources/) against its parser (issue 15.9).

Every command, option, choice and help text of :func:`mhgui.cli.parser` must be in
``resources/mhctl.1`` and every command and option in ``resources/completions/mhctl.bash`` and
``_mhctl``: a parser change without a rerun of ``scripts/mhctl-docs`` fails here. The page passes
groff's and man's warnings; bash (and zsh, where installed) complete from the scripts themselves.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mhgui.cli import parser

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "resources" / "mhctl.1"
BASH = ROOT / "resources" / "completions" / "mhctl.bash"
ZSH = ROOT / "resources" / "completions" / "_mhctl"


def commands(p: argparse.ArgumentParser | None = None, path: tuple[str, ...] = ()):
    """(path, parser) for mhctl and every command and subcommand under it, e.g. (("lab", "up"), ...)."""
    p = p or parser()
    yield path, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                yield from commands(sp, path + (name,))


def options(p: argparse.ArgumentParser) -> set[str]:
    return {s for a in p._actions for s in a.option_strings}


def helps(p: argparse.ArgumentParser) -> list[str]:
    """The help texts of ``p``'s arguments as argparse prints them (``%(default)s`` expanded)."""
    f = p._get_formatter()
    return [f._expand_help(a) for a in p._actions
            if a.help and a.help != argparse.SUPPRESS and not isinstance(a, (argparse._HelpAction,
                                                                               argparse._SubParsersAction))]


def plain(roff: str) -> str:
    """The words of roff text: macros and font escapes out, ``\\-`` as ``-``, whitespace collapsed."""
    lines = [ln for ln in roff.splitlines() if not ln.startswith(".") or ln.startswith((".B ", ".I "))]
    text = "\n".join(re.sub(r"^\.[BI] ", "", ln) for ln in lines)
    text = re.sub(r"\\f[BIRP]|\\[,/]", "", text).replace("\\-", "-").replace("\\\\", "\\")
    return " ".join(text.split())


def man_sections() -> dict[tuple[str, ...], str]:
    """The page's text per command: ``.SS mhctl lab up`` to the next ``.SS``/``.SH``; () = the whole page."""
    text = MAN.read_text()
    out = {(): text}
    heads = list(re.finditer(r"^\.S[SH] (.*)$", text, re.M))
    for i, m in enumerate(heads):
        title = plain(m.group(1))
        if m.group(0).startswith(".SS") and title.startswith("mhctl "):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            out[tuple(title.split()[1:])] = text[m.end():end]
    return out


def test_the_man_page_has_every_command_option_and_help_text():
    sections = man_sections()
    got = {path for path in sections if path}
    want = {path for path, _ in commands() if path}
    assert got == want, f"missing: {sorted(want - got)}, not in the parser: {sorted(got - want)}"
    for path, p in commands():
        raw = sections[path] if path else MAN.read_text().split("\n.SH OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]
        body = plain(raw)
        # the option's own entry: the line after a .TP, e.g. "\fB\-n\fR \fI\,N\/\fR, \fB\-\-last\fR \fI\,N\/\fR"
        entries = [plain(m) for m in re.findall(r"^\.TP\n(.*)$", raw, re.M)]
        for opt in sorted(options(p) - {"-h", "--help"}):
            assert any(re.search(rf"(^|, ){re.escape(opt)}( |,|$)", e) for e in entries), \
                f"mhctl {' '.join(path)}: {opt} has no entry on the page"
        for h in helps(p):
            assert " ".join(h.split()) in body, f"mhctl {' '.join(path)}: help text not on the page: {h!r}"
        for a in p._actions:
            for c in (a.choices or ()) if not isinstance(a, argparse._SubParsersAction) else ():
                assert c in body, f"mhctl {' '.join(path)}: choice {c} not on the page"
    # the parts that are not the parser's
    page = MAN.read_text()
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "JSON OUTPUT", "EXIT STATUS", "FILES",
                    "ENVIRONMENT", "EXAMPLES", "SEE ALSO"):
        assert f"\n.SH {heading}\n" in page, heading
    assert '"schema": 1' in plain(page) and "failover.jsonl" in plain(page)


def test_the_man_page_passes_groff_and_man_warnings():
    if shutil.which("groff") is None:
        pytest.fail("groff is not installed (groff-base: man-db depends on it)")
    p = subprocess.run(["groff", "-man", "-ww", "-z", str(MAN)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    if shutil.which("man"):
        p = subprocess.run(["man", "--warnings", "-l", str(MAN)], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
        assert p.returncode == 0 and p.stderr == "", p.stderr
        assert "mhctl - status, events and mobility" in p.stdout


BASH_COMPLETE = r"""
source "$1"
comp() {
  COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
  COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
  _shtab_mhctl mhctl "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
  printf '%s\n' "$*=${COMPREPLY[*]}"
}
while read -r -a w; do
  [[ ${w[-1]} == _ ]] && w[-1]=""
  comp mhctl "${w[@]}"
done
"""


def bash_complete(lines: list[str]) -> dict[str, set[str]]:
    """What bash completes for ``mhctl LINE``: LINE's last word is the one being completed (``_``: an empty
    word, as after a space). Returns {LINE: the words offered}."""
    p = subprocess.run(["bash", "-c", BASH_COMPLETE, "bash", str(BASH)], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    rows = p.stdout.splitlines()
    assert len(rows) == len(lines), p.stdout
    return {line: set(row.partition("=")[2].split()) for line, row in zip(lines, rows)}


def test_bash_completes_every_command_and_option():
    cmds = [(path, p) for path, p in commands() if path and path != ("lab",)]
    lab = dict(commands())[("lab",)]
    queries = ["_", "lab _"] + [" ".join(path) + " --" for path, _ in cmds]
    got = bash_complete(queries)
    assert got["_"] == set(dict(commands())[()]._subparsers._group_actions[0].choices)
    assert got["lab _"] == set(lab._subparsers._group_actions[0].choices)
    for path, p in cmds:
        want = {o for o in options(p) if o.startswith("--")}
        assert got[" ".join(path) + " --"] == want, " ".join(path)


def test_bash_completes_interfaces_and_choices():
    got = bash_complete(["rebind 2001:db8::1 _", "rules _", "lab cut _", "move FLOW l"])
    assert "lo" in got["rebind 2001:db8::1 _"] and got["move FLOW l"] == {"lo"}  # the kernel's interfaces
    assert got["rules _"] == {"list", "add", "edit", "remove"}
    assert got["lab cut _"] == {"up0", "up1"}


ZSH_EVAL = r"""
_arguments() { : }
compdef() { : }
_describe() { local n=$2 e; for e in "${(@P)n}"; do print -r -- "CMD ${1// /_} ${e%%:*}"; done }
source "$1"
_shtab_mhctl_commands
_shtab_mhctl_lab_commands
for v in ${(k)parameters[(I)_shtab_mhctl*_options]}; do for e in "${(@P)v}"; do print -r -- "OPT $v $e"; done; done
"""


def zsh_lists() -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """The script's command lists and option specs as zsh itself evaluates them (completion functions
    stubbed): ({"mhctl_commands": {"status", ...}, "mhctl_lab_commands": {...}}, {array name: [spec, ...]})."""
    p = subprocess.run(["zsh", "-f", "-c", ZSH_EVAL, "zsh", str(ZSH)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    cmds: dict[str, set[str]] = {}
    opts: dict[str, list[str]] = {}
    for ln in p.stdout.splitlines():
        kind, key, value = ln.split(" ", 2)
        if kind == "CMD":
            cmds.setdefault(key, set()).add(value)
        else:
            opts.setdefault(key, []).append(value)
    return cmds, opts


def zsh_has(specs: list[str], opt: str) -> bool:
    """``opt`` is one of the _arguments specs (``(- : *)--help[...]``, ``--json[...]``, ``*--allow-user[...]:U:``)."""
    return any(re.match(rf"^(\([^)]*\))?\*?{re.escape(opt)}(\[|:|$)", s) for s in specs)


def test_zsh_script_lists_every_command_and_option_as_text():
    """Without zsh: the script's own text names every command in its command lists and every option."""
    text = ZSH.read_text()
    assert text.startswith("#compdef mhctl\n")
    blocks = dict(re.findall(r"^(_shtab_\w+)_commands\(\) \{\n  local _commands=\(\n(.*?)\n  \)", text, re.M | re.S))
    for path, p in commands():
        sub = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if sub:
            fn = "_shtab_mhctl" + "".join("_" + w for w in path)
            names = {ln.strip().split(":", 1)[0] for ln in blocks[fn].splitlines()}
            assert names == set(sub[0].choices), path
        arr = "_shtab_mhctl" + "".join("_" + w.replace("-", "_") for w in path) + "_options"
        m = re.search(rf"^{arr}=\(\n(.*?)^\)", text, re.M | re.S)
        assert m, arr
        for o in options(p):
            assert re.search(rf"(^|[\"{{,)*\s]){re.escape(o)}[\[\",}}]", m.group(1), re.M), f"{arr}: {o}"


def test_zsh_evaluates_the_script_with_every_command_and_option():
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed (scripts/test installs it)")
    cmds, opts = zsh_lists()
    top, lab = dict(commands())[()], dict(commands())[("lab",)]
    assert cmds["mhctl_commands"] == set(top._subparsers._group_actions[0].choices)
    assert cmds["mhctl_lab_commands"] == set(lab._subparsers._group_actions[0].choices)
    for path, p in commands():
        arr = "_shtab_mhctl" + "".join("_" + w.replace("-", "_") for w in path) + "_options"
        for o in options(p):
            assert zsh_has(opts[arr], o), f"{arr}: {o}"
