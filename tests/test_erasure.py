"""Deleting personal data for real, on SQLite and PostgreSQL: one participant's captions, statements (with every
vote on them), votes, flags, join records and consent go, and nobody else's; retention deletes a closed
deliberation's transcripts when its time has come, keeping the outcome (statements and votes)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from server.accounts.store import AccountStore
from server.core.events import CaptionFinal, HelpRequested, LLMCallRecorded, SafetyFlagged, StatementAdded
from server.deliberations.erasure import DAY_S, Closed, Erasure, due_for_deletion
from server.deliberations.spec import DeliberationSpec
from server.deliberations.store import DeliberationStore
from server.lobby.notice import NOTICE_VERSION
from server.lobby.store import LobbyStore
from server.storage import Storage
from server.storage.tables import LobbyParticipantRow, SummaryFlagRow, VoteRow


def seated_pair(storage: Storage, retention_days: int | None = None) -> tuple[str, str, str, str]:
    """A deliberation whose round seated Ada and Bo in one room: (deliberation, room, ada, bo)."""
    organiser = AccountStore(storage.sessions).add_user(f"org{id(storage)}@example.org", "x" * 40, "organiser", 1.0)
    spec = DeliberationSpec(title="Libraries", question="Open on Sundays?", group_min=2, group_max=2,
                            retention_days=retention_days)
    deliberations = DeliberationStore(storage.sessions)
    record = deliberations.transition(deliberations.create(organiser.id, spec, 1.0).id, "open", 2.0)
    lobby = LobbyStore(storage.sessions)
    ada = lobby.arrive(record, "Ada", {}, NOTICE_VERSION, 3.0)
    bo = lobby.arrive(record, "Bo", {}, NOTICE_VERSION, 4.0)
    rooms = lobby.start_round(record, 5.0).rooms
    (room,) = rooms
    for who, name in ((ada.id, "Ada"), (bo.id, "Bo")):
        for n in range(2):
            storage.add_caption(CaptionFinal(room_id=room, utterance_id=f"{who}-{n}", participant_id=who,
                                             speaker_name=name, text=f"{name} said {n}", start=n, end=n + 1))
        storage.add_statement(StatementAdded(room_id=room, statement_id=f"st-{who}", text=f"{name}'s view",
                                             author_id=who, author_name=name))
        storage.add_summary_flag(room, "m1", 0, who, "not what we said")
        storage.add_safety_flag(SafetyFlagged(room_id=room, utterance_id=f"{who}-0", participant_id=who,
                                              speaker_name=name, category="abuse", reason="test", detected_by="rules"))
        storage.add_help_request(HelpRequested(room_id=room, request_id=f"help-{who}"[:32], participant_id=who,
                                               participant_name=name, note=f"{name} needs help"))
    for voter in (ada.id, bo.id):
        for author in (ada.id, bo.id):
            assert storage.cast_vote(f"st-{author}", voter, "agree", 0) is not None
    storage.add_llm_call_record(LLMCallRecorded(room_id=room, call_id="c1", purpose="summary", model="m",
                                                messages=[{"role": "user", "content": "Ada said 0"}], output="x",
                                                latency_s=0.1, outcome="ok"))
    return record.id, room, ada.id, bo.id


def count(storage: Storage, table: type, **where: str) -> int:
    with storage.sessions() as s:
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(getattr(table, column) == value)
        return int(s.scalar(query) or 0)


def test_deleting_a_participant_removes_their_data_and_nobody_elses(migrated_storage: Storage) -> None:
    storage = migrated_storage
    deliberation, room, ada, bo = seated_pair(storage)
    erasure = Erasure(storage.sessions)
    assert not erasure.delete_participant("someotherdelib1", ada)  # another deliberation's id: nothing happens
    assert erasure.delete_participant(deliberation, ada)
    assert [c.text for c in storage.transcript(room)] == ["Bo said 0", "Bo said 1"]
    assert [s.text for s in storage.statements(room)] == ["Bo's view"]  # Ada's, with Bo's vote on it, are gone
    assert count(storage, VoteRow, participant_id=ada) == 0
    assert count(storage, VoteRow, participant_id=bo) == 1
    assert count(storage, SummaryFlagRow, participant_id=ada) == 0
    assert count(storage, SummaryFlagRow, participant_id=bo) == 1
    assert [f["participant_id"] for f in storage.safety_flags(room)] == [bo]
    assert [h.participant_id for h in storage.pending_help_requests(room)] == [bo], "their call and its note too"
    assert count(storage, LobbyParticipantRow, id=ada) == 0 and count(storage, LobbyParticipantRow, id=bo) == 1
    assert not erasure.delete_participant(deliberation, ada)  # already gone


def test_retention_deletes_transcripts_when_due_and_keeps_the_outcome(migrated_storage: Storage) -> None:
    storage = migrated_storage
    deliberation, room, _, _ = seated_pair(storage, retention_days=30)
    erasure = Erasure(storage.sessions)
    DeliberationStore(storage.sessions).transition(deliberation, "close", 1000.0)
    assert erasure.apply_retention(1000.0 + 29 * DAY_S) == []
    assert len(storage.transcript(room)) == 4
    assert erasure.apply_retention(1000.0 + 30 * DAY_S) == [deliberation]
    assert storage.transcript(room) == [] and storage.llm_calls(room) == [] and storage.safety_flags(room) == []
    assert len(storage.statements(room)) == 2 and count(storage, VoteRow) == 4


def test_retention_needs_a_closed_deliberation_with_a_period() -> None:
    deliberations = [Closed("open1", "open", 0.0, 1), Closed("none", "closed", 0.0, None),
                     Closed("due", "closed", 0.0, 1), Closed("later", "closed", 10.0, 1)]
    assert due_for_deletion(deliberations, DAY_S) == ["due"]


@given(st.floats(0, 1e9), st.integers(1, 3650), st.floats(0, 1e10))
def test_due_exactly_when_the_period_has_passed(closed_at: float, days: int, now: float) -> None:
    due = due_for_deletion([Closed("d", "closed", closed_at, days)], now)
    assert (due == ["d"]) == (now >= closed_at + days * DAY_S)
