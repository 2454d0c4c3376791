"""Statements and votes in a room (participants add and edit statements and vote agree / disagree / pass), and
participants' "that's not what we said" flags on summary points.

Every change is validated (the statement must belong to the participant's room; only its author may edit a
participant's statement, anyone in the room may edit one the AI proposed), stored, then published: the statement
events and a ``vote.tally`` go to everyone in the room, the individual ``vote.cast`` only to the bus (storage and the
facilitator), never to browsers.
"""

from __future__ import annotations

import asyncio

from server.context import ServerContext
from server.events import StatementAdded, StatementEdited, SummaryFlagged, VoteCast, VoteTally
from server.storage.repository import new_id


class StatementRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class StatementBoard:
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    async def _statement_in_room(self, room_id: str, statement_id: str) -> StatementAdded:
        statement = await asyncio.to_thread(self._ctx.storage.get_statement, statement_id)
        if statement is None or statement.room_id != room_id:
            raise StatementRefused("unknown_statement", "There is no such statement in this room.")
        return statement

    async def add(self, room_id: str, participant_id: str, name: str, text: str) -> StatementAdded:
        statement = StatementAdded(room_id=room_id, statement_id=f"s-{new_id(10)}", text=" ".join(text.split()),
                                   author_id=participant_id, author_name=name)
        await asyncio.to_thread(self._ctx.storage.add_statement, statement)
        await self._ctx.bus.publish(statement)
        return statement

    async def edit(self, room_id: str, participant_id: str, statement_id: str, text: str) -> StatementEdited:
        statement = await self._statement_in_room(room_id, statement_id)
        if not statement.ai_generated and statement.author_id != participant_id:
            raise StatementRefused("not_allowed", "Only its author can edit this statement; add your own instead.")
        text = " ".join(text.split())
        await asyncio.to_thread(self._ctx.storage.edit_statement, statement_id, text)
        edited = StatementEdited(room_id=room_id, statement_id=statement_id, text=text, editor_id=participant_id)
        await self._ctx.bus.publish(edited)
        return edited

    async def flag_summary(self, room_id: str, participant_id: str, message_id: str, point: int,
                           note: str) -> SummaryFlagged:
        message = await asyncio.to_thread(self._ctx.storage.get_ai_message, message_id)
        if message is None or message.room_id != room_id or message.kind != "summary" or point >= len(message.points):
            raise StatementRefused("unknown_message", "There is no such summary point in this room.")
        note = " ".join(note.split())
        await asyncio.to_thread(self._ctx.storage.add_summary_flag, room_id, message_id, point, participant_id, note)
        flagged = SummaryFlagged(room_id=room_id, message_id=message_id, point=point, participant_id=participant_id,
                                 note=note)
        await self._ctx.bus.publish(flagged)
        return flagged

    async def vote(self, room_id: str, participant_id: str, statement_id: str, choice: str) -> VoteTally:
        await self._statement_in_room(room_id, statement_id)
        tally = await asyncio.to_thread(self._ctx.storage.cast_vote, statement_id, participant_id, choice)
        await self._ctx.bus.publish(VoteCast(room_id=room_id, statement_id=statement_id,
                                             participant_id=participant_id, choice=choice))  # type: ignore[arg-type]
        result = VoteTally(room_id=room_id, statement_id=statement_id, agree=tally["agree"],
                           disagree=tally["disagree"], passed=tally["pass"])
        await self._ctx.bus.publish(result)
        return result
