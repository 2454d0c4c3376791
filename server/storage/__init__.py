"""Persistent storage of rooms, participants and transcripts (SQLAlchemy; SQLite by default, PostgreSQL by URL)."""

from server.storage.repository import CaptionRecord, ParticipantRecord, RoomPlan, RoomRecord, Storage

__all__ = ["CaptionRecord", "ParticipantRecord", "RoomPlan", "RoomRecord", "Storage"]
