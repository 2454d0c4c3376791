"""The typed event model: round trips, discrimination by type, and rejection of unknown or malformed input."""

from __future__ import annotations

import pytest

from server.events import (
    CaptionFinal,
    CaptionWord,
    EventDecodeError,
    Join,
    ParticipantInfo,
    ParticipantJoined,
    decode_bus_event,
    decode_client_message,
    decode_server_message,
    encode,
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
