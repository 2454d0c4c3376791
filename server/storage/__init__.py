"""Persistent storage of rooms, participants and transcripts (SQLAlchemy; SQLite by default, PostgreSQL by URL)."""

from server.storage.repository import CaptionRecord, Deliberation, ParticipantRecord, RoomRecord, Storage

__all__ = ["CaptionRecord", "Deliberation", "ParticipantRecord", "RoomRecord", "Storage"]
