"""``moot report DELIBERATION [--json]``: a deliberation's opinion groups (each participant's group, by their number in
the Polis export), the statements agreed across groups and those that divide, and each group's representative
statements, computed with red-dwarf (``server/report/opinions.py``). Run it on a deliberation imported with ``moot
import polis`` to compare Moot's analysis with Polis' own."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.users_cli import settings_from


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="a deliberation's opinion groups, consensus and divisive statements",
                              description=__doc__)
    p.add_argument("deliberation", help="the deliberation's id")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--seed", type=int, default=0, help="k-means random state (default 0: the same result each run)")
    p.add_argument("--data-dir", type=Path, help="the data directory (default ./data)")
    p.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the data directory)")
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from server.deliberations.polis_export import gather
    from server.deliberations.store import DeliberationStore
    from server.lobby.store import LobbyStore
    from server.report.opinions import opinion_report
    from server.storage import Storage

    storage = Storage(settings_from(args).resolved_database_url())
    try:
        storage.create_schema()
        record = DeliberationStore(storage.sessions).get(args.deliberation[:32])
        if record is None:
            print(f"moot report: no deliberation {args.deliberation!r} in this database", file=sys.stderr)
            return 1
        order = LobbyStore(storage.sessions).arrival_order(record.id)
        conversation = gather(storage.sessions, record.id, record.spec.title, record.spec.question, "", order)
    finally:
        storage.close()
    report = opinion_report(conversation, random_state=args.seed)
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    print(f"{record.spec.title}: {report.participants} voters, {report.statements} statements, {report.votes} votes; "
          f"{report.clustered} placed in {len(report.groups)} opinion group(s) (at least {report.min_votes} votes)")
    if report.note:
        print(report.note)
    for group in report.groups:
        print(f"\nGroup {group.group_id} ({len(group.members)}): participants {group.members}")
        for rep in group.representative:
            print(f"  {rep.repful_for:>8} {rep.in_group}/{rep.of_group}  #{rep.statement_id} {rep.text}")
    print("\nAgreed across groups:")
    for score in report.ranked_consensus[:5]:
        print(f"  {score.group_informed_consensus or 0:.3f}  #{score.statement_id} {score.text}")
    if report.ranked_divisive:
        print("\nDividing the groups:")
        for score in report.ranked_divisive[:5]:
            print(f"  {score.divide or 0:.2f}  #{score.statement_id} {score.text}")
    return 0
