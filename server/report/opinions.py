"""Opinion groups across a deliberation's rooms, computed with the Polis community's ``red-dwarf`` (Polis' own PCA,
k-means with silhouette-chosen k, group-informed consensus, representative statements) on the same numbering as the
Polis export (``server/deliberations/polis_export.py``), so that a result can be compared with Polis' own report of
the same data.

Polis clusters only participants with at least 7 votes; with fewer statements than that nobody could qualify, so the
threshold is Polis' rule: min(7, number of statements). Statements are then ranked two ways: by group-informed
consensus (high when every opinion group tends to agree: consensus across groups), and by how far the groups' agreement
rates lie apart (statements that divide).

Blocking and CPU-bound (pandas, scikit-learn): run it off the event loop (``moot report``, the report job).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

from pydantic import BaseModel, Field

from server.deliberations.polis_export import VOTE_SIGNS, Conversation, numbering

logger = logging.getLogger(__name__)

POLIS_MIN_VOTES = 7
MIN_CLUSTERED = 4  # fewer qualifying participants than this: no opinion groups (k-means needs a few points)


class StatementScore(BaseModel):
    statement_id: int = Field(description="The statement's number, as in the Polis export's comments.csv.")
    text: str
    votes: int
    agree: float = Field(description="Share of its votes that agree (passes count as votes).")
    group_informed_consensus: float | None = Field(
        default=None, description="Polis' group-aware consensus for agreeing: the product over opinion groups of each "
        "group's (smoothed) agreement; high when every group agrees.")
    group_agree: dict[int, float] = Field(default_factory=dict,
                                          description="Each opinion group's share agreeing (smoothed, as Polis).")
    divide: float | None = Field(default=None, description="Largest difference between two groups' agreement.")


class Representative(BaseModel):
    statement_id: int
    text: str
    repful_for: str = Field(description="agree or disagree: what sets this group apart on it")
    in_group: int = Field(description="Members of the group who voted that way.")
    of_group: int = Field(description="Members of the group who voted on it.")
    repness: float


class OpinionGroup(BaseModel):
    group_id: int
    members: list[int] = Field(description="Participant numbers (as in the Polis export).")
    representative: list[Representative]


class OpinionReport(BaseModel):
    participants: int = Field(description="Participants who voted at least once.")
    clustered: int = Field(description="Participants with enough votes to be placed in a group.")
    min_votes: int = Field(description="Votes a participant needs to be placed in a group (Polis: min(7, statements)).")
    statements: int
    votes: int
    groups: list[OpinionGroup]
    membership: dict[int, int | None] = Field(description="Each voting participant's group (None: too few votes).")
    consensus_agree: list[StatementScore] = Field(description="Statements most agreed across groups (Polis' pick).")
    consensus_disagree: list[StatementScore]
    ranked_consensus: list[StatementScore] = Field(description="Every statement, most consensual across groups first.")
    ranked_divisive: list[StatementScore] = Field(description="Every statement, most dividing the groups first.")
    note: str | None = Field(default=None, description="Why there are no groups, when there are none.")


@dataclass(frozen=True)
class _Numbered:
    votes: list[dict[str, float | int]]
    texts: dict[int, str]
    voters: set[int]


def _numbered(conversation: Conversation) -> _Numbered:
    people, comments = numbering(conversation)
    texts = {comments[s.statement_id]: s.text for s in conversation.statements}
    votes: list[dict[str, float | int]] = []
    for vote in sorted(conversation.votes, key=lambda v: v.at):
        if vote.statement_id in comments and vote.choice in VOTE_SIGNS:
            votes.append({"participant_id": people[vote.participant_id], "statement_id": comments[vote.statement_id],
                          "vote": VOTE_SIGNS[vote.choice], "modified": vote.at})
    return _Numbered(votes, texts, {int(v["participant_id"]) for v in votes})


def opinion_report(conversation: Conversation, random_state: int = 0, pick_max: int = 5) -> OpinionReport:
    """Opinion groups, consensus and divisive statements of a deliberation (deterministic for a ``random_state``)."""
    numbered = _numbered(conversation)
    statements = len(numbered.texts)
    min_votes = min(POLIS_MIN_VOTES, max(statements, 1))
    counts: dict[int, int] = {}
    for vote in numbered.votes:
        counts[int(vote["participant_id"])] = counts.get(int(vote["participant_id"]), 0) + 1
    qualifying = sum(1 for n in counts.values() if n >= min_votes)
    if qualifying < MIN_CLUSTERED or statements < 2:
        plain = _plain_scores(numbered)
        return OpinionReport(participants=len(numbered.voters), clustered=0, min_votes=min_votes,
                             statements=statements, votes=len(numbered.votes), groups=[],
                             membership={p: None for p in sorted(numbered.voters)},
                             consensus_agree=[], consensus_disagree=[],
                             ranked_consensus=sorted(plain, key=lambda s: -s.agree), ranked_divisive=[],
                             note=f"Not enough votes for opinion groups: {qualifying} participant(s) voted on at least "
                                  f"{min_votes} statements; at least {MIN_CLUSTERED} are needed.")
    with warnings.catch_warnings():  # scikit-learn warns while k-means tries group counts the data cannot support
        warnings.simplefilter("ignore")
        from reddwarf.implementations.polis import run_pipeline

        result = run_pipeline(votes=numbered.votes, min_user_vote_threshold=min_votes, random_state=random_state,
                              pick_max=pick_max)
    membership: dict[int, int | None] = {}
    for participant, row in result.participants_df.iterrows():
        group = row["cluster_id"]
        membership[int(participant)] = None if group is None or str(group) == "<NA>" else int(group)
    group_ids = sorted({g for g in membership.values() if g is not None})
    scores = {s.statement_id: s for s in _plain_scores(numbered)}
    stats = result.group_comment_stats
    gac = result.group_aware_consensus["agree"]
    for statement_id, score in scores.items():
        rates: dict[int, float] = {}
        for group in group_ids:
            key = (group, statement_id)
            if key in stats.index:
                rates[group] = round(float(stats.loc[key, "pa"]), 4)
        score.group_agree = rates
        score.divide = round(max(rates.values()) - min(rates.values()), 4) if len(rates) > 1 else None
        value = gac.get(statement_id)
        score.group_informed_consensus = round(float(value), 6) if value is not None else None

    def picked(items: list[dict[str, float]]) -> list[StatementScore]:
        return [scores[int(item["tid"])] for item in items if int(item["tid"]) in scores]

    groups = []
    for group in group_ids:
        reps = [Representative(statement_id=int(r["tid"]), text=numbered.texts.get(int(r["tid"]), ""),
                               repful_for=str(r["repful-for"]), in_group=int(r["n-success"]),
                               of_group=int(r["n-trials"]), repness=round(float(r["repness"]), 4))
                for r in result.repness.get(group, []) if int(r["n-success"]) > 0]
        groups.append(OpinionGroup(group_id=group, members=sorted(p for p, g in membership.items() if g == group),
                                   representative=reps))
    ranked = sorted(scores.values(), key=lambda s: (-(s.group_informed_consensus or 0.0), s.statement_id))
    divisive = sorted((s for s in scores.values() if s.divide is not None),
                      key=lambda s: (-(s.divide or 0.0), s.statement_id))
    return OpinionReport(participants=len(numbered.voters),
                         clustered=sum(1 for g in membership.values() if g is not None), min_votes=min_votes,
                         statements=statements, votes=len(numbered.votes), groups=groups, membership=membership,
                         consensus_agree=picked(result.consensus["agree"]),
                         consensus_disagree=picked(result.consensus["disagree"]),
                         ranked_consensus=ranked, ranked_divisive=divisive)


def _plain_scores(numbered: _Numbered) -> list[StatementScore]:
    tallies: dict[int, list[int]] = {s: [] for s in numbered.texts}
    for vote in numbered.votes:
        tallies[int(vote["statement_id"])].append(int(vote["vote"]))
    return [StatementScore(statement_id=s, text=numbered.texts[s], votes=len(v),
                           agree=round(sum(1 for x in v if x == 1) / len(v), 4) if v else 0.0)
            for s, v in sorted(tallies.items())]
