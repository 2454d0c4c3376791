"""Which languages each room reads and each speaker speaks, folded from the room's events: a deterministic core (no
I/O, no clock) that decides what each final caption is translated into.

A caption is translated once per language its room reads other than its own: never once per listener, and never
into the language it was spoken in. Languages are compared by their base code (``pt-BR`` reads ``pt``). The source
is the language the recogniser detected, else the one the speaker chose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from server.core.events import (
    AIMessage,
    BusEvent,
    CaptionFinal,
    CaptionPartial,
    ParticipantJoined,
    ParticipantLanguage,
    ParticipantLeft,
    RoomLanguages,
    base_language,
)


@dataclass
class RoomReaders:
    languages: list[str] = field(default_factory=list)  # base codes, sorted, as last announced
    speakers: dict[str, str] = field(default_factory=dict)  # participant id -> the language they chose
    announced: bool = False  # a room.languages event was seen (else the languages come from the speakers)


class LanguageBook:
    """Fold room events with ``apply``; ask ``plan`` what a caption is translated into."""

    def __init__(self) -> None:
        self._rooms: dict[str, RoomReaders] = {}

    def knows(self, room_id: str) -> bool:
        return room_id in self._rooms

    def apply(self, event: BusEvent) -> None:
        if isinstance(event, RoomLanguages):
            room = self._rooms.setdefault(event.room_id, RoomReaders())
            room.languages = sorted({base_language(x) for x in event.languages})
            room.announced = True
        elif isinstance(event, ParticipantJoined) and event.participant.language:
            room = self._rooms.setdefault(event.room_id, RoomReaders())
            room.speakers[event.participant.participant_id] = event.participant.language
            self._derive(room)
        elif isinstance(event, ParticipantLanguage):
            room = self._rooms.setdefault(event.room_id, RoomReaders())
            room.speakers[event.participant_id] = event.language
            self._derive(room)
        elif isinstance(event, ParticipantLeft) and event.room_id in self._rooms:
            room = self._rooms[event.room_id]
            room.speakers.pop(event.participant_id, None)
            self._derive(room)

    @staticmethod
    def _derive(room: RoomReaders) -> None:
        if not room.announced:  # an older node that announces no room.languages: what its speakers chose
            room.languages = sorted({base_language(x) for x in room.speakers.values()})

    def source_of(self, said: CaptionFinal | CaptionPartial | AIMessage) -> str | None:
        """The language a caption (detected, else the speaker's choice) or an AI message was said in."""
        if said.language:
            return base_language(said.language)
        if isinstance(said, AIMessage):
            return None
        chosen = self._rooms.get(said.room_id, RoomReaders()).speakers.get(said.participant_id)
        return base_language(chosen) if chosen else None

    def plan(self, said: CaptionFinal | CaptionPartial | AIMessage) -> tuple[str | None, list[str]]:
        """A caption's or AI message's source language and the languages to translate it into (each once)."""
        source = self.source_of(said)
        if source is None:
            return None, []
        return source, [language for language in self.languages(said.room_id) if language != source]

    def languages(self, room_id: str) -> list[str]:
        """The base languages the room reads (sorted)."""
        readers = self._rooms.get(room_id)
        return list(readers.languages) if readers is not None else []
