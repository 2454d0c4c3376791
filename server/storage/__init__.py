"""Persistent storage of rooms, participants and transcripts (SQLAlchemy; SQLite by default, PostgreSQL by URL)."""

from server.storage.repository import CaptionRecord, ParticipantRecord, RoomOverview, RoomPlan, RoomRecord, Storage

__all__ = ["CaptionRecord", "ParticipantRecord", "RoomOverview", "RoomPlan", "RoomRecord", "Storage"]
