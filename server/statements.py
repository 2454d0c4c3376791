"""Statements and votes in a room (participants add and edit statements and vote agree / disagree / pass), and
participants' "that's not what we said" flags on summary points.

Every change is validated (the statement must belong to the participant's room; only its author may edit a
participant's statement, anyone in the room may edit one the AI proposed), stored, then published: the statement
events and a ``vote.tally`` go to everyone in the room, the individual ``vote.cast`` only to the bus (storage and the
facilitator), never to browsers.

A statement keeps its meaning once people vote on it: it can be edited only until its first vote (then the author
proposes a revised statement instead, as in Polis), and every vote names the statement revision the voter read, so a
vote on a text that has changed meanwhile is refused. Storage checks both inside one transaction, so an edit racing a
vote never leaves votes on a text they were not cast on. A participant flags a summary point once; flagging it again
changes nothing and publishes nothing.
"""

from __future__ import annotations

import asyncio

from server.context import ServerContext
from server.core import plaintext
from server.core.errors import Refused
from server.core.events import StatementAdded, StatementEdited, SummaryFlagged, VoteCast, VoteTally
from server.core.ids import new_id

LOCKED = ("People have already voted on this statement, so it can no longer be changed: propose a revised statement "
          "instead.")
CHANGED = "The statement was edited: read it again and vote."


class StatementRefused(Refused):
    """A statement, edit, vote or flag was refused; ``code`` says why."""


class StatementBoard:
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    async def _statement_in_room(self, room_id: str, statement_id: str) -> StatementAdded:
        statement = await asyncio.to_thread(self._ctx.storage.get_statement, statement_id)
        if statement is None or statement.room_id != room_id:
            raise StatementRefused("unknown_statement", "There is no such statement in this room.")
        return statement

    async def add(self, room_id: str, participant_id: str, name: str, text: str) -> StatementAdded:
        statement = StatementAdded(room_id=room_id, statement_id=f"s-{new_id(10)}", text=plaintext.normalise(text),
                                   author_id=participant_id, author_name=name)
        await asyncio.to_thread(self._ctx.storage.add_statement, statement)
        await self._ctx.bus.publish(statement)
        return statement

    async def edit(self, room_id: str, participant_id: str, statement_id: str, text: str,
                   seen_revision: int | None = None) -> StatementEdited:
        """Change a statement's text, until its first vote; ``seen_revision``, when given, is the revision the editor
        read (an edit of a text changed meanwhile is refused)."""
        statement = await self._statement_in_room(room_id, statement_id)
        if not statement.ai_generated and statement.author_id != participant_id:
            raise StatementRefused("not_allowed", "Only its author can edit this statement; add your own instead.")
        text = plaintext.normalise(text)
        revision = statement.revision if seen_revision is None else seen_revision
        outcome = await asyncio.to_thread(self._ctx.storage.edit_statement, statement_id, text, revision)
        if outcome == "voted_on":
            raise StatementRefused("statement_locked", LOCKED)
        if outcome == "stale":
            raise StatementRefused("statement_changed", "The statement was edited meanwhile: read it again first.")
        if outcome == "missing":
            raise StatementRefused("unknown_statement", "There is no such statement in this room.")
        edited = StatementEdited(room_id=room_id, statement_id=statement_id, text=text, editor_id=participant_id,
                                 revision=revision + 1)
        await self._ctx.bus.publish(edited)
        return edited

    async def flag_summary(self, room_id: str, participant_id: str, message_id: str, point: int,
                           note: str) -> SummaryFlagged | None:
        """Flag a summary point for the moderators; None (nothing stored or published) if this participant had
        flagged it already."""
        message = await asyncio.to_thread(self._ctx.storage.get_ai_message, message_id)
        if message is None or message.room_id != room_id or message.kind != "summary" or point >= len(message.points):
            raise StatementRefused("unknown_message", "There is no such summary point in this room.")
        note = " ".join(note.split())
        if not await asyncio.to_thread(self._ctx.storage.add_summary_flag, room_id, message_id, point,
                                       participant_id, note):
            return None
        flagged = SummaryFlagged(room_id=room_id, message_id=message_id, point=point, participant_id=participant_id,
                                 note=note)
        await self._ctx.bus.publish(flagged)
        return flagged

    async def vote(self, room_id: str, participant_id: str, statement_id: str, choice: str,
                   revision: int) -> VoteTally:
        """Record a vote on revision ``revision`` of a statement (the one the voter read): the room's own, or one shared
        into its vote from another room of the deliberation."""
        statement = await asyncio.to_thread(self._ctx.storage.votable_in, room_id, statement_id)
        if statement is None:
            raise StatementRefused("unknown_statement", "There is no such statement in this room.")
        if statement.revision != revision:
            raise StatementRefused("statement_changed", CHANGED)
        tally = await asyncio.to_thread(self._ctx.storage.cast_vote, statement_id, participant_id, choice, revision)
        if tally is None:  # edited between the check above and the vote
            raise StatementRefused("statement_changed", CHANGED)
        await self._ctx.bus.publish(VoteCast(room_id=room_id, statement_id=statement_id,
                                             participant_id=participant_id, choice=choice,  # type: ignore[arg-type]
                                             revision=revision))
        result = VoteTally(room_id=room_id, statement_id=statement_id, agree=tally["agree"],
                           disagree=tally["disagree"], passed=tally["pass"])
        await self._ctx.bus.publish(result)
        return result
