"""No asyncio API that Python 3.14 deprecates, in the code or its tests (issue 16.7).

Python 3.14 deprecates the event loop policy system (asyncio.get_event_loop_policy,
set_event_loop_policy, AbstractEventLoopPolicy, DefaultEventLoopPolicy, the Windows policies;
removal planned for 3.16) and asyncio.iscoroutinefunction (inspect.iscoroutinefunction instead), and
removed the child watchers. The CI machine's Debian 12 has no Python 3.14 to run the suite on
(README, "Tests and benchmarks"), so the sources are read for them here: an attribute of the
asyncio module by one of these names, or a `from asyncio import` of one, anywhere under mhgui/,
tests/, benchmarks/ and packaging/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent
DEPRECATED_IN_314 = frozenset({
    "get_event_loop_policy", "set_event_loop_policy", "AbstractEventLoopPolicy", "DefaultEventLoopPolicy",
    "WindowsSelectorEventLoopPolicy", "WindowsProactorEventLoopPolicy", "iscoroutinefunction",
    "get_child_watcher", "set_child_watcher", "AbstractChildWatcher", "ThreadedChildWatcher",
    "PidfdChildWatcher", "SafeChildWatcher", "FastChildWatcher", "MultiLoopChildWatcher",
})


def deprecated_uses(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, name) of each use of a 3.14-deprecated asyncio name in ``source``."""
    tree = ast.parse(source, filename)
    aliases = {"asyncio"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname for a in node.names if a.name == "asyncio" and a.asname}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in DEPRECATED_IN_314 and \
                isinstance(node.value, ast.Name) and node.value.id in aliases:
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "asyncio":
            found += [(node.lineno, a.name) for a in node.names if a.name in DEPRECATED_IN_314]
    return found


def sources() -> list[Path]:
    return [p for top in ("mhgui", "tests", "benchmarks", "packaging") for p in (REPO / top).rglob("*.py")]


@pytest.mark.parametrize("top", ["mhgui", "tests", "benchmarks"])
def test_no_asyncio_call_deprecated_in_python_3_14(top):
    problems = [f"{p.relative_to(REPO)}:{line}: asyncio.{name}"
                for p in sources() if p.relative_to(REPO).parts[0] == top
                for line, name in deprecated_uses(p.read_text(), str(p))]
    assert problems == []


@given(st.sampled_from(sorted(DEPRECATED_IN_314)), st.sampled_from(["asyncio", "aio"]),
       st.sampled_from(["attribute", "from-import"]))
def test_the_scan_finds_each_deprecated_name_however_written(name, alias, form):
    head = "import asyncio\n" if alias == "asyncio" else f"import asyncio as {alias}\n"
    body = f"x = {alias}.{name}\n" if form == "attribute" else f"from asyncio import {name} as y\n"
    assert deprecated_uses(head + "\n" + body) == [(3, name)]
    # the same names elsewhere are not asyncio's
    assert deprecated_uses(f"import inspect\nx = inspect.{name}\n") == []
