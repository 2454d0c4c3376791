"""Full-text search of what was said (SQLite FTS5 and PostgreSQL's tsvector index, migration 0008): every word must
be there, whole words, any case; only the rooms asked for; query syntax is never interpreted; captions stored before
the migration are found; deleting a caption removes it from the index. Over HTTP: a deliberation's organiser and
moderators search all its rooms, speakers by alias."""

from __future__ import annotations

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from server.core.events import CaptionFinal
from server.storage import Storage
from server.storage.repository import _alembic_config
from tests.seating import seated
from tests.staff import bearer


def said(room: str, utterance: str, text: str, start: float, who: str = "p1") -> CaptionFinal:
    return CaptionFinal(room_id=room, utterance_id=utterance, participant_id=who, speaker_name="Ada", text=text,
                        start=start, end=start + 2)


def test_search_finds_whole_words_in_the_rooms_asked(migrated_storage: Storage) -> None:
    store = migrated_storage
    a, b = store.create_room("A", 8).id, store.create_room("B", 8).id
    lines = [said(a, "u1", "The library should open on Sundays.", 1), said(a, "u2", "Sundays are for families", 2),
             said(b, "u3", "Open the LIBRARY later on weekdays", 3), said(a, "u4", "Libraries cost money", 4)]
    for line in lines:
        assert store.add_caption(line)
    found = store.search_captions([a, b], "library open")
    assert [c.utterance_id for c in found] == ["u1", "u3"], "every word, any case, in time order"
    assert [c.utterance_id for c in store.search_captions([a], "library")] == ["u1"], "only the rooms asked"
    assert store.search_captions([a, b], "librar") == [], "whole words"
    assert [c.utterance_id for c in store.search_captions([a, b], "sundays")] == ["u1", "u2"]
    for hostile in ('"', 'library" OR "money', "NEAR(library money)", "library*", "a' OR 1=1 --", "*", ""):
        store.search_captions([a, b], hostile)  # no syntax error, whatever is typed
    assert [c.utterance_id for c in store.search_captions([a, b], 'library" OR "money')] == [], "not an OR"
    assert store.search_captions([], "library") == []


def test_captions_stored_before_the_migration_are_found_and_deletion_reaches_the_index(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        config = _alembic_config(connection)
        command.upgrade(config, "0007_room_creators")
    engine.dispose()
    store = Storage(database_url)
    try:
        room = "beforeroom01"
        with engine.begin() as connection:  # the rooms table as it was then (today's model has more columns)
            connection.execute(text("INSERT INTO rooms (id, title, created_at, max_participants) "
                                    "VALUES (:id, 'Before', 1.0, 8)"), {"id": room})
        engine.dispose()
        assert store.add_caption(said(room, "old", "Affordable homes near the station", 1))
        store.create_schema()  # to the head: the index is built from what is there
        assert [c.utterance_id for c in store.search_captions([room], "station")] == ["old"]
        assert store.add_caption(said(room, "new", "Another station, further out", 2, who="p2"))
        assert [c.utterance_id for c in store.search_captions([room], "station")] == ["old", "new"]
        _delete_captions(store, room)
        assert store.search_captions([room], "station") == []
    finally:
        store.close()


def _delete_captions(store: Storage, room: str) -> None:
    from sqlalchemy import delete

    from server.storage.tables import CaptionRow

    with store.sessions() as s, s.begin():
        s.execute(delete(CaptionRow).where(CaptionRow.room_id == room))


def test_a_deliberations_staff_search_all_its_rooms(client: TestClient) -> None:
    organiser = bearer(client, "ada@example.org", "organiser")
    made = seated(client, organiser, ("Ann", "Ben", "Cat", "Dan"))
    deliberation, people, rooms = made.deliberation, made.people, made.rooms
    storage = client.app.state.ctx.storage  # type: ignore[attr-defined]
    for n, (room, members) in enumerate(sorted(rooms.items())):
        assert storage.add_caption(said(room, f"u{n}", f"Room {n} talks about the station", n, who=members[0]))
    other = storage.create_room("Elsewhere", 8).id  # a stand-alone room: not the deliberation's
    assert storage.add_caption(said(other, "x", "The station elsewhere", 9))

    hits = client.get(f"/api/deliberations/{deliberation}/search", params={"q": "STATION"}, headers=organiser)
    assert hits.status_code == 200
    found = hits.json()
    assert [h["utterance_id"] for h in found] == ["u0", "u1"]
    arrival = [p["participant_id"] for p in people]
    for hit, (room, members) in zip(found, sorted(rooms.items()), strict=True):
        assert hit["room_id"] == room and hit["speaker"] == f"Participant {arrival.index(members[0]) + 1}"
    assert all(p["name"] not in hits.text and p["participant_id"] not in hits.text for p in people)
    assert client.get(f"/api/deliberations/{deliberation}/search", params={"q": ""},
                      headers=organiser).status_code == 422
    outsider = bearer(client, "oona@example.org", "organiser")
    assert client.get(f"/api/deliberations/{deliberation}/search", params={"q": "station"},
                      headers=outsider).status_code == 404
