"""mhgui.core.taxonomy checked against the text of the IETF draft itself.

The draft (draft-montavont-mobileip-multihoming-pb-statement-04) lives in the
shared folder next to the repository (``../shared/seeds``). The tests parse its
section 5 headings and "Achievable goals" lines, and the wildcards of sections
6 and 7, and compare them with the hand-written table: they do not compare the
table with a copy of itself.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from mhgui.core.capabilities import NO_DAEMON, DaemonCapabilities
from mhgui.core.taxonomy import (
    ISSUES,
    TABLE,
    DraftIssue,
    Goal,
    format_label,
    goals_available,
    label_of,
    parse_label,
    pattern_matches,
    scenario_for,
)

#: the draft ships in docs/ (copied unmodified, as its copyright notice allows); ../shared/seeds as a fallback
SEEDS_DIRS = (Path(__file__).resolve().parents[1] / "docs", Path(__file__).resolve().parents[2] / "shared" / "seeds")
VALUES = ("0", "1", "n")
ALL_LABELS = [format_label(t) for t in itertools.product(VALUES, repeat=3)]
WILDCARD = r"\(([01n*]),([01n*]),([01n*])\)"

FULL_DAEMON = DaemonCapabilities(
    name="full",
    connected=True,
    per_hoa_choice=True,
    multiple_coas=True,
    flow_bindings=True,
    runtime_rebind=True,
    failover=True,
    hoa_as_coa=True,
    home_and_foreign=True,
)
#: Mainline UMIP: one CoA per HoA, one interface for every HoA.
BASIC_DAEMON = DaemonCapabilities(name="basic", connected=True, runtime_rebind=True, failover=True)


# ---------------------------------------------------------------- the draft


def _draft_lines() -> list[str]:
    found = [p for d in SEEDS_DIRS for p in sorted(d.glob("draft-montavont-*.txt"))]
    if not found:
        pytest.skip(f"the IETF draft draft-montavont-*.txt is in none of {[str(d) for d in SEEDS_DIRS]}")
    text = found[0].read_text(encoding="utf-8", errors="replace")
    # Drop the page furniture (footers "Montavont, et al. ... [Page N]", headers
    # "Internet-Draft  Analysis of ...", form feeds) so paragraphs across pages join.
    lines = []
    for line in text.replace("\f", "\n").splitlines():
        if re.match(r"^Montavont, et al\..*\[Page \d+\]\s*$", line):
            continue
        if re.match(r"^Internet-Draft\s+Analysis of Multihoming", line):
            continue
        lines.append(line.rstrip())
    return lines


@pytest.fixture(scope="module")
def draft() -> dict[str, tuple[str, str]]:
    """Body sections of the draft: number -> (heading title, flattened text).

    Headings start at column 0 ("5.6  (n,1,n): ...", "6.1.1  Path Selection");
    the table of contents is indented, so it is skipped.
    """
    sections: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for line in _draft_lines():
        m = re.match(r"^(\d+(?:\.\d+)*)\.?\s{2,}(\S.*)$", line)
        if m:
            current = m.group(1)
            sections[current] = (m.group(2).strip(), [])
        elif current is not None:
            sections[current][1].append(line)
    assert "5.1" in sections and "7.3" in sections, "draft layout not understood"
    return {num: (title, " ".join(" ".join(body).split())) for num, (title, body) in sections.items()}


def _goal(word: str) -> Goal:
    word = " ".join(word.split()).lower()
    if word == "preferences settings":  # typo in 5.4 for "preference settings"
        word = "preference settings"
    return Goal(word)


@pytest.fixture(scope="module")
def named(draft) -> dict[str, dict]:
    """The draft's named scenarios: label -> section, title, goals, text."""
    out = {}
    for num, (heading, text) in draft.items():
        m = re.match(r"^\(([01n]),([01n]),([01n])\):\s*(.+)$", heading)
        if not num.startswith("5.") or m is None:
            continue
        label = f"({m.group(1)},{m.group(2)},{m.group(3)})"
        g = re.search(r"Achievable goals:\s*(.*?)\s*(?:\.|Current situation|$)", text)
        assert g is not None, f"no 'Achievable goals' in {num}"
        words = g.group(1)
        goals = () if words.strip().lower() == "none" else tuple(_goal(w) for w in words.split(","))
        out[label] = {"section": num, "title": m.group(4).strip(), "goals": goals, "text": text}
    return out


# ---------------------------------------------------------------- section 4


def test_label_of_boundaries():
    assert [label_of(c) for c in (0, 1, 2, 3, 1000)] == ["0", "1", "n", "n", "n"]
    with pytest.raises(ValueError):
        label_of(-1)


def test_parse_and_format_label_round_trip():
    for label in ALL_LABELS:
        assert format_label(parse_label(label)) == label
    for bad in ("(n,*,1)", "(2,1,1)", "n,1,1", "(n,1)"):
        with pytest.raises(ValueError):
            parse_label(bad)


def test_star_means_one_or_n_never_zero():
    # Draft section 4: "A value '*' indicates that the number can be '1' or 'n'."
    assert pattern_matches("(*,*,*)", ("1", "n", "1"))
    assert not pattern_matches("(*,*,*)", ("1", "n", "0"))
    assert not pattern_matches("(n,*,*)", ("n", "0", "n"))
    assert not pattern_matches("(n,*,*)", ("n", "n", "0"))
    assert pattern_matches("(n,*,*)", ("n", "1", "n"))
    assert not pattern_matches("(n,*,*)", ("1", "1", "n"))
    assert pattern_matches("(n,n,0)", ("n", "n", "0"))
    assert not pattern_matches("(n,n,0)", ("n", "n", "1"))
    assert pattern_matches(" ( *, 1 ,n ) ", ("1", "1", "n"))
    for pattern in ("(*,*,*)", "(n,*,*)", "(*,n,*)", "(*,*,n)"):
        for label in itertools.product(VALUES, repeat=3):
            stars = [i for i, c in enumerate(pattern.strip("()").split(",")) if c == "*"]
            if any(label[i] == "0" for i in stars):
                assert not pattern_matches(pattern, label), (pattern, label)


@pytest.mark.parametrize("pattern", ["n,*,*", "(x,*,*)", "(n,*)", "(n,*,*,*)", ""])
def test_bad_pattern_rejected(pattern):
    with pytest.raises(ValueError):
        pattern_matches(pattern, ("n", "1", "1"))


def test_bad_label_rejected():
    with pytest.raises(ValueError):
        pattern_matches("(*,*,*)", ("2", "1", "1"))


# ---------------------------------------------------------------- section 3


def test_goals_are_the_drafts_words(draft):
    requirements = draft["3"][1].lower()
    for goal in Goal:
        if goal is Goal.BICASTING:  # named in section 5 only
            assert "bicasting" in draft["5.3"][1].lower()
            continue
        first = goal.value.split()[0]
        assert first in requirements, goal


# ---------------------------------------------------------------- section 5


def test_all_27_labels_present_with_summaries():
    assert sorted(TABLE) == sorted(ALL_LABELS)
    for label, entry in TABLE.items():
        assert entry.summary.strip(), label
        assert entry.summary_home is None or entry.summary_home.strip(), label
        assert entry.title.strip(), label
        assert "\n" not in entry.summary


def test_the_draft_names_nine_cases(named):
    assert len(named) == 9
    assert {label for label, e in TABLE.items() if e.section is not None} == set(named)


def test_named_cases_match_the_draft(named):
    for label, case in named.items():
        entry = TABLE[label]
        assert entry.section == case["section"], label
        assert entry.title == case["title"], label
        assert entry.goals == case["goals"], (label, entry.goals, case["goals"])
        assert entry.nearest is None, label


def test_named_multihomed_matches_the_draft(named):
    for label, case in named.items():
        not_multihomed = "is not multihomed" in case["text"]
        assert TABLE[label].multihomed is not not_multihomed, label


def test_named_summaries_quote_the_draft(named):
    """Each summary of a named case (away and at home) quotes its section: 8 words in a row."""
    for label, case in named.items():
        section = case["text"]
        entry = TABLE[label]
        for summary in (entry.summary, entry.summary_home):
            if summary is None:
                continue
            words = summary.replace('"', "").split()
            runs = (" ".join(words[i : i + 8]) for i in range(len(words) - 7))
            assert any(run in section for run in runs), (label, summary)


def test_cited_sections_match_the_draft(named):
    for label, case in named.items():
        refs = re.findall(r"Section\s+(\d+(?:\.\d+)+)", case["text"])
        want = sorted({r for r in refs if r[0] in "67"}, key=lambda s: tuple(map(int, s.split("."))))
        assert list(TABLE[label].cited) == want, label


def test_unnamed_cases():
    for label in ALL_LABELS:
        entry = TABLE[label]
        x, y, z = parse_label(label)
        if entry.section is not None:
            continue
        assert entry.nearest is None or entry.nearest in {e.section for e in TABLE.values()}
        if x == "0":
            assert entry.goals == () and not entry.multihomed, label
            assert ("Offline" in entry.summary) or ("Inconsistent" in entry.summary) or (
                label == "(0,0,0)" and "does not mean offline" in entry.summary), label  # issue 15.3
        if x == "0" and z != "0":
            assert entry.summary.startswith("Inconsistent"), label
        if y == "0":
            assert "Not a Mobile IPv6 node" in entry.summary or x == "0", label
            # MIPv6-only goals are out of reach without a home address.
            assert Goal.UBIQUITOUS_ACCESS not in entry.goals and Goal.BICASTING not in entry.goals
    assert TABLE["(1,1,0)"].summary_home.startswith("At home, not multihomed")
    assert TABLE["(1,1,0)"].nearest == "5.1"
    assert TABLE["(n,1,0)"].summary_home.startswith("At home")


def test_scenario_for_uses_counts_and_at_home():
    s = scenario_for(3, 1, 4, at_home=True)
    assert (s.label, s.section, s.at_home) == ("(n,1,n)", "5.6", True)
    assert "home link via one interface" in s.summary
    away = scenario_for(3, 1, 4, at_home=False)
    assert "only connected to visited subnets" in away.summary
    assert s.goals == away.goals
    # at_home needs an interface and a HoA.
    assert scenario_for(0, 1, 0, at_home=True).at_home is False
    assert scenario_for(2, 0, 2, at_home=True).at_home is False
    with pytest.raises(ValueError):
        scenario_for(1, -1, 1, at_home=False)


def test_scenario_summary_follows_at_home(named):
    for label in named:
        x, y, z = (2 if v == "n" else int(v) for v in parse_label(label))
        home, away = scenario_for(x, y, z, True), scenario_for(x, y, z, False)
        assert away.summary == TABLE[label].summary
        assert home.summary == (TABLE[label].summary_home or TABLE[label].summary)


# ---------------------------------------------------------------- figures


def test_figure_1_is_scenario_5_8():
    lines = _draft_lines()
    text = " ".join(" ".join(lines).split())
    m = re.search(r"Mobile Node\(x = (\d+), y = (\d+), z = (\d+)\)", text)
    assert m is not None, "Figure 1's example not found"
    x, y, z = map(int, m.groups())
    assert (x, y, z) == (2, 2, 3)
    s = scenario_for(x, y, z, at_home=False)
    assert s.label == "(n,n,n)"
    assert s.section == "5.8"


def test_figure_3_raises_7_2():
    text = " ".join(" ".join(_draft_lines()).split())
    m = re.search(r"Illustration of the case \((\d+),(\d+),(\d+)\)", text)
    assert m is not None, "Figure 3's caption not found"
    x, y, z = map(int, m.groups())
    for at_home in (False, True):
        s = scenario_for(x, y, z, at_home=at_home)
        assert s.label == "(n,n,n)"
        assert "7.2" in {i.section for i in s.issues}


# ---------------------------------------------------------------- sections 6, 7


def _issue_sections(draft) -> dict[str, tuple[str, str]]:
    return {n: v for n, v in draft.items() if re.match(r"^(6\.\d+\.\d+|7\.\d+)$", n)}


def test_every_issue_section_is_covered(draft):
    sections = _issue_sections(draft)
    assert len(sections) == 9
    assert {i.section for i in ISSUES} == set(sections)
    for issue in ISSUES:
        heading = sections[issue.section][0]
        assert issue.title.split(":")[0] == heading, issue


def test_issue_wildcards_match_the_draft(draft):
    for num, (_, text) in _issue_sections(draft).items():
        found = {f"({a},{b},{c})" for a, b, c in re.findall(r"\b[Ii]n (?:the )?(?:special case of )?" + WILDCARD, text)}
        ours = [i for i in ISSUES if i.section == num]
        if num == "6.1.3":
            # The draft gives no wildcard: ours is a documented rule instead.
            assert found == set()
            assert all(i.pattern is None and i.rule for i in ours)
            continue
        assert {i.pattern for i in ours} == found, num
        assert len(ours) == len(found), num  # one entry per wildcard


def test_path_selection_bullets(draft):
    text = draft["6.1.1"][1]
    bullets = dict(re.findall(r"o (\w+) selection In the " + r"(\([01n*],[01n*],[01n*]\))", text))
    assert bullets == {"Interface": "(n,*,*)", "HoA": "(*,n,*)", "CoA": "(*,*,n)"}
    for word, pattern in bullets.items():
        (issue,) = [i for i in ISSUES if i.section == "6.1.1" and i.title.lower().endswith(f"{word.lower()} selection")]
        assert issue.pattern == pattern


def test_home_link_special_case(draft):
    text = draft["6.2.3"][1]
    assert re.search(r"special case of \(n,1,\*\) where one of the interface is connected to the home link", text)
    (special,) = [i for i in ISSUES if i.pattern == "(n,1,*)"]
    assert special.at_home_only
    in_623 = lambda s: [i for i in s.issues if i.section == "6.2.3"]  # noqa: E731
    assert special in in_623(scenario_for(2, 1, 1, at_home=True))
    assert special not in in_623(scenario_for(2, 1, 1, at_home=False))
    assert special not in in_623(scenario_for(2, 2, 1, at_home=True))


def test_issues_have_one_line_explanations():
    for issue in ISSUES:
        assert isinstance(issue, DraftIssue)
        assert issue.explanation.strip() and "\n" not in issue.explanation
        assert issue.explanation.endswith(".")


def test_scenario_issues_follow_the_wildcards():
    for label, at_home in itertools.product(ALL_LABELS, (False, True)):
        values = parse_label(label)
        x, y, z = (2 if v == "n" else int(v) for v in values)
        s = scenario_for(x, y, z, at_home)
        for issue in ISSUES:
            hit = any(pattern_matches(p, values) for p in issue.patterns)
            hit = hit and (s.at_home or not issue.at_home_only)
            assert (issue in s.issues) is hit, (label, at_home, issue.title)
        if "0" in values:
            # every wildcard of the draft has '*' where a '0' would be.
            assert s.issues == (), label


def test_media_detection_rule():
    (media,) = [i for i in ISSUES if i.section == "6.1.3"]
    assert media in scenario_for(1, 1, 2, False).issues  # 5.3 points to 6.1.3
    assert media in scenario_for(2, 1, 2, False).issues  # 5.6 points to 6.1.3
    assert media not in scenario_for(1, 1, 1, False).issues  # nothing to fail over to
    assert media not in scenario_for(1, 2, 1, False).issues


# ---------------------------------------------------------------- goals vs daemon


def _mipv6_scenarios():
    for label, at_home in itertools.product(ALL_LABELS, (False, True)):
        x, y, z = ((2 if v == "n" else int(v)) for v in parse_label(label))
        if y:
            yield scenario_for(x, y, z, at_home)


def test_no_daemon_no_goal():
    checked = 0
    for s in _mipv6_scenarios():
        rows = goals_available(s, NO_DAEMON)
        assert [g for g, _, _ in rows] == list(s.goals)
        for goal, ok, reason in rows:
            assert ok is False, (s.label, goal)
            assert reason == "no mobility daemon connected"
            checked += 1
    assert checked > 0


def test_capable_daemon_reaches_every_goal():
    for s in _mipv6_scenarios():
        if s.label == "(n,1,1)" and not s.at_home:
            continue  # single path: see below
        for goal, ok, reason in goals_available(s, FULL_DAEMON):
            assert ok, (s.label, s.at_home, goal, reason)
            assert reason.startswith("yes")


def test_n11_away_has_a_single_path():
    # 5.5: "one of the interface is attached to a foreign link, the other one is
    # attached to the home link"; away from home with one CoA there is one path.
    rows = {g: ok for g, ok, _ in goals_available(scenario_for(2, 1, 1, at_home=False), FULL_DAEMON)}
    assert rows[Goal.FAULT_RECOVERY] and rows[Goal.UBIQUITOUS_ACCESS]
    assert not rows[Goal.LOAD_SHARING] and not rows[Goal.BICASTING]
    rows = {g: ok for g, ok, _ in goals_available(scenario_for(2, 1, 1, at_home=True), FULL_DAEMON)}
    assert all(rows.values())


def test_basic_daemon_one_coa_per_hoa():
    # 5.3 (1,1,n): bicasting needs several CoAs per HoA (6.2.1); fault recovery
    # is plain MIPv6 (re-bind an alternate CoA).
    rows = {g: (ok, why) for g, ok, why in goals_available(scenario_for(1, 1, 2, False), BASIC_DAEMON)}
    assert rows[Goal.BICASTING][0] is False and "6.2.1" in rows[Goal.BICASTING][1]
    assert rows[Goal.LOAD_SHARING][0] is False
    assert rows[Goal.FAULT_RECOVERY][0] is True
    # 5.9 (n,n,0) at home: fault recovery needs a HoA used as CoA (6.2.2).
    rows = {g: (ok, why) for g, ok, why in goals_available(scenario_for(2, 2, 0, True), BASIC_DAEMON)}
    assert rows[Goal.FAULT_RECOVERY][0] is False and "6.2.2" in rows[Goal.FAULT_RECOVERY][1]
    # 5.5 at home: the other interface cannot be bound to the HoA in use (6.2.3).
    rows = {g: (ok, why) for g, ok, why in goals_available(scenario_for(2, 1, 1, True), BASIC_DAEMON)}
    assert rows[Goal.UBIQUITOUS_ACCESS][0] is False and "6.2.3" in rows[Goal.UBIQUITOUS_ACCESS][1]
    # Several interfaces all on the home link (n,1,0): the HoA just moves (7.2, 7.3).
    rows = {g: (ok, why) for g, ok, why in goals_available(scenario_for(2, 1, 0, True), BASIC_DAEMON)}
    assert list(rows) == [Goal.FAULT_RECOVERY]
    assert rows[Goal.FAULT_RECOVERY][0] is True, rows
    # 5.2 (1,n,1): the CoA bound to every HoA: load sharing works.
    rows = {g: (ok, why) for g, ok, why in goals_available(scenario_for(1, 2, 1, False), BASIC_DAEMON)}
    assert all(ok for ok, _ in rows.values())


def test_every_reason_cites_the_draft():
    for s in _mipv6_scenarios():
        for caps in (BASIC_DAEMON, FULL_DAEMON, DaemonCapabilities(name="bare", connected=True)):
            for goal, _, reason in goals_available(s, caps):
                assert "draft" in reason, (s.label, goal, reason)


def test_plain_ipv6_goals_need_no_daemon():
    s = scenario_for(2, 0, 2, at_home=False)
    assert s.section is None and s.nearest == "5.6"
    rows = goals_available(s, NO_DAEMON)
    assert rows and all(ok for _, ok, _ in rows)
    assert all("no mobility daemon needed" in why for _, _, why in rows)
    assert goals_available(scenario_for(1, 0, 1, False), NO_DAEMON) == []
    assert goals_available(scenario_for(0, 1, 0, False), FULL_DAEMON) == []
