"""The sdist and the wheel as PyPI would get them, and the staged installs of scripts/install-*.

`python -m build` makes the sdist, then the wheel from that sdist (so the sdist must be complete);
the wheel goes into a fresh virtual environment with plain `pip install` (its dependencies from the
package index) and no extra: the host side works there without Qt. scripts/install-helper and
scripts/install-engine stage a venv under DESTDIR whose files must name where it will run, not the
staging directory: the staged tree, moved to its real place, runs.
"""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
HOST_SCRIPTS = ("mhctl", "mhgui-helper", "mhgui-mn", "mhgui-ha")
#: what the sdist carries beyond the package: every file under these (MANIFEST.in)
SDIST_TREES = ("resources", "packaging", "scripts", "docs", "tests", "benchmarks", "po")
#: made at build or run time, never shipped
NOT_SHIPPED = ("__pycache__", ".pyc", "packaging/flatpak/python3-deps.json",
               "packaging/flatpak/io.github.mhgui.MHGui.local.yml")


def sh(*cmd, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    pytest.importorskip("build", reason="needs the build front end (pip install '.[test]')")
    out = tmp_path_factory.mktemp("dist")
    run = sh(sys.executable, "-m", "build", "--outdir", out, REPO, cwd=REPO)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return out


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        return email.parser.Parser().parsestr(z.read(f"mhgui-{VERSION}.dist-info/METADATA").decode())


def test_sdist_carries_resources_packaging_scripts_docs_and_the_license(dist):
    with tarfile.open(dist / f"mhgui-{VERSION}.tar.gz") as tar:
        members = {m.name.split("/", 1)[1]: m for m in tar.getmembers() if "/" in m.name}
    on_disk = {str(p.relative_to(REPO)) for top in SDIST_TREES for p in (REPO / top).rglob("*")
               if p.is_file() and not any(n in str(p.relative_to(REPO)) for n in NOT_SHIPPED)}
    assert on_disk and sorted(on_disk - set(members)) == []
    assert {"LICENSE", "README.md", "pyproject.toml", "MANIFEST.in", "mhgui/__init__.py",
            "packaging/debian/control", "packaging/debian/rules",
            "packaging/flatpak/io.github.mhgui.MHGui.yml"} <= set(members)
    assert not [n for n in members if any(x in n for x in NOT_SHIPPED)]
    # the scripts stay executable
    for script in ("scripts/run", "scripts/test", "scripts/install-helper", "scripts/install-engine",
                   "scripts/build-deb", "packaging/debian/rules", "packaging/flatpak/generate-python-deps"):
        assert members[script].mode & 0o111, script


def test_wheel_metadata_license_and_extras(dist):
    wheel = dist / f"mhgui-{VERSION}-py3-none-any.whl"
    meta = _metadata(wheel)
    assert meta["License-Expression"] == PYPROJECT["project"]["license"] == "GPL-3.0-or-later"
    assert meta.get_all("License-File") == ["LICENSE"]
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert z.read(f"mhgui-{VERSION}.dist-info/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()
        entry_points = z.read(f"mhgui-{VERSION}.dist-info/entry_points.txt").decode()
    assert (REPO / "LICENSE").read_text().startswith(" " * 20 + "GNU GENERAL PUBLIC LICENSE\n")
    assert "mhgui/resources/tray/ok-light.svg" in names
    # the German catalogue (mhgui/i18n.py reads it from the package: Debian and Flatpak install this wheel)
    assert "mhgui/locale/de/LC_MESSAGES/mhgui.mo" in names
    requires = meta.get_all("Requires-Dist")
    unconditional = [r for r in requires if "extra ==" not in r]
    assert not [r for r in unconditional if r.lower().startswith(("pyside6", "qasync", "shiboken"))]
    gui = {r.split(";")[0].split("<")[0].split(">")[0].strip() for r in requires if 'extra == "gui"' in r}
    assert gui == {"PySide6-Essentials", "qasync"}
    assert 'mhgui[gui]; extra == "test"' in requires  # the tests run the window: '.[test]' brings the GUI
    for script in HOST_SCRIPTS:
        assert f"\n{script} = " in entry_points
    assert "[gui_scripts]\nmhgui = mhgui.gui_entry:main" in entry_points


def test_wheel_without_extras_gives_the_host_side_without_qt(dist, tmp_path):
    venv = tmp_path / "venv"
    assert sh(sys.executable, "-m", "venv", venv).returncode == 0
    py = venv / "bin" / "python"
    wheel = dist / f"mhgui-{VERSION}-py3-none-any.whl"
    run = sh(py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel)
    assert run.returncode == 0, run.stderr[-4000:]
    installed = sh(py, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check").stdout.lower()
    assert "pyside6" not in installed and "qasync" not in installed and "shiboken6" not in installed
    assert sh(py, "-c", "import PySide6").returncode == 1
    assert sh(py, "-m", "pip", "check", "--disable-pip-version-check").returncode == 0
    bin_ = venv / "bin"
    run = sh(bin_ / "mhctl", "--version")
    assert (run.returncode, run.stdout.strip()) == (0, f"mhctl {VERSION}"), run.stderr
    for script in ("mhgui-helper", "mhgui-mn", "mhgui-ha"):
        run = sh(bin_ / script, "--help")
        assert run.returncode == 0 and run.stdout.startswith("usage:"), (script, run.stderr)
        assert "PySide6" not in run.stderr
    # the window says which extra it needs, in one line and without a traceback
    run = sh(bin_ / "mhgui")
    assert run.returncode == 2 and "pip install 'mhgui[gui]'" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("script", ["install-helper", "install-engine"])
def test_staged_install_names_its_real_place_and_runs_there(script, tmp_path):
    """DESTDIR staging: no file of the staged venv names the staging directory; moved to --prefix, it runs."""
    final = tmp_path / "final" / "mhgui"  # the --prefix, where the staged tree will be moved
    stage = tmp_path / "stage"
    run = sh(REPO / "scripts" / script, "--prefix", final, cwd=REPO, env=dict(os.environ, DESTDIR=str(stage)))
    assert run.returncode == 0, run.stderr[-4000:]
    leaked = sh("grep", "-rlF", str(stage), stage).stdout.split()
    assert leaked == []
    staged_venv = stage / str(final).lstrip("/") / "venv"
    for name in HOST_SCRIPTS:
        # "#!PYTHON", or for a long path pip's "#!/bin/sh" + "'''exec' PYTHON" lines
        head = "\n".join((staged_venv / "bin" / name).read_text().splitlines()[:2])
        assert f"{final}/venv/bin/python" in head, (name, head)
    final.parent.mkdir(parents=True)
    shutil.move(staged_venv.parent, final)
    run = sh(final / "venv" / "bin" / "mhgui-mn", "--help")
    assert run.returncode == 0 and run.stdout.startswith("usage: mhgui-mn"), run.stderr
    run = sh(final / "venv" / "bin" / "mhctl", "--version")
    assert run.stdout.strip() == f"mhctl {VERSION}", run.stderr
    assert sh(final / "venv" / "bin" / "python", "-c", "import PySide6").returncode == 1  # no Qt on the host side
    unit = "mhgui-helper.service" if script == "install-helper" else "mhgui-mn.service"
    assert f"ExecStart={final}/venv/bin/python -m " in (stage / "usr/lib/systemd/system" / unit).read_text()
