"""The cross-room report's opinion groups (red-dwarf, on the Polis export's numbering): a scripted deliberation with
two known camps and two statements everyone agrees with gives those two groups, the shared statements as consensus,
the camp statements as dividing; too few votes give no groups and say why; ``moot report --json`` prints the same for
a deliberation imported from a Polis export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.cli import main
from server.deliberations.polis_export import Conversation, Statement, Vote, render
from server.report.opinions import opinion_report
from tests.staff import ensure_account

TEXTS = ["Build the bus lane now", "Cars need the high street", "Trial it for six months first",
         "Ask the shops before deciding", "Keep the street safe for children", "Publish the traffic data",
         "Parking must stay on the high street", "Buses are too slow today"]
SHARED = {4, 5}  # everyone agrees
CAMP_A = {0, 2, 7}  # A agrees, B disagrees
CAMP_B = {1, 3, 6}  # B agrees, A disagrees


def conversation(people: int = 12, statements: int = 8, passes: bool = True) -> Conversation:
    """Participants p0..p5 in camp A, the rest in camp B; a few passes so the data is not degenerate."""
    made = [Statement(f"s{n}", "p0", TEXTS[n], 1000.0 + n) for n in range(statements)]
    votes = []
    for p in range(people):
        camp_a = p < people // 2
        for n in range(statements):
            if n in SHARED:
                choice = "agree"
            elif n in CAMP_A:
                choice = "agree" if camp_a else "disagree"
            else:
                choice = "disagree" if camp_a else "agree"
            if passes and (p + n) % 9 == 0:
                choice = "pass"
            votes.append(Vote(f"s{n}", f"p{p}", choice, 2000.0 + p * 10 + n))
    return Conversation("Bus lane", "Should the high street get a bus lane?", "", [f"p{p}" for p in range(people)],
                        made, votes)


def test_two_camps_and_what_everyone_agrees_with() -> None:
    report = opinion_report(conversation())
    assert (report.participants, report.statements, report.votes, report.min_votes) == (12, 8, 96, 7)
    assert len(report.groups) == 2 and report.clustered == 12
    camps = sorted(sorted(g.members) for g in report.groups)
    assert camps == [list(range(6)), list(range(6, 12))], "the groups are the two camps"
    assert {s.statement_id for s in report.consensus_agree} <= SHARED and report.consensus_agree
    assert {s.statement_id for s in report.ranked_consensus[:2]} == SHARED
    assert {s.statement_id for s in report.ranked_divisive[:6]} == CAMP_A | CAMP_B
    assert all((s.divide or 0) < 0.3 for s in report.ranked_divisive if s.statement_id in SHARED)
    for group in report.groups:
        camp_a = group.members[0] < 6
        for rep in group.representative:
            if rep.statement_id in CAMP_A:
                assert rep.repful_for == ("agree" if camp_a else "disagree"), rep
            if rep.statement_id in CAMP_B:
                assert rep.repful_for == ("disagree" if camp_a else "agree"), rep
    assert opinion_report(conversation()) == report, "the same result each run"


def test_too_few_votes_give_no_groups_and_say_why() -> None:
    report = opinion_report(conversation(people=3))
    assert report.groups == [] and report.clustered == 0 and report.note and "Not enough votes" in report.note
    assert set(report.membership) == {0, 1, 2} and all(g is None for g in report.membership.values())
    small = opinion_report(conversation(statements=4))  # fewer than 7 statements: Polis' min(7, statements)
    assert small.min_votes == 4 and len(small.groups) >= 1


def test_moot_report_on_an_imported_polis_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "export"
    export.mkdir()
    for name, text in render(conversation()).items():
        (export / name).write_text(text)
    data = tmp_path / "data"
    from server.accounts.service import open_account_service
    from server.core.settings import Settings
    from server.storage import Storage

    settings = Settings(data_dir=data)
    storage = Storage(settings.resolved_database_url())
    storage.create_schema()
    ensure_account(open_account_service(settings, storage), "owner@example.org", "organiser")
    storage.close()
    assert main(["import", "polis", str(export), "--owner", "owner@example.org", "--data-dir", str(data)]) == 0
    deliberation = capsys.readouterr().out.split("as deliberation ")[1].split()[0]
    assert main(["report", deliberation, "--json", "--data-dir", str(data)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert sorted(sorted(g["members"]) for g in printed["groups"]) == [list(range(6)), list(range(6, 12))]
    assert {s["statement_id"] for s in printed["ranked_consensus"][:2]} == SHARED
    assert main(["report", "nosuchdeliberation", "--data-dir", str(data)]) == 1
