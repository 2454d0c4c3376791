"""REST API: rooms, transcripts, exports, health, and bad input."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import event

from server.core.events import AIMessage, CaptionFinal, CaptionWord, StatementAdded
from tests.staff import bearer, sign_in


def create(client: TestClient, title: str = "Housing in our town") -> dict:
    """A room created by a signed-in organiser (who may then read everything in it)."""
    if "authorization" not in client.headers:
        sign_in(client)
    response = client.post("/api/rooms", json={"title": title})
    assert response.status_code == 201, response.text
    return response.json()


def add_caption(client: TestClient, room_id: str, n: int, text: str, start: float) -> None:
    storage = client.app.state.ctx.storage  # type: ignore[attr-defined]
    storage.add_caption(CaptionFinal(
        room_id=room_id, utterance_id=f"u{n}", participant_id="p1", speaker_name="Ada <b>", text=text,
        start=start, end=start + 2.5, language="en",
        words=[CaptionWord(word=text.split()[0], start=start, end=start + 1)],
    ))


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_create_and_read_room(client: TestClient) -> None:
    room = create(client, "  Housing   in our town ")
    assert room["title"] == "Housing in our town"
    assert room["url"].endswith(f"/r/{room['id']}")
    assert room["max_participants"] == 8
    assert client.get(f"/api/rooms/{room['id']}").json()["id"] == room["id"]


def test_bad_room_requests(client: TestClient) -> None:
    for body in ({}, {"title": ""}, {"title": "   "}, {"title": "x" * 201}, {"title": "ok", "extra": 1}):
        response = client.post("/api/rooms", json=body)
        assert response.status_code == 422, body
        assert response.json()["detail"]
    assert client.post("/api/rooms", content=b"{not json", headers={"content-type": "application/json"}).status_code \
        == 422
    for room_id in ("nope1234", "../../etc", "x" * 40, "UPPER"):
        response = client.get(f"/api/rooms/{room_id}/transcript")
        assert response.status_code == 404, room_id


def test_transcript_and_exports(client: TestClient) -> None:
    room = create(client)
    other = create(client, "Other room")
    add_caption(client, room["id"], 1, "we should build more homes", 1000.0)
    add_caption(client, room["id"], 2, "I agree --> strongly", 1003.0)
    add_caption(client, other["id"], 3, "secret other room text", 1001.0)

    data = client.get(f"/api/rooms/{room['id']}/transcript").json()
    assert [c["text"] for c in data["captions"]] == ["we should build more homes", "I agree --> strongly"]
    assert data["captions"][0]["speaker_name"] == "Ada <b>"

    vtt = client.get(f"/api/rooms/{room['id']}/transcript.vtt")
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert "attachment" in vtt.headers["content-disposition"]
    body = vtt.text
    assert body.startswith("WEBVTT")
    assert "00:00:00.000 --> 00:00:02.500" in body
    assert "00:00:03.000 --> 00:00:05.500" in body
    assert "<v Participant 1>we should build more homes" in body, "exports name speakers by alias"
    assert "Ada" not in body
    assert "I agree --&gt; strongly" in body, "cue text never contains a raw -->"
    assert "secret" not in body

    exported = client.get(f"/api/rooms/{room['id']}/transcript.json").json()
    assert exported["room"]["id"] == room["id"] and len(exported["captions"]) == 2
    assert {(c["speaker_name"], c["participant_id"]) for c in exported["captions"]} == {("Participant 1",
                                                                                          "Participant 1")}
    assert "Ada" not in str(exported) and "p1" not in str(exported["captions"])

    # Real names: only for the room's organiser (here its creator) or an administrator, and each request is logged.
    real_names = f"/api/rooms/{room['id']}/transcript.vtt?names=real"
    assert client.get(real_names, headers={"Authorization": ""}).status_code == 401
    other = bearer(client, "org@example.org", "organiser")
    assert client.get(real_names, headers=other).status_code == 404  # may not even read this room
    moderator = bearer(client, "mod@example.org", "moderator")
    assert client.get(real_names, headers=moderator).status_code == 404
    for headers in ({}, bearer(client, "root@example.org", "admin")):  # the creator, then an administrator
        real = client.get(real_names, headers=headers)
        assert real.status_code == 200 and "<v Ada &lt;b&gt;>we should build more homes" in real.text
    log = client.app.state.ctx.storage.audit_log(room["id"])  # type: ignore[attr-defined]
    assert [action for _, _, action in log] == ["export_real_names", "export_real_names"]
    assert client.get(f"/api/rooms/{room['id']}/transcript.vtt?names=everyone").status_code == 422


def test_client_pages_served(client: TestClient) -> None:
    assert client.get("/").status_code == 200
    assert client.get("/r/abcd1234").status_code == 200
    assert client.get("/api/config").json()["ice_servers"] == []


def test_ai_messages_endpoint(client: TestClient) -> None:
    room = create(client)
    storage = client.app.state.ctx.storage  # type: ignore[attr-defined]
    storage.add_ai_message(AIMessage(room_id=room["id"], ts=5.0, message_id="x1", kind="time", text="5 minutes left"))
    data = client.get(f"/api/rooms/{room['id']}/ai-messages").json()
    assert [(m["text"], m["ai_generated"]) for m in data] == [("5 minutes left", True)]
    assert client.get("/api/rooms/nosuchroom/ai-messages").status_code == 404


def test_statements_endpoint_shows_tallies_not_votes(client: TestClient) -> None:
    room = create(client)
    storage = client.app.state.ctx.storage  # type: ignore[attr-defined]
    storage.add_statement(StatementAdded(room_id=room["id"], statement_id="s1", text="Build homes", author_id="p1",
                                         author_name="Ada"))
    storage.cast_vote("s1", "p1", "agree", 0)
    storage.cast_vote("s1", "voter-who-disagreed", "disagree", 0)
    (statement,) = client.get(f"/api/rooms/{room['id']}/statements").json()
    assert statement["text"] == "Build homes" and statement["revision"] == 0
    assert statement["tally"] == {"agree": 1, "disagree": 1, "pass": 0}
    assert "voter-who-disagreed" not in str(statement)  # (a random room id may contain any short string)


def test_listing_statements_is_one_query_whatever_their_number(client: TestClient) -> None:
    room, other = create(client)["id"], create(client, "Other")["id"]
    storage = client.app.state.ctx.storage  # type: ignore[attr-defined]
    for n in range(5):
        storage.add_statement(StatementAdded(room_id=room, ts=float(n), statement_id=f"s{n}", text=f"Statement {n}",
                                             author_id="p1", author_name="Ada"))
        for voter in range(n):
            storage.cast_vote(f"s{n}", f"p{voter}", ("agree", "disagree", "pass")[voter % 3], 0)
    storage.add_statement(StatementAdded(room_id=other, statement_id="elsewhere", text="Not here", author_name="Bo"))
    assert storage.edit_statement("s0", "Statement zero", 0) == "edited"
    queries: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        queries.append(statement)

    event.listen(storage.engine, "before_cursor_execute", record)
    try:
        listed = client.get(f"/api/rooms/{room}/statements").json()
    finally:
        event.remove(storage.engine, "before_cursor_execute", record)
    about_statements = [q for q in queries if "statements" in q or "votes" in q]
    assert len(about_statements) == 1, about_statements
    assert [(s["statement_id"], s["text"], s["revision"], s["tally"]) for s in listed] == [
        ("s0", "Statement zero", 1, {"agree": 0, "disagree": 0, "pass": 0}),
        ("s1", "Statement 1", 0, {"agree": 1, "disagree": 0, "pass": 0}),
        ("s2", "Statement 2", 0, {"agree": 1, "disagree": 1, "pass": 0}),
        ("s3", "Statement 3", 0, {"agree": 1, "disagree": 1, "pass": 1}),
        ("s4", "Statement 4", 0, {"agree": 2, "disagree": 1, "pass": 1}),
    ]


def test_aliases_follow_arrival_order_then_first_words() -> None:
    from server.exports import aliases
    from server.storage import CaptionRecord

    def said(who: str) -> CaptionRecord:
        return CaptionRecord(utterance_id=who, room_id="r", participant_id=who, speaker_name=who.upper(), start=0.0,
                             end=1.0, text="hello", language="en")

    captions = [said("bo"), said("zed"), said("ada"), said("bo")]
    assert aliases(["ada", "bo", "cy"], captions) == {"ada": "Participant 1", "bo": "Participant 2",
                                                      "cy": "Participant 3", "zed": "Participant 4"}
    assert aliases([], captions) == {"bo": "Participant 1", "zed": "Participant 2", "ada": "Participant 3"}
