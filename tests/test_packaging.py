"""The Flatpak manifest, its Python locks, the desktop file, the metainfo and the icons, checked offline.

No Flatpak runtime can be fetched here, so these are the checks that remain (test-lab.md,
section 5): desktop-file-validate, appstreamcli --no-net, flatpak-builder --show-manifest
(which only warns on an unknown key, so stderr is read) and --download-only (which fails
on a missing local source). python3-deps.json is made at release time from the locks, so
the manifest is checked in a mirror of the repository with a stand-in made by the
generator itself; one test runs the generator for real, through pip.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
APP_ID = "io.github.mhgui.MHGui"
FLATPAK = REPO / "packaging" / "flatpak"
MANIFEST = FLATPAK / f"{APP_ID}.yml"
GENERATOR = FLATPAK / "generate-python-deps"
DESKTOP = REPO / "resources" / f"{APP_ID}.desktop"
METAINFO = REPO / "resources" / f"{APP_ID}.metainfo.xml"
SYMBOLIC = REPO / "resources" / "icons" / "hicolor" / "symbolic" / "apps" / f"{APP_ID}-symbolic.svg"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

# each one justified by a comment in the manifest; nothing broader
PERMISSIONS = [
    "--socket=wayland",
    "--socket=fallback-x11",
    "--share=ipc",
    "--share=network",
    "--system-talk-name=org.freedesktop.NetworkManager",
    "--system-talk-name=io.github.mhgui.MHGui.Helper1",
    "--system-talk-name=io.github.mhgui.MHGui.MobileNode1",
    "--talk-name=org.kde.StatusNotifierWatcher",
    "--talk-name=org.freedesktop.Notifications",
]
FORBIDDEN = re.compile(r"^--(filesystem=(host|home|host-os)(:.*)?|socket=(x11|session-bus|system-bus)"
                       r"|device=all|talk-name=org\.freedesktop\.DBus.*|system-talk-name=org\.freedesktop\.DBus.*"
                       r"|own-name=.*|share=.*:.*)$")

needs = {tool: pytest.mark.skipif(shutil.which(tool) is None, reason=f"needs {tool} (scripts/test installs it)")
         for tool in ("flatpak-builder", "desktop-file-validate", "appstreamcli")}


def load_generator():
    loader = SourceFileLoader("generate_python_deps", str(GENERATOR))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    sys.dont_write_bytecode, saved = True, sys.dont_write_bytecode
    try:
        loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    return module


gen = load_generator()


def fake_files(lock_path: Path) -> dict[str, list[dict]]:
    """What pip would report, per arch: one file per hash of the lock, on a host that does not exist.

    A package with one hash per arch (a compiled wheel) gets its arch's; one hash means a pure wheel."""
    per_arch: dict[str, list[dict]] = {arch: [] for arch in gen.ARCHES}
    for name, version, hashes in gen.read_lock(lock_path).values():
        ordered = sorted(hashes)
        for i, arch in enumerate(gen.ARCHES):
            sha = ordered[i] if len(ordered) == len(gen.ARCHES) else ordered[0]
            tag = f"cp312-cp312-{gen.ARCHES[arch]}" if len(ordered) == len(gen.ARCHES) else "py3-none-any"
            per_arch[arch].append({"name": name, "version": version, "sha256": sha,
                                   "url": f"https://wheels.invalid/{name}-{version}-{tag}.whl"})
    return per_arch


def mirror(tmp_path: Path, deps_module: dict) -> Path:
    """The repository seen through symlinks, with packaging/flatpak copied and python3-deps.json set to DEPS_MODULE."""
    root = tmp_path / "repo"
    (root / "packaging" / "flatpak").mkdir(parents=True)
    for entry in REPO.iterdir():
        if entry.name != "packaging":
            (root / entry.name).symlink_to(entry)
    for f in FLATPAK.iterdir():
        if f.is_file() and f.name != "python3-deps.json":
            shutil.copy2(f, root / "packaging" / "flatpak" / f.name)
    out = root / "packaging" / "flatpak" / "python3-deps.json"
    out.write_text(json.dumps(deps_module))
    return root / "packaging" / "flatpak" / MANIFEST.name


def stand_in(manifest: Path) -> dict:
    out = manifest.parent / "python3-deps.json"
    return gen.module(fake_files(gen.RUNTIME_LOCK), fake_files(gen.BUILD_LOCK), out,
                      runtime_lock=manifest.parent / "python-deps.txt")


def flatpak_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        env[var] = str(tmp_path / "xdg" / var.lower())
        Path(env[var]).mkdir(parents=True, exist_ok=True)
    return env


def show_manifest(manifest: Path, tmp_path: Path) -> tuple[dict, str]:
    run = subprocess.run(["flatpak-builder", "--show-manifest", str(manifest)], capture_output=True, text=True,
                         env=flatpak_env(tmp_path), cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout), run.stderr


@pytest.fixture
def manifest_with_stand_in(tmp_path):
    path = mirror(tmp_path, {})
    (path.parent / "python3-deps.json").write_text(json.dumps(stand_in(path), indent=2))
    return path


def app_module(shown: dict) -> dict:
    (module,) = [m for m in shown["modules"] if isinstance(m, dict) and m.get("name") == "mhgui"]
    return module


# --- desktop file, metainfo, icons -----------------------------------------------------

@needs["desktop-file-validate"]
def test_desktop_file_validates_without_a_word():
    run = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True, timeout=30)
    assert (run.returncode, run.stdout + run.stderr) == (0, "")


@needs["appstreamcli"]
def test_metainfo_validates_offline(tmp_path):
    run = subprocess.run(["appstreamcli", "validate", "--no-net", str(METAINFO)], capture_output=True, text=True,
                         env=flatpak_env(tmp_path), timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_metainfo_names_the_desktop_file_screenshots_release_and_rating():
    root = ET.parse(METAINFO).getroot()
    assert root.findtext("id") == APP_ID
    assert [(e.get("type"), e.text) for e in root.findall("launchable")] == [("desktop-id", DESKTOP.name)]
    assert root.find("url[@type='homepage']") is not None
    assert root.find("content_rating").get("type") == "oars-1.1"
    images = [e.text for e in root.iter("image")]
    assert len(images) == 3
    for url in images:  # each screenshot is one the repository ships
        assert (REPO / "docs" / url.rsplit("/", 1)[-1]).is_file(), url
        assert "/docs/" in url
    releases = root.findall("releases/release")
    assert releases[0].get("version") == PYPROJECT["project"]["version"]
    assert releases[0].find("description") is not None
    assert {b.text for b in root.iter("binary")} == {"mhgui", "mhctl"}


def test_desktop_file_names_the_app_icon():
    assert re.search(rf"^Icon={re.escape(APP_ID)}$", DESKTOP.read_text(), re.MULTILINE)


def test_symbolic_icon_is_one_colour_svg():
    root = ET.parse(SYMBOLIC).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert (root.get("width"), root.get("height")) == ("16", "16")
    fills = {e.get("fill") for e in root.iter() if e.get("fill")}
    assert fills == {"#2e3436"}


def test_package_data_ships_every_resource_file():
    """The tray icons are in mhgui/resources/tray/: setuptools' package-data globs (recursive) must reach them."""
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["mhgui"]
    shipped = {Path(p) for pat in patterns for p in glob.glob(str(REPO / "mhgui" / pat), recursive=True)}
    present = {p for p in (REPO / "mhgui" / "resources").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert present and present <= shipped, sorted(map(str, present - shipped))


# --- the manifest ------------------------------------------------------------------------

@needs["flatpak-builder"]
def test_manifest_shows_without_warnings(manifest_with_stand_in, tmp_path):
    shown, stderr = show_manifest(manifest_with_stand_in, tmp_path)
    assert stderr == ""
    assert shown["id"] == APP_ID and shown["command"] == "mhgui"
    assert (shown["runtime"], shown["sdk"], shown["base"]) == ("org.kde.Platform", "org.kde.Sdk", "io.qt.PySide.BaseApp")
    assert shown["runtime-version"] == shown["base-version"]
    assert shown["cleanup-commands"] == ["/app/cleanup-BaseApp.sh"]
    assert [m["name"] for m in shown["modules"]] == ["python3-deps", "mhgui"]


@needs["flatpak-builder"]
def test_permissions_are_exactly_the_justified_set(manifest_with_stand_in, tmp_path):
    shown, _ = show_manifest(manifest_with_stand_in, tmp_path)
    assert shown["finish-args"] == PERMISSIONS
    assert not [a for a in shown["finish-args"] if FORBIDDEN.match(a)]
    # each permission sits under its own comment (two of one kind may share one: wayland + fallback-x11)
    lines = MANIFEST.read_text().splitlines()
    start = lines.index("finish-args:")
    previous = None
    for line in lines[start + 1:]:
        text = line.strip()
        if not text.startswith(("#", "- --")):
            break
        if text.startswith("- --"):
            arg = text[2:]
            same_kind = previous is not None and previous.startswith("- --") and \
                previous[2:].split("=")[0] == arg.split("=")[0]
            assert previous is not None and (previous.startswith("#") or same_kind), f"{arg} has no comment"
        previous = text


@needs["flatpak-builder"]
def test_every_file_the_manifest_installs_exists_under_the_app_id(manifest_with_stand_in, tmp_path):
    shown, _ = show_manifest(manifest_with_stand_in, tmp_path)
    module = app_module(shown)
    # the release's tag of the project's repository (the homepage the metainfo names)
    (source,) = module["sources"]
    homepage = ET.parse(METAINFO).getroot().findtext("url[@type='homepage']")
    assert source == {"type": "git", "url": homepage + ".git", "tag": "v" + PYPROJECT["project"]["version"]}
    installed = {}
    for command in module["build-commands"]:
        words = shlex.split(command)
        if words[0] == "install":
            src, dest = words[-2], words[-1]
            assert (REPO / src).is_file(), src
            installed[dest.replace("${FLATPAK_DEST}", "/app").replace("${FLATPAK_ID}", APP_ID)] = src
    assert set(installed) == {
        f"/app/share/applications/{APP_ID}.desktop",
        f"/app/share/metainfo/{APP_ID}.metainfo.xml",
        f"/app/share/icons/hicolor/scalable/apps/{APP_ID}.svg",
        f"/app/share/icons/hicolor/symbolic/apps/{APP_ID}-symbolic.svg",
    } | {f"/app/share/icons/hicolor/scalable/status/{APP_ID}-{state}-{scheme}.svg"
         for state in ("ok", "backup", "no-coa", "no-daemon", "error", "warning")
         for scheme in ("light", "dark")}
    # the app module builds mhgui from the wheels python3-deps leaves for it
    assert "share/python-build-wheels" in module["build-commands"][0]
    assert gen.BUILD_WHEELS.replace("${FLATPAK_DEST}", "") in module["build-commands"][0]


@needs["flatpak-builder"]
def test_download_only_finds_every_local_source_and_misses_a_removed_one(tmp_path):
    """--download-only stops (rc 1) at a local source file that is not there; a stand-in without URLs keeps it offline."""
    manifest = mirror(tmp_path, {}).with_name(gen.LOCAL_MANIFEST.name)  # this clone as the source: no network
    manifest.write_text(gen.local_manifest(manifest.with_name(MANIFEST.name)))
    offline = gen.module({}, {}, manifest.parent / "python3-deps.json", runtime_lock=manifest.parent / "python-deps.txt")
    (manifest.parent / "python3-deps.json").write_text(json.dumps(offline))
    assert all("url" not in s for s in offline["sources"])

    def download_only():
        return subprocess.run(["flatpak-builder", "--user", "--download-only", f"--state-dir={tmp_path / 'state'}",
                               str(tmp_path / "build"), str(manifest)],
                              capture_output=True, text=True, env=flatpak_env(tmp_path), cwd=tmp_path, timeout=120)

    good = download_only()
    assert good.returncode == 0, good.stderr
    (manifest.parent / "python-deps.txt").unlink()
    missing = download_only()
    assert missing.returncode == 1 and "python-deps.txt" in missing.stderr


# --- the locks -----------------------------------------------------------------------------

def test_every_locked_dependency_satisfies_pyproject():
    runtime, build = gen.read_lock(gen.RUNTIME_LOCK), gen.read_lock(gen.BUILD_LOCK)
    for requirements, lock in ((gen.app_requirements(PYPROJECT), runtime),
                               (PYPROJECT["build-system"]["requires"], build)):
        for text in requirements:
            req = Requirement(text)
            if req.name.lower().startswith("pyside6") or gen.canonical(req.name) in gen.HOST_ONLY:
                assert gen.canonical(req.name) not in lock  # the base app's, or the host engine's only
                continue
            name, version, hashes = lock[gen.canonical(req.name)]
            assert Version(version) in req.specifier, f"{name}=={version} outside {text}"
            assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)
    # the compiled one has a wheel per arch
    assert len(runtime["dbus-fast"][2]) == len(gen.ARCHES)


def test_base_app_pyside6_is_admitted_by_pyproject():
    version = Version(gen.base_app_pyside6())
    (pyside,) = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["gui"] if r.startswith("PySide6")]
    assert version in pyside.specifier
    base_version = re.search(r"^base-version: '([\d.]+)'$", MANIFEST.read_text(), re.MULTILINE).group(1)
    assert f"{version.major}.{version.minor}" == base_version


def test_check_mode_passes_offline_and_reports_a_lock_outside_pyproject(tmp_path):
    run = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    stale = tmp_path / "python-deps.txt"
    stale.write_text(gen.RUNTIME_LOCK.read_text().replace("qasync==0.28.0", "qasync==0.26.0"))
    assert gen.check(runtime_lock=stale) == [
        "python-deps.txt pins qasync==0.26.0, outside pyproject's 'qasync>=0.27,<0.29'"]
    newer_base = tmp_path / "manifest.yml"
    newer_base.write_text(MANIFEST.read_text().replace("# base-app-pyside6: 6.8.3", "# base-app-pyside6: 6.12.0"))
    assert [p for p in gen.check(manifest=newer_base) if "PySide6 6.12.0" in p]


# --- the generator -------------------------------------------------------------------------

def test_generator_refuses_a_file_whose_sha256_differs_from_the_lock():
    lock = gen.read_lock(gen.RUNTIME_LOCK)
    files = fake_files(gen.RUNTIME_LOCK)["x86_64"]
    gen.verify(files, lock, "x86_64")  # as locked: accepted
    tampered = [dict(f, sha256="0" * 64) if f["name"] == "pyroute2" else f for f in files]
    with pytest.raises(gen.Refused, match="pyroute2.*sha256 0{64} differs from the lock"):
        gen.verify(tampered, lock, "x86_64")
    with pytest.raises(gen.Refused, match="not from an https URL"):
        gen.verify([dict(files[0], url="file:///opt/wheels/" + files[0]["url"].rsplit("/", 1)[-1])] + files[1:],
                   lock, "x86_64")
    with pytest.raises(gen.Refused, match="pip chose no file for qasync"):
        gen.verify([f for f in files if f["name"] != "qasync"], lock, "x86_64")


def test_generated_module_carries_every_locked_hash_once(manifest_with_stand_in):
    module = json.loads((manifest_with_stand_in.parent / "python3-deps.json").read_text())
    sources = [s for s in module["sources"] if "url" in s]
    locked = [h for path in (gen.RUNTIME_LOCK, gen.BUILD_LOCK) for _, _, hs in gen.read_lock(path).values() for h in hs]
    assert sorted(s["sha256"] for s in sources) == sorted(locked)
    compiled = [s for s in sources if "cp312" in s["url"]]
    assert sorted(a for s in compiled for a in s["only-arches"]) == sorted(gen.ARCHES)
    assert all("only-arches" not in s for s in sources if "none-any" in s["url"])
    assert {"type": "file", "path": "python-deps.txt"} in module["sources"]


@needs["flatpak-builder"]
def test_generator_resolves_the_lock_through_pip(tmp_path):
    """The real thing: pip names each file for CPython 3.12 on both arches; its hashes are exactly the lock's."""
    manifest = mirror(tmp_path, {})
    out = manifest.parent / "python3-deps.json"
    run = subprocess.run([sys.executable, str(manifest.parent / GENERATOR.name), "--output", str(out)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    module = json.loads(out.read_text())
    locked = [h for path in (gen.RUNTIME_LOCK, gen.BUILD_LOCK) for _, _, hs in gen.read_lock(path).values() for h in hs]
    assert sorted(s["sha256"] for s in module["sources"] if "url" in s) == sorted(locked)
    assert all(s["url"].startswith("https://") for s in module["sources"] if "url" in s)
    shown, stderr = show_manifest(manifest, tmp_path)
    assert stderr == "" and shown["modules"][0]["name"] == "python3-deps"


# --- Flathub's linter rules (flatpak-builder-lint's manifest checks, restated; it is not packaged here) ---

#: paths Flatpak reserves: a --filesystem= on them (or below) is dropped at run time, and refused by Flathub
RESERVED = ("/.flatpak-info", "/app", "/bin", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/root",
            "/run/flatpak", "/run/host", "/sbin", "/usr", "/tmp")
#: bus names no app may talk to (its own sandbox, the session, the host's init and the portals' backends)
FORBIDDEN_NAMES = re.compile(r"^(org\.freedesktop\.(DBus|Flatpak|systemd1|login1|impl\.portal|portal)(\..*)?"
                             r"|org\.freedesktop\.\*|org\.gnome\.\*|org\.kde\.\*|ca\.desrt\.dconf(\..*)?"
                             r"|org\.kde\.(KWin|plasmashell)(\..*)?)$")


def flathub_problems(manifest: dict) -> list[str]:
    """What Flathub's linter (and its reviewers) refuse in a manifest as flatpak-builder shows it."""
    problems = []
    args: dict[str, list[str]] = {}
    for arg in manifest.get("finish-args", []):
        key, _, value = arg.removeprefix("--").partition("=")
        args.setdefault(key, []).append(value)
    sockets, shares = set(args.get("socket", [])), set(args.get("share", []))
    if "x11" in sockets and sockets & {"fallback-x11", "wayland"}:
        problems.append("finish-args-contains-both-x11-and-fallback-or-wayland")
    if sockets & {"x11", "fallback-x11"} and "ipc" not in shares:
        problems.append("finish-args-x11-without-ipc")
    if "fallback-x11" in sockets and "wayland" not in sockets:
        problems.append("finish-args-fallback-x11-without-wayland")
    if sockets & {"system-bus", "session-bus"}:
        problems.append("finish-args-arbitrary-dbus-access")
    for fs in args.get("filesystem", []):
        path = fs.rsplit(":", 1)[0] if fs.endswith((":ro", ":rw", ":create")) else fs
        if path in ("host", "home", "~", "host-etc", "host-os", "host-root"):
            problems.append(f"finish-args-{path}-filesystem-access")
        if re.fullmatch(r"xdg-(data|config|cache)", path):
            problems.append(f"finish-args-arbitrary-{path}-access")
        for reserved in RESERVED:
            if path == reserved or path.startswith(reserved + "/"):
                problems.append(f"finish-args-reserved-{reserved.lstrip('/')}")
    for key in ("talk-name", "system-talk-name", "own-name", "system-own-name"):
        for name in args.get(key, []):
            if FORBIDDEN_NAMES.match(name):
                problems.append(f"finish-args-{key}-{name}")
            if key.endswith("own-name") and not name.startswith(manifest["id"] + "."):
                problems.append(f"finish-args-{key}-{name}")
    if manifest.get("command", "").startswith("/"):
        problems.append("toplevel-command-is-path")
    if manifest.get("branch") not in (None, "stable", "beta"):
        problems.append("toplevel-unnecessary-branch")

    def modules(ms):
        for m in ms:
            if isinstance(m, dict):
                yield m
                yield from modules(m.get("modules", []))

    for m in modules(manifest.get("modules", [])):
        for src in m.get("sources", []):
            kind, where = src.get("type"), f"module-{m['name']}-source"
            if kind == "dir":
                problems.append(f"{where}-dir-not-allowed")  # Flathub builds published sources only
            if kind == "git":
                if src.get("branch") or not (src.get("tag") or src.get("commit")):
                    problems.append(f"{where}-git-no-commit-or-tag")
                if src.get("path") or not str(src.get("url", "")).startswith("https:"):
                    problems.append(f"{where}-git-not-https-url")
            if kind in ("archive", "file"):
                if src.get("sha1") or src.get("md5"):
                    problems.append(f"{where}-weak-checksum")
                if "url" in src and not src.get("sha256"):
                    problems.append(f"{where}-no-sha256")
            if "/" in src.get("dest-filename", ""):
                problems.append(f"{where}-dest-filename-is-path")
    return problems


@needs["flatpak-builder"]
def test_manifest_meets_flathub_linter_rules(manifest_with_stand_in, tmp_path):
    shown, _ = show_manifest(manifest_with_stand_in, tmp_path)
    assert flathub_problems(shown) == []
    # the rules bite: the manifest as it was (the host's /etc read-only, the working tree as the source)
    was = dict(shown, **{"finish-args": shown["finish-args"] + ["--filesystem=host-etc:ro", "--filesystem=/etc/mip6d.conf"]})
    was["modules"] = [dict(m, sources=[{"type": "dir", "path": "../.."}]) if isinstance(m, dict) and m.get("name") == "mhgui"
                      else m for m in shown["modules"]]
    assert sorted(flathub_problems(was)) == ["finish-args-host-etc-filesystem-access", "finish-args-reserved-etc",
                                             "module-mhgui-source-dir-not-allowed"]


@needs["flatpak-builder"]
def test_local_manifest_builds_this_clone_and_differs_only_in_the_source(tmp_path):
    manifest = mirror(tmp_path, {})
    (manifest.parent / "python3-deps.json").write_text(json.dumps(stand_in(manifest), indent=2))
    local = manifest.with_name(gen.LOCAL_MANIFEST.name)
    local.write_text(gen.local_manifest(manifest))
    committed, _ = show_manifest(manifest, tmp_path)
    shown, stderr = show_manifest(local, tmp_path)
    assert stderr == ""
    (source,) = app_module(shown)["sources"]
    assert source["type"] == "dir" and (local.parent / source["path"]).resolve() == local.parents[2].resolve()
    assert {".git", ".venv", "build"} <= set(source["skip"])
    assert dict(shown, modules=None) == dict(committed, modules=None)
    assert dict(app_module(shown), sources=None) == dict(app_module(committed), sources=None)
    with pytest.raises(gen.Refused, match="expected one git source"):
        gen.local_manifest(local)  # no git source left to replace


def test_manifest_talks_to_the_host_side_and_leaves_its_commands_out():
    text = MANIFEST.read_text()
    for name in ("io.github.mhgui.MHGui.Helper1", "io.github.mhgui.MHGui.MobileNode1"):
        assert f"  - --system-talk-name={name}\n" in text
    assert "mhgui-host" in text  # the comment says which package installs them on the host
    for command in ("/bin/mhgui-helper", "/bin/mhgui-mn", "/bin/mhgui-ha"):
        assert f"      - {command}\n" in text


def test_notification_icons_in_the_sandbox_are_names_the_manifest_exports(monkeypatch):
    """A file path inside /app means nothing to the host's notification server: the sandbox sends names."""
    pytest.importorskip("PySide6")
    from mhgui.ui import notify
    from mhgui.ui.tray import STATES

    exported = set(re.findall(r"/scalable/status/\$\{FLATPAK_ID\}-([a-z-]+)\.svg", MANIFEST.read_text()))
    monkeypatch.setenv("FLATPAK_ID", APP_ID)
    for state in STATES:
        name = notify._default_icon(state)
        assert name.startswith(APP_ID + "-") and name.removeprefix(APP_ID + "-") in exported, name
    monkeypatch.delenv("FLATPAK_ID")
    assert all(notify._default_icon(state).startswith("file:///") for state in STATES)


# --- systemd units --------------------------------------------------------------------------------

UNITS = sorted((REPO / "resources").glob("mhgui-*.service"))


def exposure(unit: Path, tmp_path: Path) -> float:
    run = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    m = re.search(rf"Overall exposure level for {re.escape(unit.name)}: (\d+\.\d+)", run.stdout)
    assert m, run.stdout + run.stderr
    return float(m.group(1))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (scripts/test installs it)")
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_exposure_is_at_most_2_5(unit, tmp_path):
    assert len(UNITS) == 3
    level = exposure(unit, tmp_path)
    assert level <= 2.5, f"{unit.name}: {level}"
    # the note at the top says the level it was given
    assert f"rates it {level}" in unit.read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (scripts/test installs it)")
def test_exposure_rises_without_the_hardening(tmp_path):
    """The measure bites: the helper's unit as it was (ProtectSystem=true, no system-call filter...) rates above 2.5."""
    helper = REPO / "resources" / "mhgui-helper.service"
    loose = tmp_path / helper.name
    keep = ("[", "Description=", "Type=", "BusName=", "ExecStart=", "WantedBy=")
    loose.write_text("\n".join(ln for ln in helper.read_text().splitlines() if ln.startswith(keep)) + "\n"
                     "ProtectSystem=true\nProtectHome=true\nPrivateTmp=true\nNoNewPrivileges=true\nUMask=0022\n")
    assert exposure(loose, tmp_path) > 2.5


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_hardening_directives(unit):
    text = unit.read_text()
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    assert settings["ProtectSystem"] == ["strict"]
    # every path the service writes is named (ReadWritePaths= or a directory systemd makes for it)
    assert settings.get("ReadWritePaths") or settings.get("StateDirectory")
    assert settings["SystemCallFilter"][0] == "@system-service" and settings["SystemCallFilter"][1].startswith("~@privileged")
    assert settings["SystemCallErrorNumber"] == ["EPERM"]
    assert settings["UMask"] == ["0077"]
    caps = settings["CapabilityBoundingSet"][0].split()
    assert caps and set(caps) <= {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert set(settings["RestrictAddressFamilies"][0].split()) <= {"AF_UNIX", "AF_NETLINK", "AF_INET", "AF_INET6"}
    assert settings["NoNewPrivileges"] == ["true"]
