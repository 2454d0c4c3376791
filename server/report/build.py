"""The cross-room report of a deliberation, assembled from the database: opinion groups and consensus
(``opinions``), themes (``themes``), and participation per room (how many spoke, how much, and how evenly). Everyone
appears by alias ("Participant N", numbered in the order they arrived, as in every export; in the opinion groups by
their Polis number, N - 1). Blocking: the report job runs it in a worker thread, step by step, saying which step it
is on."""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import BaseModel, Field

from server.core.embeddings import Embedder
from server.deliberations.polis_export import gather
from server.exports import aliases
from server.report.opinions import OpinionReport, opinion_report
from server.report.themes import Said, Theme, themes
from server.storage import Storage

STEPS = ("reading what was said", "opinion groups", "themes", "participation", "naming the themes")


class SpeakerShare(BaseModel):
    speaker: str = Field(description="The alias.")
    seconds: float
    utterances: int


class RoomParticipation(BaseModel):
    room_id: str
    title: str
    participants: int = Field(description="People who joined the room.")
    speakers: int = Field(description="People who said something that was transcribed.")
    utterances: int
    statements: int
    votes: int
    speaking: list[SpeakerShare] = Field(description="Speaking time per person, most first.")
    balance: float | None = Field(description="1 - Gini of speaking time among the room's participants: 1 when "
                                  "everyone spoke as long, towards 0 when one person did all the talking.")


class CrossRoomReport(BaseModel):
    deliberation_id: str
    title: str
    question: str
    generated_at: float
    rooms: list[RoomParticipation]
    opinions: OpinionReport
    themes: list[Theme]
    themes_note: str | None = None


def gini_balance(values: list[float]) -> float | None:
    """1 - Gini coefficient (None without anyone)."""
    if not values:
        return None
    ordered = sorted(values)
    total = sum(ordered)
    if total <= 0:
        return None
    n = len(ordered)
    weighted = sum((i + 1) * v for i, v in enumerate(ordered))
    gini = (2 * weighted) / (n * total) - (n + 1) / n
    return round(1 - gini, 3)


def build_report(storage: Storage, deliberation_id: str, embedder: Embedder | None,
                 step: Callable[[int, str], None] = lambda n, name: None) -> CrossRoomReport:
    from server.deliberations.store import DeliberationStore
    from server.lobby.store import LobbyStore

    record = DeliberationStore(storage.sessions).get(deliberation_id)
    if record is None:
        raise LookupError(f"no deliberation {deliberation_id}")
    step(0, STEPS[0])
    lobby = LobbyStore(storage.sessions)
    order = lobby.arrival_order(record.id)
    rooms = lobby.status(record.id).rooms
    transcripts = {r.room_id: storage.transcript(r.room_id) for r in rooms}
    people = [*order, *(c.participant_id for captions in transcripts.values() for c in captions)]
    alias = aliases(people, [])
    conversation = gather(storage.sessions, record.id, record.spec.title, record.spec.question, "", order)

    step(1, STEPS[1])
    opinions = opinion_report(conversation)

    step(2, STEPS[2])
    said = [Said("utterance", c.utterance_id, room_id, alias[c.participant_id], c.text)
            for room_id, captions in transcripts.items() for c in captions]
    statement_rooms: dict[str, str] = {}  # each statement once, in the room it was written in (not where shared)
    for statement, _ in storage.deliberation_statements(record.id):
        statement_rooms[statement.statement_id] = statement.room_id
        said.append(Said("statement", statement.statement_id, statement.room_id,
                         "AI" if statement.author_id is None else alias.get(statement.author_id, "Participant"),
                         statement.text))
    found: list[Theme] = []
    note = None
    if embedder is None:
        note = "Themes need the embedding model, which is not configured."
    else:
        found = themes(said, embedder)
        if not found:
            note = "Too little was said for themes."

    step(3, STEPS[3])
    votes_per_room: dict[str, int] = {}
    for vote in conversation.votes:
        room_id = statement_rooms.get(vote.statement_id)
        if room_id is not None:
            votes_per_room[room_id] = votes_per_room.get(room_id, 0) + 1
    participation = []
    for r in rooms:
        captions = transcripts[r.room_id]
        seconds: dict[str, float] = {}
        counts: dict[str, int] = {}
        for c in captions:
            who = alias[c.participant_id]
            seconds[who] = seconds.get(who, 0.0) + max(0.0, c.end - c.start)
            counts[who] = counts.get(who, 0) + 1
        joined = storage.list_participants(r.room_id)
        everyone = {alias.get(p.id, p.id) for p in joined} | set(seconds)
        shares = sorted((SpeakerShare(speaker=who, seconds=round(seconds.get(who, 0.0), 1),
                                      utterances=counts.get(who, 0)) for who in everyone),
                        key=lambda s: (-s.seconds, s.speaker))
        participation.append(RoomParticipation(
            room_id=r.room_id, title=r.title, participants=len(everyone), speakers=len(seconds),
            utterances=len(captions), statements=sum(1 for room in statement_rooms.values() if room == r.room_id),
            votes=votes_per_room.get(r.room_id, 0), speaking=shares,
            balance=gini_balance([s.seconds for s in shares])))
    return CrossRoomReport(deliberation_id=record.id, title=record.spec.title, question=record.spec.question,
                           generated_at=time.time(), rooms=participation, opinions=opinions, themes=found,
                           themes_note=note)
