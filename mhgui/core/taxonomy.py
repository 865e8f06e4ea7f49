"""The (x,y,z) multihoming taxonomy of draft-montavont-mobileip-multihoming-pb-statement-04.

Pure data and pure functions (stdlib only, no Qt, no I/O). The draft
("Analysis of Multihoming in Mobile IPv6", June 2005) is our domain model:

- section 3 lists the goals of multihoming (:class:`Goal`);
- section 4 defines the taxonomy ``(x,y,z)``: x = number of active interfaces,
  y = number of Home Addresses (HoAs), z = number of Care-of Addresses (CoAs),
  each written ``0``, ``1`` or ``n`` (:func:`label_of`), and the wildcard
  ``*`` = "1 or n" (:func:`pattern_matches`);
- section 5 names nine configurations (5.1 to 5.9) with their achievable goals;
  :data:`TABLE` covers them and the 18 labels the draft does not name;
- sections 6 and 7 list the issues, each tied to a wildcard (:data:`ISSUES`).

How the counts are meant to be taken (the draft's section 2 and 4, made
precise for this program):

- x counts *active* interfaces: up and holding a valid address, i.e. a CoA or,
  on a home link, the HoA itself (section 2, "Simultaneously using multiple
  interfaces": "at least one valid address named for each of the said multiple
  interfaces"). An interface away from home without a CoA is not counted.
- y counts the HoAs configured for Mobile IPv6 (y = 0: not a Mobile IPv6 node).
- z counts the CoAs: valid addresses from foreign prefixes. For y = 0 there is
  nothing to be "care-of" for; z then counts the node's global addresses.
- ``at_home`` is True when one active interface is attached to a home link
  and uses its HoA directly (no binding for that HoA). It is only meaningful
  with x >= 1 and y >= 1; :func:`scenario_for` ignores it otherwise.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..i18n import N_, _

if TYPE_CHECKING:  # only for type hints: keep this module free of imports at run time
    from mhgui.core.capabilities import DaemonCapabilities

__all__ = [
    "ISSUES",
    "TABLE",
    "DraftIssue",
    "Goal",
    "Scenario",
    "TableEntry",
    "format_label",
    "goals_available",
    "label_of",
    "parse_label",
    "pattern_matches",
    "scenario_for",
]

Label = tuple[str, str, str]

_VALUES = ("0", "1", "n")
_PATTERN_RE = re.compile(r"^\(\s*([01n*])\s*,\s*([01n*])\s*,\s*([01n*])\s*\)$")


# --------------------------------------------------------------------------
# Section 4: labels and wildcards
# --------------------------------------------------------------------------


def label_of(count: int) -> str:
    """The draft's value for a count (section 4): ``"0"``, ``"1"`` or ``"n"`` (count >= 2).

    Raises :class:`ValueError` for a negative count.
    """
    if count < 0:
        raise ValueError(f"a count cannot be negative: {count}")
    if count == 0:
        return "0"
    if count == 1:
        return "1"
    return "n"


def format_label(label: Label) -> str:
    """``("n", "1", "n")`` -> ``"(n,1,n)"`` (the draft's notation, section 4)."""
    return "(" + ",".join(label) + ")"


def parse_label(text: str) -> Label:
    """``"(n,1,n)"`` -> ``("n", "1", "n")``; only ``0``, ``1``, ``n`` are allowed (no ``*``)."""
    m = _PATTERN_RE.match(text.strip())
    if m is None or "*" in m.groups():
        raise ValueError(f"not a taxonomy label: {text!r}")
    return (m.group(1), m.group(2), m.group(3))


def pattern_matches(pattern: str, label: Label) -> bool:
    """Whether a label such as ``("n", "1", "n")`` falls under a wildcard such as ``"(n,*,*)"``.

    Draft section 4: "A value '*' indicates that the number can be '1' or 'n'".
    So ``*`` matches ``"1"`` and ``"n"`` but **never** ``"0"``: ``(n,*,*)`` does
    not cover ``(n,0,1)`` nor ``(n,n,0)``. A ``"0"`` in a pattern only matches
    ``"0"`` (the draft uses it in ``(n,n,0)``).

    Raises :class:`ValueError` for a malformed pattern or label.
    """
    m = _PATTERN_RE.match(pattern.strip())
    if m is None:
        raise ValueError(f"not a taxonomy wildcard: {pattern!r}")
    if len(label) != 3 or any(v not in _VALUES for v in label):
        raise ValueError(f"not a taxonomy label: {label!r}")
    for want, have in zip(m.groups(), label, strict=True):
        if want == "*":
            if have == "0":
                return False
        elif want != have:
            return False
    return True


# --------------------------------------------------------------------------
# Section 3: goals
# --------------------------------------------------------------------------


class Goal(str, enum.Enum):
    """Goals of multihoming (draft section 3, from the companion document [3]).

    Section 3 lists five; "bicasting" is added by the "Achievable goals" lines
    of section 5 (e.g. 5.3). Values are the draft's words (section 5 spells one
    "preferences settings" in 5.4: same goal).
    """

    UBIQUITOUS_ACCESS = N_("ubiquitous access")
    FAULT_RECOVERY = N_("fault recovery")
    LOAD_SHARING = N_("load sharing")
    LOAD_BALANCING = N_("load balancing")
    PREFERENCE_SETTINGS = N_("preference settings")
    BICASTING = N_("bicasting")


# --------------------------------------------------------------------------
# Sections 6 and 7: issues
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DraftIssue:
    """One issue of draft sections 6 and 7, tied to the wildcard it applies to.

    Modelling choice: **one entry per wildcard**. Where the draft gives one
    section several wildcards (6.1.1's three bullets, 6.2.1, 6.2.3, 7.3) there
    are several entries with the same ``section``; the ``title`` is the draft's
    heading, followed for such entries by ``": "`` and what the entry covers
    (``"Path Selection: interface selection"``), so ``title.split(":")[0]`` is
    always the draft's heading.

    - ``pattern``: the draft's own wildcard, verbatim (``"(n,*,*)"``), or None
      when the draft gives none (only 6.1.3).
    - ``rule``: wildcards *we* chose when ``pattern`` is None (see 6.1.3 below).
    - ``at_home_only``: the draft states the issue for a node with an interface
      on a home link (6.2.3's "special case of (n,1,*) where one of the
      interface is connected to the home link").
    - ``explanation``: one plain-English line for the user.
    """

    section: str
    title: str
    pattern: str | None
    explanation: str
    rule: tuple[str, ...] = ()
    at_home_only: bool = False

    @property
    def patterns(self) -> tuple[str, ...]:
        """The wildcards that decide where the issue applies (the draft's, else ours)."""
        return (self.pattern,) if self.pattern is not None else self.rule

    def applies(self, label: Label, at_home: bool) -> bool:
        """Whether the issue concerns a node with this label (see :func:`pattern_matches`)."""
        if self.at_home_only and not at_home:
            return False
        return any(pattern_matches(p, label) for p in self.patterns)


#: Every issue of draft sections 6 and 7, in the draft's order.
ISSUES: tuple[DraftIssue, ...] = (
    # 6.1.1 has three bullets, each with its own wildcard.
    DraftIssue(
        section="6.1.1",
        title=N_("Path Selection: interface selection"),
        pattern="(n,*,*)",
        explanation=N_(
            "With several interfaces, something has to decide which connection "
            "goes out through which interface."
        ),
    ),
    DraftIssue(
        section="6.1.1",
        title=N_("Path Selection: HoA selection"),
        pattern="(*,n,*)",
        explanation=N_(
            "With several home addresses, every new connection (and the peers "
            "answering it) must pick which home address to use."
        ),
    ),
    DraftIssue(
        section="6.1.1",
        title=N_("Path Selection: CoA selection"),
        pattern="(*,*,n)",
        explanation=N_(
            "With several care-of addresses, you and your peers must agree which "
            "one each connection's packets travel through."
        ),
    ),
    DraftIssue(
        section="6.1.2",
        title=N_("Ingress Filtering"),
        pattern="(n,*,n)",
        explanation=N_(
            "Each access network only forwards packets whose source is its own "
            "prefix, so the interface you pick fixes the CoA you must use."
        ),
    ),
    # 6.1.3 gives no wildcard. Our rule: it applies whenever there is something
    # to fail over to, i.e. several interfaces or several CoAs: (n,*,*) and
    # (*,*,n). The draft: "Movement detection might be extended to include
    # other triggers such as the loss of connectivity on one interface", and
    # section 5 points here exactly for those cases: 5.3 (1,1,n) "efficient
    # mechanisms are needed to determine that a CoA has failed (see Section
    # 6.1.3)", 5.6 (n,1,n) "efficient mechanisms are needed to determine that
    # an interface has failed (see Section 6.1.3)". Like the draft's own
    # wildcards, ours never match y = 0 (not a Mobile IPv6 node).
    DraftIssue(
        section="6.1.3",
        title=N_("Media Detection"),
        pattern=None,
        rule=("(n,*,*)", "(*,*,n)"),
        explanation=N_(
            "There is no standard quick way to notice that a link went down, so "
            "switching to another one can lag."
        ),
    ),
    DraftIssue(
        section="6.2.1",
        title=N_("Binding Multiple CoAs to a given HoA: one HoA"),
        pattern="(*,1,n)",
        explanation=N_(
            "Standard Mobile IPv6 lets your home address point at only one "
            "care-of address at a time, so the other ones sit idle."
        ),
    ),
    DraftIssue(
        section="6.2.1",
        title=N_("Binding Multiple CoAs to a given HoA: several HoAs"),
        pattern="(*,n,n)",
        explanation=N_(
            "Each home address is tied to one care-of address, so choosing a home "
            "address also fixes which link its traffic uses."
        ),
    ),
    DraftIssue(
        section="6.2.2",
        title=N_("Using one HoA as a CoA"),
        pattern="(*,n,*)",
        explanation=N_(
            "Standard Mobile IPv6 refuses to use one of your home addresses as the "
            "care-of address of another, so one home link cannot stand in for another."
        ),
    ),
    # 6.2.3: the general case is stated as a possibility ("the mobile node may
    # have one of its interfaces directly connected to a home link") with the
    # plain wildcard (n,*,*), so it applies by wildcard; the special case is
    # stated only "where one of the interface is connected to the home link".
    DraftIssue(
        section="6.2.3",
        title=N_("Simultaneous location in home and foreign networks"),
        pattern="(n,*,*)",
        explanation=N_(
            "If one interface is on a home link, addresses on your other interfaces "
            "cannot be registered as care-of addresses for that home address."
        ),
    ),
    DraftIssue(
        section="6.2.3",
        title=N_("Simultaneous location in home and foreign networks: single HoA at home"),
        pattern="(n,1,*)",
        at_home_only=True,
        explanation=N_(
            "Your only home address is in use on the home link, so your other "
            "interfaces cannot help reach the home agent; they only serve "
            "connections started on them."
        ),
    ),
    DraftIssue(
        section="7.1",
        title=N_("Binding a new CoA to the right HoA"),
        pattern="(*,n,*)",
        explanation=N_(
            "When a new care-of address appears, nothing standard says which of "
            "your home addresses it should serve."
        ),
    ),
    DraftIssue(
        section="7.2",
        title=N_("Binding HoA to interface"),
        pattern="(n,n,*)",
        explanation=N_(
            "Nothing standard says which interface each home address belongs to; "
            "it may have to move when you plug into a home link or lose a link."
        ),
    ),
    DraftIssue(
        section="7.3",
        title=N_("Flow redirection: interface failure"),
        pattern="(n,*,*)",
        explanation=N_(
            "If an interface fails, connections on it break unless the software "
            "moves them to another interface."
        ),
    ),
    DraftIssue(
        section="7.3",
        title=N_("Flow redirection: HoA failure"),
        pattern="(*,n,*)",
        explanation=N_(
            "If a home address stops working, connections using it break (unless "
            "the application uses a multi-address protocol such as SCTP)."
        ),
    ),
)


# --------------------------------------------------------------------------
# Section 5: the table of the 27 labels
# --------------------------------------------------------------------------

_UA = Goal.UBIQUITOUS_ACCESS
_FR = Goal.FAULT_RECOVERY
_LS = Goal.LOAD_SHARING
_LB = Goal.LOAD_BALANCING
_PS = Goal.PREFERENCE_SETTINGS
_BC = Goal.BICASTING


@dataclass(frozen=True)
class TableEntry:
    """What :data:`TABLE` holds for one label (issues are derived, see :func:`scenario_for`).

    - ``section``: "5.N" for the nine cases the draft names, else None.
    - ``title``: the draft's heading for named cases ("n ifaces, 1 HoA, n CoAs").
    - ``summary``: what the node is, away from home (or whatever the case is
      when ``at_home`` does not apply); for named cases the draft's own text.
    - ``summary_home``: the same with an interface on a home link; None when
      identical to ``summary`` (x = 0 or y = 0: ``at_home`` cannot hold).
    - ``multihomed``: the draft's verdict for named cases (only 5.1 "is not
      multihomed"); for others: several usable addresses (section 2).
    - ``nearest``: for unnamed cases, the named scenario that fits best, or None.
    - ``goals``: the draft's "Achievable goals" for named cases, in the draft's
      order; for unnamed ones our decision (see the comments in the table).
    - ``cited``: the issue sections (6, 7) the draft's text of a named case
      refers to ("see Section 6.2.2"), in section order. They may differ from
      the issues matched by wildcard: 5.9 (n,n,0) cites 6.1.1, 6.2.1 and 6.2.2,
      yet no wildcard of sections 6 and 7 covers a ``0`` (``*`` is "1 or n").
    """

    section: str | None
    title: str
    summary: str
    multihomed: bool
    goals: tuple[Goal, ...]
    nearest: str | None = None
    summary_home: str | None = None
    cited: tuple[str, ...] = ()


_INCONSISTENT_COAS_NO_HOA = N_("Inconsistent: care-of addresses without an active interface (and no home address "
                               "configured).")
_INCONSISTENT_COAS = N_("Inconsistent: care-of addresses without an active interface.")
_AWAY_NO_COA_1 = N_(
    "Inconsistent: away from home an interface without a care-of address is not "
    "active (draft section 4 counts active interfaces), so this is really "
    "(0,1,0) until a care-of address is configured."
)
_AWAY_NO_COA_N = N_(
    "Inconsistent: away from home an interface without a care-of address is not "
    "active (draft section 4 counts active interfaces), so this is really "
    "(0,n,0) until a care-of address is configured."
)

# Decisions for the 18 labels the draft does not name:
# - x = 0: offline; no goal. With z > 0 the counts contradict each other.
# - y = 0: not a Mobile IPv6 node, so none of the MIPv6 goals (ubiquitous
#   access needs a permanent address, bicasting needs a CN to duplicate traffic
#   to addresses bound to a HoA). A plain IPv6 node with several addresses
#   still reaches, for the connections it starts and without transparency,
#   what 5.5 says a node reaches without MIPv6 ("load sharing and load
#   balancing can be achieved when communication are initiated by the MN",
#   "Fault recovery is then only possible without transparency"): fault
#   recovery, load sharing, preference settings, and load balancing when it has
#   several interfaces (the draft lists load balancing only for x = n).
# - (x>=1, y>=1, z=0) at home: the interfaces are on home links (HoAs used
#   directly). Away from home such counts are inconsistent (see _AWAY_NO_COA).
#
# Written out by hand, in the order x, y, z = 0, 1, n.
TABLE: Mapping[str, TableEntry] = MappingProxyType(
    {
        # ---------------- x = 0: offline ----------------
        "(0,0,0)": TableEntry(
            section=None,
            title=N_("no ifaces, no HoAs, no CoAs"),
            # not "Offline" (issue 15.3): x counts interfaces with a global IPv6 address only, so a normal
            # machine with IPv4 and unique-local IPv6 is (0,0,0) while it is online
            summary=N_("No active interface in the draft's sense (none has a global IPv6 address) and no home "
                       "address configured: not a Mobile IPv6 node. IPv4 and unique-local addresses are not "
                       "counted, so this does not mean offline."),
            multihomed=False,
            goals=(),
        ),
        "(0,0,1)": TableEntry(
            section=None,
            title=N_("no ifaces, no HoAs, 1 CoA"),
            summary=_INCONSISTENT_COAS_NO_HOA,
            multihomed=False,
            goals=(),
        ),
        "(0,0,n)": TableEntry(
            section=None,
            title=N_("no ifaces, no HoAs, n CoAs"),
            summary=_INCONSISTENT_COAS_NO_HOA,
            multihomed=False,
            goals=(),
        ),
        "(0,1,0)": TableEntry(
            section=None,
            title=N_("no ifaces, 1 HoA, no CoAs"),
            summary=N_(
                "Offline: no active interface: the home address is configured but unreachable until "
                "an interface comes up (on the home link or with a care-of address)."
            ),
            multihomed=False,
            goals=(),
        ),
        "(0,1,1)": TableEntry(
            section=None,
            title=N_("no ifaces, 1 HoA, 1 CoA"),
            summary=_INCONSISTENT_COAS,
            multihomed=False,
            goals=(),
        ),
        "(0,1,n)": TableEntry(
            section=None,
            title=N_("no ifaces, 1 HoA, n CoAs"),
            summary=_INCONSISTENT_COAS,
            multihomed=False,
            goals=(),
        ),
        "(0,n,0)": TableEntry(
            section=None,
            title=N_("no ifaces, n HoAs, no CoAs"),
            summary=N_(
                "Offline: no active interface: several home addresses are configured but none is "
                "reachable until an interface comes up."
            ),
            multihomed=False,
            goals=(),
        ),
        "(0,n,1)": TableEntry(
            section=None,
            title=N_("no ifaces, n HoAs, 1 CoA"),
            summary=_INCONSISTENT_COAS,
            multihomed=False,
            goals=(),
        ),
        "(0,n,n)": TableEntry(
            section=None,
            title=N_("no ifaces, n HoAs, n CoAs"),
            summary=_INCONSISTENT_COAS,
            multihomed=False,
            goals=(),
        ),
        # ---------------- x = 1 ----------------
        "(1,0,0)": TableEntry(
            section=None,
            title=N_("1 iface, no HoAs, no CoAs"),
            summary=N_(
                "Not a Mobile IPv6 node (no home address configured), and no global "
                "address yet: the interface only has link-local connectivity."
            ),
            multihomed=False,
            goals=(),
        ),
        "(1,0,1)": TableEntry(
            section=None,
            title=N_("1 iface, no HoAs, 1 CoA"),
            summary=N_(
                "Not a Mobile IPv6 node (no home address configured): plain IPv6, "
                "single-homed (one interface, one global address)."
            ),
            multihomed=False,
            goals=(),
            nearest="5.1",
        ),
        "(1,0,n)": TableEntry(
            section=None,
            title=N_("1 iface, no HoAs, n CoAs"),
            summary=N_(
                "Not a Mobile IPv6 node (no home address configured): plain IPv6 "
                "multihoming, one interface on a link advertising several prefixes."
            ),
            multihomed=True,
            # 5.3's goals without bicasting (needs MIPv6), for new connections only.
            goals=(_FR, _LS, _PS),
            nearest="5.3",
        ),
        "(1,1,0)": TableEntry(
            section=None,
            title=N_("1 iface, 1 HoA, no CoAs"),
            summary=_AWAY_NO_COA_1,
            summary_home=N_(
                "At home, not multihomed: the only interface is on the home link and "
                "uses the home address directly, so Mobile IPv6 needs no binding."
            ),
            multihomed=False,
            goals=(),
            nearest="5.1",
        ),
        "(1,1,1)": TableEntry(
            section="5.1",
            title=N_("1 iface, 1 HoA, 1 CoA"),
            summary=N_(
                "The MN is not multihomed. The node has only one interface, with one "
                "HoA and is currently away from its home link. A CoA is configured on "
                "the foreign link. This is the usual scenario considered by Mobile "
                "IPv6 which would bind that CoA to the HoA."
            ),
            summary_home=N_(
                "The MN is not multihomed. The draft describes this case away from "
                "home (\"The node has only one interface, with one HoA and is "
                "currently away from its home link\"); at home the HoA is used "
                "directly, so a care-of address on the same interface is unusual."
            ),
            multihomed=False,
            goals=(),
        ),
        "(1,1,n)": TableEntry(
            section="5.3",
            cited=("6.1.1", "6.1.3", "6.2.1"),
            title=N_("1 iface, 1 HoA, n CoAs"),
            summary=N_(
                "The MN is multihomed since it has several CoAs. This case may occur "
                "when the interface of the node is connected to a link where multiple "
                "IPv6 prefixes are advertised."
            ),
            summary_home=N_(
                "The MN is multihomed since it has several CoAs. The draft places the "
                "node on a visited link where multiple IPv6 prefixes are advertised; "
                "here the only interface is on the home link, so the addresses counted "
                "as CoAs come from further, non-home prefixes advertised there (unusual)."
            ),
            multihomed=True,
            goals=(_FR, _LS, _BC, _PS),
        ),
        "(1,n,0)": TableEntry(
            section=None,
            title=N_("1 iface, n HoAs, no CoAs"),
            summary=_AWAY_NO_COA_N,
            summary_home=N_(
                "At home on the only interface, with several home addresses (several "
                "home prefixes on that link, or other home agents whose home address "
                "would need the one in use as care-of address, draft 6.2.2); no "
                "care-of address is needed."
            ),
            multihomed=True,
            # As 5.2 (several HoAs, one way out): pick a HoA per new flow.
            goals=(_FR, _LS, _PS),
            nearest="5.2",
        ),
        "(1,n,1)": TableEntry(
            section="5.2",
            cited=("6.1.1", "7.3"),
            title=N_("1 iface, n HoAs, 1 CoA"),
            summary=N_(
                "The MN is multihomed, since it has several HoAs, e.g. a HoA per HA "
                "(possibly distinct operators). The node would need to configure a "
                "single CoA on the visited IPv6 subnet, and bind that single CoA to "
                "all the HoAs it owns."
            ),
            summary_home=N_(
                "The MN is multihomed, since it has several HoAs. The draft places the "
                "node on a visited subnet; here its only interface is on the home link "
                "of one HoA, whose address can serve as the CoA of the other HoAs "
                "(draft 5.4, 6.2.2)."
            ),
            multihomed=True,
            goals=(_FR, _LS, _PS),
        ),
        "(1,n,n)": TableEntry(
            section="5.4",
            cited=("6.1.1", "6.2.1", "6.2.2"),
            title=N_("1 iface, n HoAs, n CoAs"),
            summary=N_(
                "The MN is multihomed since it has multiple addresses: the MN has "
                "several HoAs (e.g. given by different operators) and several CoAs "
                "(e.g. because the node is receiving multiple IPv6 prefixes)."
            ),
            summary_home=N_(
                "The MN is multihomed since it has multiple addresses. In a very "
                "specific situation, one of the routable address of the MN (i.e., "
                "which can be directly used without tunneling to reach the MN) can be "
                "one of its HoA: at home for that HoA, the MN may be able to register "
                "one HoA as CoA regarding another HoA (6.2.2)."
            ),
            multihomed=True,
            goals=(_FR, _LS, _BC, _PS),
        ),
        # ---------------- x = n ----------------
        "(n,0,0)": TableEntry(
            section=None,
            title=N_("n ifaces, no HoAs, no CoAs"),
            summary=N_(
                "Not a Mobile IPv6 node (no home address configured), and no global "
                "address yet: the interfaces only have link-local connectivity."
            ),
            multihomed=False,
            goals=(),
        ),
        "(n,0,1)": TableEntry(
            section=None,
            title=N_("n ifaces, no HoAs, 1 CoA"),
            summary=N_(
                "Not a Mobile IPv6 node (no home address configured): several "
                "interfaces but a single global address between them, so plain IPv6, "
                "single-homed in practice."
            ),
            multihomed=False,
            goals=(),
            nearest="5.1",
        ),
        "(n,0,n)": TableEntry(
            section=None,
            title=N_("n ifaces, no HoAs, n CoAs"),
            summary=N_(
                "Not a Mobile IPv6 node (no home address configured): plain IPv6 "
                "multihoming over several interfaces, each with its own addresses."
            ),
            multihomed=True,
            # What 5.5 says a node reaches without MIPv6, for new connections only.
            goals=(_FR, _LS, _LB, _PS),
            nearest="5.6",
        ),
        "(n,1,0)": TableEntry(
            section=None,
            title=N_("n ifaces, 1 HoA, no CoAs"),
            summary=_AWAY_NO_COA_1,
            summary_home=N_(
                "At home with several interfaces, all on the home link: one home "
                "address, no care-of address (redundant links to the same home "
                "network; the draft's 5.5 notes several interfaces on the home link "
                "would usually give several HoAs, as in 5.9)."
            ),
            multihomed=True,
            # Only redundancy: the HoA can move to another interface on the same
            # home link when one fails (draft 7.2); one address, so no sharing.
            goals=(_FR,),
            nearest="5.9",
        ),
        "(n,1,1)": TableEntry(
            section="5.5",
            cited=("6.1.1", "6.2.3"),
            title=N_("n ifaces, 1 HoA, 1 CoA"),
            summary=N_(
                "The MN is multihomed if one of the interface is attached to a "
                "foreign link, the other one is attached to the home link. Away from "
                "home this count is unusual: several interfaces on foreign links "
                "would give several CoAs, i.e. (n,1,n) (draft 5.5, case (B))."
            ),
            summary_home=N_(
                "This is a very special case of a node with multiple interfaces "
                "connected to different IPv6 subnets. The MN is multihomed if one of "
                "the interface is attached to a foreign link, the other one is "
                "attached to the home link. Thus, the MN only configures one CoA on "
                "the foreign subnet, and one HoA on the home link."
            ),
            multihomed=True,
            goals=(_UA, _FR, _LS, _LB, _PS, _BC),
        ),
        "(n,1,n)": TableEntry(
            section="5.6",
            cited=("6.1.1", "6.1.3", "6.2.1"),
            title=N_("n ifaces, 1 HoA, n CoAs"),
            summary=N_(
                "The MN is multihomed: the node has several addresses to choose from. "
                "The MN is only connected to visited subnets via all its interfaces, "
                "with at least one global IPv6 address configured on each interface. "
                "The node has only one home link, and only one HA."
            ),
            summary_home=N_(
                "The MN is multihomed: the node has several addresses to choose from. "
                "The MN is connected to its home link via one interface, and to "
                "visited subnets via the others. The node has only one home link, and "
                "only one HA."
            ),
            multihomed=True,
            goals=(_UA, _FR, _LS, _LB, _BC, _PS),
        ),
        "(n,n,0)": TableEntry(
            section="5.9",
            cited=("6.1.1", "6.2.1", "6.2.2"),
            title=N_("n ifaces, n HoAs, no CoAs"),
            summary=N_(
                "Unusual away from home: \"The node would no longer be in the (n,n,0) "
                "configuration when one or more of the interfaces are attached to "
                "foreign links.\" Away from home, active interfaces hold CoAs."
            ),
            summary_home=N_(
                "This case happens when the interfaces are connected to their "
                "respective home links. This node can be considered as a fixed node "
                "from a multihoming point of view."
            ),
            multihomed=True,
            goals=(_UA, _FR, _LS, _LB, _BC, _PS),
        ),
        "(n,n,1)": TableEntry(
            section="5.7",
            cited=("6.2.1", "6.2.2"),
            title=N_("n ifaces, n HoAs, 1 CoA"),
            summary=N_(
                "The MN is multihomed. This case extends the case (n,1,1) when the "
                "node has several HoAs, for example from multiple operators. The CoA "
                "can be associated with each HoA. Away from home this count is "
                "unusual: several interfaces on foreign links would give several CoAs "
                "(5.8)."
            ),
            summary_home=N_(
                "The MN is multihomed. This case extends the case (n,1,1) when the "
                "node has several HoAs, for example from multiple operators. The MN "
                "is attached to one or several home links and one foreign link; the "
                "CoA can be registered to HoAs of the MN, but the one used on the "
                "interface(s) connected to the home link."
            ),
            multihomed=True,
            goals=(_UA, _FR, _LS, _LB, _BC, _PS),
        ),
        "(n,n,n)": TableEntry(
            section="5.8",
            cited=("6.2.1",),
            title=N_("n ifaces, n HoAs, n CoAs"),
            summary=N_(
                "The MN is multihomed. Many scenarios may lead to this case, e.g. the "
                "draft's Figure 1: two interfaces, two HoAs and three CoAs, every "
                "interface on a foreign link."
            ),
            summary_home=N_(
                "The MN is multihomed. Many scenarios may lead to this case. For "
                "example, consider a node with three interfaces, two of them connected "
                "to their home link (two different HoAs) and the last one connected to "
                "a visited link where two IPv6 prefixes are advertised."
            ),
            multihomed=True,
            goals=(_UA, _FR, _LS, _LB, _BC, _PS),
        ),
    }
)


# --------------------------------------------------------------------------
# Scenario lookup
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A node's configuration in the draft's taxonomy (sections 4 and 5).

    ``label`` is e.g. ``"(n,1,n)"``; ``section`` is "5.N" for the nine cases
    the draft names (else None, with ``nearest`` naming the closest one when one
    fits); ``summary`` is the draft's text for the variant matching
    ``at_home``; ``goals`` are the achievable goals (section 5; see
    :data:`TABLE` for unnamed cases); ``issues`` are the section 6/7 issues
    whose wildcards match the label (:meth:`DraftIssue.applies`); ``cited``
    are the issue sections the draft's text of the scenario points to (see
    :class:`TableEntry`).
    """

    label: str
    section: str | None
    title: str
    summary: str
    multihomed: bool
    nearest: str | None
    goals: tuple[Goal, ...]
    issues: tuple[DraftIssue, ...]
    at_home: bool
    cited: tuple[str, ...] = ()

    @property
    def values(self) -> Label:
        """The label as a tuple, e.g. ``("n", "1", "n")``."""
        return parse_label(self.label)


def scenario_for(x: int, y: int, z: int, at_home: bool) -> Scenario:
    """The scenario of a node with x active interfaces, y HoAs and z CoAs (draft sections 4-7).

    ``at_home``: one active interface is on a home link. It cannot hold
    without an active interface or without a HoA, so it is taken as False when
    x == 0 or y == 0. Raises :class:`ValueError` for negative counts.
    """
    values: Label = (label_of(x), label_of(y), label_of(z))
    home = bool(at_home) and x >= 1 and y >= 1
    label = format_label(values)
    entry = TABLE[label]
    summary = entry.summary_home if home and entry.summary_home is not None else entry.summary
    return Scenario(
        label=label,
        section=entry.section,
        title=_(entry.title),
        summary=_(summary),
        multihomed=entry.multihomed,
        nearest=entry.nearest,
        goals=entry.goals,
        issues=tuple(i for i in ISSUES if i.applies(values, home)),
        at_home=home,
        cited=entry.cited,
    )


# --------------------------------------------------------------------------
# Goals reachable with the connected daemon
# --------------------------------------------------------------------------

# (capability attribute, draft section, why it is needed)
_Need = tuple[str, str, str]

_NEED_MULTI_COA_BICAST: _Need = (
    "multiple_coas",
    "6.2.1",
    N_("bicasting needs several CoAs bound to one HoA (draft 6.2.1)"),
)
_NEED_MULTI_COA_SHARE: _Need = (
    "multiple_coas",
    "6.2.1",
    N_("using several CoAs of the single HoA at once needs several CoAs bound to it (draft 6.2.1)"),
)
_NEED_HOA_AS_COA: _Need = (
    "hoa_as_coa",
    "6.2.2",
    N_("a home address must stand in as the care-of address of another (draft 6.2.2)"),
)
_NEED_HOME_FOREIGN: _Need = (
    "home_and_foreign",
    "6.2.3",
    N_("with the HoA in use on the home link, other addresses must be bound to it at the same time (draft 6.2.3)"),
)
_NEED_REBIND: _Need = (
    "failover",
    "7.3",
    N_("the HoA must be re-bound to another interface when one fails (draft 7.3)"),
)
_NEED_PER_HOA: _Need = (
    "per_hoa_choice",
    "7.1, 7.2",
    N_("each HoA must use its own CoA/interface (draft 7.1, 7.2)"),
)


def _needs(goal: Goal, values: Label, at_home: bool) -> list[_Need]:
    """What a daemon must support for ``goal`` on a MIPv6 node (y >= 1)."""
    x, y, z = values
    # 6.2.3 special case (n,1,*) with the HoA at home (z = 0: every interface
    # is on the home link, nothing foreign to bind, and '*' does not match 0).
    home_single_hoa = at_home and x == "n" and y == "1" and z != "0"
    needs: list[_Need] = []
    if goal is Goal.BICASTING:
        needs.append(_NEED_MULTI_COA_BICAST)
        if y == "n" and (z == "0" or (x == "n" and z == "1")):  # 5.7, 5.9
            needs.append(_NEED_HOA_AS_COA)
        if home_single_hoa:  # 5.5: "(see Section 6.2.3)"
            needs.append(_NEED_HOME_FOREIGN)
    elif goal in (Goal.FAULT_RECOVERY, Goal.UBIQUITOUS_ACCESS):
        if home_single_hoa:  # 5.5, 5.6 at home
            needs.append(_NEED_HOME_FOREIGN)
        if x == "n" and y == "n" and z == "0":  # 5.9
            needs.append(_NEED_HOA_AS_COA)
        if x == "n":  # 7.3, first bullet
            needs.append(_NEED_REBIND)
    else:  # load sharing, load balancing, preference settings
        if home_single_hoa:
            needs.append(_NEED_HOME_FOREIGN)
        elif y == "1" and z == "n":  # 5.3, 5.6
            needs.append(_NEED_MULTI_COA_SHARE)
        if y == "n" and (x == "n" or z == "n"):  # 5.4, 5.7, 5.8, 5.9
            needs.append(_NEED_PER_HOA)
    return needs


#: the working mechanism behind each capability, in one line (goals and issues say how they are met)
MECHANISMS: dict[str, str] = {
    "multiple_coas": N_("every uplink is registered at once, one BID each (RFC 5648)"),
    "flow_bindings": N_("one connection is bound to one or more uplinks at the home agent (RFC 6089)"),
    "failover": N_("a failed uplink's traffic is re-bound through another at once, in one Binding Update"),
    "per_hoa_choice": N_("each home address has its own uplink order"),
    "hoa_as_coa": N_("a home address stands in as another's care-of address"),
    "home_and_foreign": N_("the home address stays bound to other links while at home"),
}
_GOAL_MECHANISM = {
    Goal.BICASTING: N_("a flow bound to two uplinks is sent on both and the first copy is kept (RFC 5648 + 6089)"),
    Goal.LOAD_SHARING: N_("flows are spread over the uplinks by weight, each flow on one (RFC 5648 + 6089)"),
    Goal.LOAD_BALANCING: N_("new flows go to the uplinks by weight and single connections can be moved (RFC 6089)"),
    Goal.PREFERENCE_SETTINGS: N_("uplinks are ordered per home address, and a connection can be bound to one"),
}


def _ok_reason(goal: Goal, scenario: Scenario, needs: list[_Need]) -> str:
    z = scenario.values[2]
    where = scenario.section or scenario.nearest or "5"
    if needs:
        sections = ", ".join(dict.fromkeys(sec for _attr, sec, _why in needs))
        how = _GOAL_MECHANISM.get(goal) if any(n[0] == "multiple_coas" for n in needs) else None
        how = _(how) if how else "; ".join(_(MECHANISMS[attr]) if attr in MECHANISMS else attr
                                          for attr, _sec, _why in needs)
        return _("yes: {how} (draft {sections})").format(how=how, sections=sections)
    if goal in (Goal.FAULT_RECOVERY, Goal.UBIQUITOUS_ACCESS) and z == "n":
        return _("yes: the daemon binds an alternate CoA to the HoA when one fails (draft 5.3)")
    if goal in (Goal.FAULT_RECOVERY, Goal.UBIQUITOUS_ACCESS):
        return _("yes, but only without transparency: flows on a failed HoA must restart (draft 5.2, 7.3)")
    if scenario.values[1] == "n":
        return _("yes: standard Mobile IPv6 is enough, picking a HoA per new flow (draft {where}, 6.1.1)").format(
            where=where)
    return _("yes: standard Mobile IPv6 is enough here (draft {where})").format(where=where)


_SINGLE_PATH = N_(
    "only one care-of address away from home, so a single path for the HoA "
    "(draft 5.5 has the other interface on the home link)"
)


def _single_path_away(goal: Goal, scenario: Scenario) -> bool:
    """(n,1,1) away from home: the goals of 5.5 that need two paths have only one."""
    return (
        scenario.values == ("n", "1", "1")
        and not scenario.at_home
        and goal in (Goal.LOAD_SHARING, Goal.LOAD_BALANCING, Goal.PREFERENCE_SETTINGS, Goal.BICASTING)
    )


def goals_available(scenario: Scenario, caps: DaemonCapabilities) -> list[tuple[Goal, bool, str]]:
    """For each goal of ``scenario`` (draft section 5), whether this daemon reaches it today.

    Returns ``(goal, available, reason)`` in the scenario's order; the reason is
    one line citing the draft. Rules, kept deliberately simple:

    - y = 0 (not a Mobile IPv6 node): the listed goals are the plain-IPv6 ones
      (see :data:`TABLE`); they need no daemon and are available for new
      connections the node starts, without transparency (draft 5.5, 6.1.1).
    - otherwise "available" means: reached for traffic using the home
      address(es), i.e. with the mobility daemon's help. Connections a node
      starts straight on a CoA always work, without transparency; that alone
      does not count (the reason says so where the draft mentions it).
    - With no daemon connected nothing is available ("no mobility
      daemon connected");
    - with a daemon, a goal is available when the daemon has every capability
      the draft says that goal needs in this case: bicasting needs several CoAs
      per HoA (6.2.1), plus a HoA used as CoA in 5.7/5.9 (6.2.2) and a home and
      foreign binding at once in 5.5 (6.2.3); fault recovery and ubiquitous
      access with several interfaces need re-binding the HoA at run time
      (7.3), a HoA used as CoA in 5.9 (6.2.2) and home+foreign bindings when
      the single HoA is at home (6.2.3); load sharing, load balancing and
      preference settings need several CoAs per HoA with one HoA and several
      CoAs (6.2.1), a per-HoA choice of CoA/interface with several HoAs
      (7.1, 7.2), and home+foreign bindings when the single HoA is at home
      (6.2.3). The reason names the first missing capability.
    - (n,1,1) away from home (unusual: 5.5 has one interface on the home link)
      gives the HoA a single path, so sharing, balancing, preferences and
      bicasting are not available whatever the daemon.
    """
    values = scenario.values
    if values[1] == "0":
        return [
            (
                goal,
                True,
                _("plain IPv6, no mobility daemon needed: only for connections you "
                  "start, by picking their source address; they break if it goes "
                  "(draft 5.5, 6.1.1)"),
            )
            for goal in scenario.goals
        ]
    result: list[tuple[Goal, bool, str]] = []
    for goal in scenario.goals:
        if not caps.connected:
            result.append((goal, False, _("no mobility daemon connected")))
            continue
        if _single_path_away(goal, scenario):
            result.append((goal, False, _(_SINGLE_PATH)))
            continue
        needs = _needs(goal, values, scenario.at_home)
        missing = [need for need in needs if not getattr(caps, need[0])]
        if missing:
            reason = _("not with {daemon}: {why}").format(daemon=caps.name, why=_(missing[0][2]))
            if missing[0] is _NEED_HOME_FOREIGN:
                reason += _("; connections started on the other addresses still work, without transparency "
                            "(draft 5.5)")
            result.append((goal, False, reason))
        else:
            result.append((goal, True, _ok_reason(goal, scenario, needs)))
    return result


#: the capabilities that give a working mechanism for an issue (draft section -> all of them needed)
_ISSUE_FIXED_BY: dict[str, tuple[str, ...]] = {
    "6.2.1": ("multiple_coas",),
    "6.2.2": ("hoa_as_coa",),
    "6.2.3": ("home_and_foreign",),
    "7.1": ("per_hoa_choice",),
    "7.2": ("per_hoa_choice",),
    "7.3": ("failover",),
}


def issue_mechanism(issue: DraftIssue, caps: DaemonCapabilities) -> str | None:
    """How the connected daemon deals with ``issue``, in one line, or None when it does not (or none is
    connected). With several CoAs and flow bindings, 6.2.1 and 7.3 name them."""
    need = _ISSUE_FIXED_BY.get(issue.section)
    if not caps.connected or not need or not all(getattr(caps, n) for n in need):
        return None
    if issue.section == "6.2.1":
        if caps.flow_bindings:
            return _("solved with {daemon}: every uplink is registered for the home address at once (RFC 5648 "
                     "BIDs), and connections are spread or moved one by one (RFC 6089)").format(daemon=caps.name)
        return _("solved with {daemon}: every uplink is registered for the home address at once (RFC 5648 "
                 "BIDs), and connections are spread or moved one by one").format(daemon=caps.name)
    if issue.section == "7.3" and caps.flow_bindings:
        return _("solved with {daemon}: when an uplink fails, its connections move to the next one in one "
                 "Binding Update and keep running; one connection can also be moved or sent on two uplinks").format(
                     daemon=caps.name)
    return _("solved with {daemon}: {how}").format(daemon=caps.name, how="; ".join(_(MECHANISMS[n]) for n in need))
