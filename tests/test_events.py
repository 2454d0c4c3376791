"""The typed event model: round trips, discrimination by type, and rejection of unknown or malformed input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, get_args, get_origin

import pytest
from pydantic import BaseModel

from server.cli import schema_text
from server.core.events import (
    VISIBILITY,
    BusEvent,
    CaptionFinal,
    CaptionWord,
    EventDecodeError,
    Join,
    ParticipantInfo,
    ParticipantJoined,
    RoomVisibleEvent,
    SummaryFlagged,
    VoteCast,
    VoteTally,
    decode_bus_event,
    decode_client_message,
    decode_server_message,
    encode,
    visible_to,
)


def test_bus_event_round_trip() -> None:
    event = CaptionFinal(
        room_id="r1", utterance_id="u1", participant_id="p1", speaker_name="Ada", text="hello there",
        start=10.0, end=11.5, language="en", words=[CaptionWord(word="hello", start=10.0, end=10.4)],
    )
    decoded = decode_bus_event(encode(event))
    assert decoded == event
    assert isinstance(decoded, CaptionFinal)


def test_server_message_accepts_bus_events() -> None:
    event = ParticipantJoined(room_id="r", participant=ParticipantInfo(participant_id="p", name="Bo"))
    assert decode_server_message(encode(event)) == event


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("not json", "JSON"),
        ('{"type": "nope"}', "tag"),
        ('{"name": "x"}', "type"),
        ('{"type": "join", "name": "", "consent": true}', "name"),
        ('{"type": "join", "name": "Ada", "consent": true, "admin": true}', "admin"),
        ("[1, 2]", "should be an object"),
        ("null", "should be an object"),
    ],
)
def test_client_message_rejects_bad_input(raw: str, fragment: str) -> None:
    with pytest.raises(EventDecodeError) as info:
        decode_client_message(raw)
    assert fragment and fragment.lower() in str(info.value).lower()


def test_client_cannot_send_server_events() -> None:
    forged = encode(CaptionFinal(room_id="r", utterance_id="u", participant_id="p", speaker_name="x", text="t",
                                 start=0, end=1))
    with pytest.raises(EventDecodeError):
        decode_client_message(forged)


def test_join_defaults() -> None:
    msg = decode_client_message('{"type":"join","name":"Ada","consent":true}')
    assert isinstance(msg, Join) and msg.audio and msg.video


# --- events v2: envelope, tolerance between processes, strictness from browsers, the visibility table, the schema ---


def test_between_processes_unknown_fields_are_tolerated_and_the_version_is_stored() -> None:
    newer = json.dumps({"type": "vote.tally", "room_id": "r", "ts": 1.0, "seq": 7, "event_id": "e", "source": "n2",
                        "v": 3, "statement_id": "s", "agree": 1, "disagree": 0, "passed": 0,
                        "weight": 0.5})  # a field a later version added
    event = decode_bus_event(newer)
    assert isinstance(event, VoteTally) and (event.seq, event.v, event.agree) == (7, 3, 1)
    assert json.loads(encode(VoteTally(room_id="r", statement_id="s", agree=0, disagree=0, passed=0)))["v"] == 2


def test_from_browsers_unknown_fields_are_refused() -> None:
    with pytest.raises(EventDecodeError, match="Extra inputs"):
        decode_client_message('{"type": "vote", "statement_id": "s", "choice": "agree", "revision": 0, "weight": 9}')
    with pytest.raises(EventDecodeError):
        decode_client_message('{"type": "join", "name": "Ada", "consent": true, "resume": {"token": "t", "x": 1}}')


def test_the_visibility_table_covers_every_bus_event_and_matches_the_protocol() -> None:
    bus_types = {m.model_fields["type"].default for m in _union_members(BusEvent)}
    assert set(VISIBILITY) == bus_types, "every bus event type has exactly one audience"
    room_types = {m.model_fields["type"].default for m in _union_members(RoomVisibleEvent)}
    assert {t for t, audience in VISIBILITY.items() if audience == "room"} == room_types
    assert not visible_to(VoteCast(room_id="r", statement_id="s", participant_id="p", choice="agree"), "participant")
    flag = SummaryFlagged(room_id="r", message_id="m", point=0, participant_id="p")
    assert not visible_to(flag, "participant") and visible_to(flag, "moderator")


def _union_members(annotated: object) -> list[type[BaseModel]]:
    union = get_args(annotated)[0] if get_origin(annotated) is Annotated else annotated
    return [m for m in get_args(union) if isinstance(m, type) and issubclass(m, BaseModel)]


def test_the_clients_copy_of_the_protocol_schema_is_current() -> None:
    committed = (Path(__file__).resolve().parent.parent / "client" / "schema" / "protocol.schema.json").read_text()
    assert committed == schema_text(), "run: moot schema --out client/schema/protocol.schema.json"
    schema = json.loads(committed)
    sent = set(schema["server"]["discriminator"]["mapping"])
    assert "caption.final" in sent and "vote.cast" not in sent and "safety.flagged" not in sent
    assert set(schema["client"]["discriminator"]["mapping"]) >= {"join", "vote", "statement.add"}
