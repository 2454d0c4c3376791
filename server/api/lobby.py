"""The lobby: where people arrive on a deliberation's participant link, and where organisers form the groups.

Participants (no account; a participant credential the browser keeps, sent as ``X-Moot-Participant``):
- ``GET /api/lobby/{id}``: the question, background, sign-up questions and the notice to consent to;
- ``POST /api/lobby/{id}/arrive``: name, consent (to this notice version) and answers; gives the credential;
- ``GET /api/lobby/{id}/me``: waiting, or the room one was given (poll while waiting);
- ``POST /api/lobby/{id}/leave``.

Organisers and their moderators:
- ``GET /api/deliberations/{id}/lobby``: how many wait, and each room with how many are in it;
- ``POST /api/deliberations/{id}/rounds`` (organiser, admin): form rooms from everyone waiting.

A deliberation that is not open (or unknown) is a 404 for participants: its link shows nothing until it opens.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from server.api.deliberations import Managed, Visible
from server.api.deps import Context
from server.context import ServerContext
from server.deliberations.spec import SignupQuestion
from server.deliberations.store import DeliberationRecord, DeliberationStore
from server.lobby.credentials import InvalidCredential, ParticipantClaims
from server.lobby.notice import NOTICE_VERSION, notice_text
from server.lobby.store import LobbyClosed, LobbyEntry, LobbyStore
from server.names import DisplayNameRefused, display_name

router = APIRouter(prefix="/api", tags=["lobby"])

GONE = "this deliberation is not open (check the link, or try again when the organisers open it)"


class Notice(BaseModel):
    version: str
    paragraphs: list[str]


class LobbyInfo(BaseModel):
    id: str
    title: str
    question: str
    background: str
    status: Literal["open", "paused"]
    languages: list[str]
    signup_questions: list[SignupQuestion]
    notice: Notice


class Arrival(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    consent: Literal[True] = Field(description="The person consents to the notice.")
    notice_version: str = Field(max_length=32, description="The version of the notice they read.")
    answers: dict[str, str] = Field(default_factory=dict, max_length=10)


class Place(BaseModel):
    participant_id: str
    name: str = Field(description="The name the room shows (a number is added when someone there looks alike).")
    status: Literal["waiting", "assigned", "left"]
    room_id: str | None = None
    room_url: str | None = None


class Arrived(Place):
    credential: str = Field(description="Keep it: send it as X-Moot-Participant to the lobby and to the room.")


class RoomCountOut(BaseModel):
    room_id: str
    title: str
    participants: int


class LobbyStatusOut(BaseModel):
    waiting: int
    rooms: list[RoomCountOut]


class RoundOut(BaseModel):
    rooms: dict[str, list[str]] = Field(description="Each new room's id and the participants given it.")
    waiting: int = Field(description="How many still wait (the group sizes did not allow seating them).")


async def _open_deliberation(ctx: ServerContext, deliberation_id: str) -> DeliberationRecord:
    record = None
    if len(deliberation_id) <= 32:
        record = await asyncio.to_thread(DeliberationStore(ctx.storage.sessions).get, deliberation_id)
    if record is None or not record.running:
        raise HTTPException(status_code=404, detail=GONE)
    return record


async def _me(ctx: ServerContext, deliberation_id: str, credential: str | None) -> LobbyEntry:
    if not credential:
        raise HTTPException(status_code=401, detail="send your participant credential (X-Moot-Participant)")
    try:
        claims = await asyncio.to_thread(ctx.participant_signer().read, credential)
    except InvalidCredential:
        raise HTTPException(status_code=401, detail="this participant credential is not valid: arrive again") \
            from None
    entry = await asyncio.to_thread(LobbyStore(ctx.storage.sessions).entry, claims.participant_id)
    if entry is None or claims.deliberation_id != deliberation_id or entry.deliberation_id != deliberation_id:
        raise HTTPException(status_code=404, detail=GONE)
    await _open_deliberation(ctx, deliberation_id)  # closed (or deleted): nothing to wait for any more
    return entry


Credential = Annotated[str | None, Header(alias="X-Moot-Participant")]


def _place(request: Request, ctx: ServerContext, entry: LobbyEntry) -> dict[str, object]:
    base = (ctx.settings.public_url or str(request.base_url)).rstrip("/")
    return {"participant_id": entry.id, "name": entry.room_name or entry.name, "status": entry.status,
            "room_id": entry.room_id, "room_url": f"{base}/r/{entry.room_id}" if entry.room_id else None}


@router.get("/lobby/{deliberation_id}")
async def lobby_info(ctx: Context, deliberation_id: str,
                     lang: Annotated[str | None, Query(max_length=12, description="the notice's language (en, fr, "
                                                       "de, es, nl; default English)")] = None) -> LobbyInfo:
    record = await _open_deliberation(ctx, deliberation_id)
    spec = record.spec
    return LobbyInfo(id=record.id, title=spec.title, question=spec.question, background=spec.background,
                     status=record.status, languages=spec.languages,  # type: ignore[arg-type]
                     signup_questions=spec.signup_questions,
                     notice=Notice(version=NOTICE_VERSION, paragraphs=notice_text(spec.retention_days, lang)))


@router.post("/lobby/{deliberation_id}/arrive", status_code=201)
async def arrive(request: Request, ctx: Context, deliberation_id: str, body: Arrival) -> Arrived:
    record = await _open_deliberation(ctx, deliberation_id)
    if body.notice_version != NOTICE_VERSION:
        raise HTTPException(status_code=409, detail="the notice has changed since you read it: read it again")
    try:
        name = display_name(body.name)
    except DisplayNameRefused as refused:
        raise HTTPException(status_code=422, detail=f"name: {refused}") from None
    questions = {q.id: q for q in record.spec.signup_questions}
    if set(body.answers) != set(questions):
        raise HTTPException(status_code=422, detail="answers: answer each sign-up question "
                            f"({', '.join(sorted(questions)) or 'there are none'})")
    for question_id, answer in body.answers.items():
        if answer not in questions[question_id].choices:
            raise HTTPException(status_code=422, detail=f"answers: {answer!r} is not a choice of {question_id!r}")
    try:
        entry = await asyncio.to_thread(LobbyStore(ctx.storage.sessions).arrive, record, name, body.answers,
                                        body.notice_version, ctx.clock())
    except LobbyClosed:
        raise HTTPException(status_code=404, detail=GONE) from None
    credential = ctx.participant_signer().sign(ParticipantClaims(entry.id, record.id))
    return Arrived(**_place(request, ctx, entry), credential=credential)  # type: ignore[arg-type]


@router.get("/lobby/{deliberation_id}/me")
async def where_am_i(request: Request, ctx: Context, deliberation_id: str, credential: Credential = None) -> Place:
    entry = await _me(ctx, deliberation_id, credential)
    return Place(**_place(request, ctx, entry))  # type: ignore[arg-type]


@router.post("/lobby/{deliberation_id}/leave", status_code=204)
async def leave(ctx: Context, deliberation_id: str, credential: Credential = None) -> None:
    entry = await _me(ctx, deliberation_id, credential)
    await asyncio.to_thread(LobbyStore(ctx.storage.sessions).leave, entry.id)


@router.get("/deliberations/{deliberation_id}/lobby")
async def lobby_status(ctx: Context, record: Visible) -> LobbyStatusOut:
    status = await asyncio.to_thread(LobbyStore(ctx.storage.sessions).status, record.id)
    return LobbyStatusOut(waiting=status.waiting, rooms=[RoomCountOut(room_id=r.room_id, title=r.title,
                                                                      participants=r.participants)
                                                         for r in status.rooms])


@router.post("/deliberations/{deliberation_id}/rounds", status_code=201)
async def start_round(ctx: Context, record: Managed) -> RoundOut:
    try:
        result = await asyncio.to_thread(LobbyStore(ctx.storage.sessions).start_round, record, ctx.clock())
    except LobbyClosed as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return RoundOut(rooms=result.rooms, waiting=len(result.waiting))


