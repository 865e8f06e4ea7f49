"""What this process cannot see, and the permission that would let it (issue 6, item 2).

In a Flatpak sandbox, or under a restrictive D-Bus policy, mhgui may be unable
to see NetworkManager, the privileged helper or even the node's interfaces. An
empty or wrong picture must never pass for the node's: :func:`problems` turns
what the sources and probes report into a list of :class:`AccessProblem`, each
with a stable ``code``, a sentence for the user and, where one applies, the
permission that would fix it (a Flatpak finish-arg inside the sandbox, the
D-Bus policy or group outside it).

Inputs (no Qt, no I/O):

- the store's source statuses (``StateStore.sources``): ``networkmanager`` and
  ``netlink`` as their sources report them, plus two set by the access probe
  (:mod:`mhgui.sources.access`):

  ``system-bus``  ok | missing | refused | unreachable
  ``helper``      present | absent | denied | unknown

- the node state (which interfaces netlink shows);
- the sandbox, parsed from ``/.flatpak-info`` by :func:`parse_flatpak_info`.

Codes: ``no-system-bus``, ``networkmanager-denied``, ``loopback-only``,
``netlink-denied``, ``helper-absent``, ``helper-denied``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..i18n import N_, _
from .model import InterfaceKind, NodeState

NM_NAME = "org.freedesktop.NetworkManager"
HELPER_NAME = "io.github.mhgui.MHGui.Helper1"
HELPER_POLICY = "/usr/share/dbus-1/system.d/io.github.mhgui.MHGui.Helper1.conf"
NM_POLICY = "/usr/share/dbus-1/system.d/org.freedesktop.NetworkManager.conf"
INSTALL_HELPER = N_("the mhgui-host Debian package (or sudo ./scripts/install-helper from a clone)")

#: the store keys the access probe reports under
SYSTEM_BUS = "system-bus"
HELPER = "helper"

BUS_FAILED = frozenset({"missing", "refused", "unreachable"})


# --------------------------------------------------------------------------- the sandbox
@dataclass(frozen=True, slots=True)
class Sandbox:
    """What the process knows of its sandbox. ``kind``: None (none seen) or "flatpak".

    ``shared``/``sockets``: the ``[Context]`` lists of ``/.flatpak-info``;
    ``system_names``: the ``[System Bus Policy]`` (bus name or ``prefix.*`` →
    see | talk | own). ``error``: the file exists but could not be read or parsed
    (then the permissions are unknown and nothing is assumed granted).
    """

    kind: str | None = None
    app_id: str = ""
    path: str = ""
    shared: frozenset[str] = frozenset()
    sockets: frozenset[str] = frozenset()
    system_names: Mapping[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def flatpak(self) -> bool:
        return self.kind == "flatpak"

    def can_talk_system(self, name: str) -> bool | None:
        """Whether the sandbox lets the app call ``name`` on the system bus (None: not sandboxed, or unknown)."""
        if not self.flatpak or self.error:
            return None
        if "system-bus" in self.sockets:
            return True
        for pattern, level in self.system_names.items():
            if level not in ("talk", "own"):
                continue
            if pattern == name or (pattern.endswith(".*") and name.startswith(pattern[:-1])):
                return True
        return False

    @property
    def network_shared(self) -> bool | None:
        if not self.flatpak or self.error:
            return None
        return "network" in self.shared

    def describe(self) -> str:
        if not self.flatpak:
            return _("no sandbox")
        app = self.app_id or _("(unknown app)")  # outside the f-string, where xgettext finds it
        return f"Flatpak {app}" + (f" ({self.error})" if self.error else "")


NO_SANDBOX = Sandbox()


def parse_flatpak_info(text: str, path: str = "/.flatpak-info") -> Sandbox:
    """``/.flatpak-info`` (a GKeyFile, written by flatpak for every sandbox) → :class:`Sandbox`.

    A file that does not parse still means "in a Flatpak": ``error`` says why,
    and no permission is taken as granted.
    """
    import configparser  # here: only a sandbox has the file (`mhctl status` starts faster, issue 14)

    cp = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",),
                                   comment_prefixes=("#",), empty_lines_in_values=False)
    cp.optionxform = str  # type: ignore[assignment,method-assign]  (bus names are case-sensitive)
    try:
        cp.read_string(text, source=path)
    except (configparser.Error, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        return Sandbox("flatpak", path=path, error=_("{path} does not parse: {why}").format(path=path, why=first))

    def items(section: str, key: str) -> frozenset[str]:
        raw = cp.get(section, key, fallback="")
        return frozenset(p.strip() for p in raw.split(";") if p.strip() and not p.strip().startswith("!"))

    names = dict(cp.items("System Bus Policy")) if cp.has_section("System Bus Policy") else {}
    return Sandbox(
        "flatpak",
        app_id=cp.get("Application", "name", fallback=""),
        path=path,
        shared=items("Context", "shared"),
        sockets=items("Context", "sockets"),
        system_names={k: v.strip() for k, v in names.items()},
    )


# --------------------------------------------------------------------------- problems
@dataclass(frozen=True, slots=True)
class AccessProblem:
    """Something this process cannot see. ``affects``: what is missing or wrong because of it
    (``taxonomy``, ``networkmanager``, ``rebind``, ``steering``); ``permission``: what would
    let the app see it (a Flatpak finish-arg, a D-Bus policy or group), None when it is not a
    matter of permission; ``fix``: what to do, in one sentence."""

    code: str
    message: str
    permission: str | None = None
    fix: str = ""
    affects: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "permission": self.permission,
                "fix": self.fix, "affects": list(self.affects)}


def loopback_only(state: NodeState) -> bool:
    """netlink shows interfaces, and every one of them is a loopback."""
    return bool(state.interfaces) and all(
        i.kind is InterfaceKind.LOOPBACK or i.name == "lo" for i in state.interfaces.values())


def _detail(d: str) -> str:
    d = d.strip().rstrip(".")
    return f" ({d})" if d else ""


def problems(sources: Mapping[str, tuple[str, str]], state: NodeState, sandbox: Sandbox = NO_SANDBOX, *,
             networkmanager_wanted: bool = True, engine: bool = False) -> list[AccessProblem]:
    """Every access problem, most fundamental first. Statuses not (yet) reported raise nothing.

    ``networkmanager_wanted``: False when the user turned NetworkManager off
    (``--no-networkmanager``): its absence is then no problem. ``engine``: mhgui's own
    mobility engine is connected: it rebinds through its own API, so without the helper only
    steering rules are missing.
    """
    out: list[AccessProblem] = []
    fp = sandbox.flatpak
    bus, bus_detail = sources.get(SYSTEM_BUS, ("", ""))
    nm, nm_detail = sources.get("networkmanager", ("", ""))
    helper, helper_detail = sources.get(HELPER, ("", ""))
    netlink, netlink_detail = sources.get("netlink", ("", ""))

    # 1. the system bus itself: nothing on it can be seen, NetworkManager and the helper included
    bus_failed = bus in BUS_FAILED
    if bus_failed:
        if fp and sandbox.can_talk_system(NM_NAME) is False and sandbox.can_talk_system(HELPER_NAME) is False:
            perm = f"--system-talk-name={NM_NAME}"
            fix = _("grant the Flatpak --system-talk-name={nm} and --system-talk-name={helper} "
                    "(flatpak override --system-talk-name=... {app})").format(
                        nm=NM_NAME, helper=HELPER_NAME, app=sandbox.app_id or "APP")
            why = _("the sandbox gives this app no system bus")
        elif bus == "refused":
            perm = _('the system bus policy must accept this user (<allow user="*"/> in '
                     '/usr/share/dbus-1/system.conf)')
            fix = _("check the <policy> of the system bus; it refused this user's connection")
            why = _("the system bus refused this user")
        else:
            perm = None
            fix = _("start the system bus (dbus-daemon or dbus-broker), or point DBUS_SYSTEM_BUS_ADDRESS "
                    "(--system-bus) at it")
            why = _("the system bus cannot be reached")
        out.append(AccessProblem(
            "no-system-bus",
            _("No access to the D-Bus system bus: {why}. NetworkManager's device view and "
              "the privileged helper (rebinding, steering rules) are unavailable.").format(
                  why=why + _detail(bus_detail)),
            perm, fix, ("networkmanager", "rebind", "steering")))

    # 2. NetworkManager's name: refused by the policy, or hidden by the sandbox
    if networkmanager_wanted and not bus_failed:
        hidden = fp and sandbox.can_talk_system(NM_NAME) is False and nm in ("absent", "no-access")
        if hidden:
            out.append(AccessProblem(
                "networkmanager-denied",
                _("NetworkManager is not reachable: the Flatpak sandbox hides org.freedesktop.NetworkManager from "
                  "this app, so Wi-Fi, modems and NetworkManager's device states are unknown (netlink alone)."),
                f"--system-talk-name={NM_NAME}",
                f"flatpak override --system-talk-name={NM_NAME} {sandbox.app_id or 'APP'}",
                ("networkmanager",)))
        elif nm == "no-access":
            out.append(AccessProblem(
                "networkmanager-denied",
                _("NetworkManager is not reachable: the system bus does not let this app talk to "
                  "org.freedesktop.NetworkManager{detail}, so Wi-Fi, modems and NetworkManager's device "
                  "states are unknown (netlink alone).").format(detail=_detail(nm_detail)),
                _("the D-Bus policy for {name} ({policy}) must let this user send to it").format(
                    name=NM_NAME, policy=NM_POLICY),
                _("allow this user in NetworkManager's D-Bus policy, or run as a user it allows"),
                ("networkmanager",)))

    # 3. what netlink sees: nothing, or only this namespace's loopback
    if netlink == "no-access":
        out.append(AccessProblem(
            "netlink-denied",
            _("No access to the kernel's interfaces: this process may not open a netlink socket{detail}. "
              "No interface, address or taxonomy can be shown.").format(detail=_detail(netlink_detail)),
            None, _("run mhgui without a seccomp or security profile that blocks AF_NETLINK sockets"),
            ("taxonomy",)))
    elif netlink == "ok" and loopback_only(state):
        if fp and sandbox.network_shared is False:
            out.append(AccessProblem(
                "loopback-only",
                _("Only the loopback interface is visible: the Flatpak sandbox has no access to the host's network, "
                  "so the taxonomy shown is the sandbox's, not this node's."),
                "--share=network", f"flatpak override --share=network {sandbox.app_id or 'APP'}", ("taxonomy",)))
        else:
            out.append(AccessProblem(
                "loopback-only",
                _("Only the loopback interface is visible: this process runs in a network namespace of its own "
                  "(a sandbox or container without the host's network), so the taxonomy shown is that namespace's, "
                  "not this node's."),
                "--share=network" if fp else None,
                _("run mhgui in the host's network namespace") + (" (Flatpak: --share=network)" if fp else ""),
                ("taxonomy",)))

    # 4. the privileged helper
    if not bus_failed:
        hidden = fp and sandbox.can_talk_system(HELPER_NAME) is False
        if helper == "absent" and hidden:
            out.append(AccessProblem(
                "helper-absent",
                _("The privileged helper is not reachable: the Flatpak sandbox hides io.github.mhgui.MHGui.Helper1, "
                  "so rebinding home addresses and steering rules are unavailable."),
                f"--system-talk-name={HELPER_NAME}",
                _("flatpak override --system-talk-name={helper} {app}; the helper itself "
                  "is installed on the host with {install}").format(
                      helper=HELPER_NAME, app=sandbox.app_id or "APP", install=_(INSTALL_HELPER)),
                ("rebind", "steering")))
        elif helper == "absent" and engine:
            out.append(AccessProblem(
                "helper-absent",
                # (how to install it is the fix, shown after the message: not said twice)
                _("The privileged helper ({helper}) is not installed{detail}: steering rules "
                  "are unavailable (the mobility engine rebinds home addresses by itself).").format(
                      helper=HELPER_NAME, detail=_detail(helper_detail)),
                None, _("install the helper on the host: {install}").format(install=_(INSTALL_HELPER)),
                ("steering",)))
        elif helper == "absent":
            out.append(AccessProblem(
                "helper-absent",
                _("The privileged helper ({helper}) is not installed{detail}: rebinding home addresses and "
                  "steering rules are unavailable.").format(helper=HELPER_NAME, detail=_detail(helper_detail)),
                None, _("install the helper on the host: {install}").format(install=_(INSTALL_HELPER)),
                ("rebind", "steering")))
        elif helper == "denied":
            out.append(AccessProblem(
                "helper-denied",
                _("The system bus policy does not let this user call the privileged helper ({helper})"
                  "{detail}: rebinding home addresses and steering rules are unavailable.").format(
                      helper=HELPER_NAME, detail=_detail(helper_detail)),
                _("membership of the group netdev or sudo (the policy in {policy})").format(policy=HELPER_POLICY),
                _("add the user to the netdev group (then log in again), or allow it in a policy file of your own "
                  "in /etc/dbus-1/system.d/"),
                ("rebind", "steering")))
    return out


def taxonomy_is_node(found: list[AccessProblem]) -> bool:
    """False when a problem means the taxonomy shown is not this node's (or there is none)."""
    return not any("taxonomy" in p.affects for p in found)


def sentence(p: AccessProblem) -> str:
    """The problem and what fixes it, as the banner words it (without its "No access — ")."""
    return p.message + (_(" Needs: {what}.").format(what=p.permission) if p.permission else
                        _(" Fix: {what}.").format(what=p.fix) if p.fix else "")


def banner_lines(found: list[AccessProblem]) -> list[str]:
    """One line per problem, as the window shows them."""
    return [("" if p.message.startswith(_("No access")) else _("No access — ")) + sentence(p) for p in found]


def helper_unreachable(sources: Mapping[str, tuple[str, str]]) -> bool:
    """The access probe found the privileged helper out of reach (not installed, refused, or no system bus):
    what only it does (restarting a daemon, steering rules) cannot be asked of it. False while unknown."""
    return sources.get(HELPER, ("", ""))[0] in ("absent", "denied") or sources.get(SYSTEM_BUS, ("", ""))[0] in BUS_FAILED


def steering_blocker(found: list[AccessProblem]) -> AccessProblem | None:
    """The first of ``found`` that makes steering rules unavailable (no system bus, the helper absent,
    hidden or refused), None when steering rules can be tried."""
    return next((p for p in found if "steering" in p.affects), None)


__all__ = [
    "AccessProblem", "Sandbox", "NO_SANDBOX", "parse_flatpak_info", "problems", "loopback_only",
    "taxonomy_is_node", "banner_lines", "sentence", "steering_blocker", "helper_unreachable", "SYSTEM_BUS", "HELPER", "NM_NAME", "HELPER_NAME",
]
