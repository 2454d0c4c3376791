"""Who may call each HTTP route and the WebSocket: one explicit table, checked by a test that enumerates the
application's routes (a route missing here fails it). The routes themselves enforce their rule (dependencies in
``server/api/deps.py``, ``server/api/deliberations.py`` and ``server/api/lobby.py``; the signaling join in
``server/rooms.py``); this table is the contract they are tested against.

Rules:

- ``public``: anyone (pages, static files, health, sign-in, the API's description);
- ``link``: anyone holding an unguessable id or token from a link (a room's id, a lobby's deliberation id while it
  is open, a moderator invite);
- ``participant``: the holder of a participant credential, for their own deliberation and room only;
- ``staff``: a signed-in organiser, moderator or administrator; the resource decides further (``access.py`` in
  ``server/deliberations``): an unknown id and one the person may not see are the same 404;
- ``organiser``: staff allowed to change the resource (its organiser, or an administrator), else 403 or 404;
- ``room-staff``: staff who may view the room (its deliberation's organiser and moderators, a stand-alone room's
  creator, administrators);
- ``room-reader``: the room's participants (their credential) and its room staff.
"""

from __future__ import annotations

from typing import Literal

Rule = Literal["public", "link", "participant", "staff", "organiser", "room-staff", "room-reader"]

ROUTE_RULES: dict[tuple[str, str], Rule] = {
    # Pages and assets
    ("GET", "/"): "public",
    ("GET", "/r/{room_id}"): "public",
    ("GET", "/d/{deliberation_id}"): "public",
    ("GET", "/moderate/{room_id}"): "public",
    ("GET", "/dashboard/{deliberation_id}"): "public",
    ("GET", "/organise"): "public",
    ("GET", "/organise/{path:path}"): "public",
    ("GET", "/invite/{token}"): "public",
    ("GET", "/static"): "public",
    ("GET", "/healthz"): "public",
    ("GET", "/metrics"): "public",
    ("GET", "/openapi.json"): "public",
    ("GET", "/docs"): "public",
    ("GET", "/docs/oauth2-redirect"): "public",
    ("GET", "/redoc"): "public",
    ("GET", "/api/config"): "public",
    ("GET", "/api/templates"): "public",
    # Accounts
    ("POST", "/api/auth/token"): "public",
    ("POST", "/api/auth/login"): "public",
    ("POST", "/api/auth/logout"): "staff",
    ("GET", "/api/auth/me"): "staff",
    # Deliberations
    ("POST", "/api/deliberations"): "organiser",
    ("GET", "/api/deliberations"): "staff",
    ("GET", "/api/deliberations/{deliberation_id}"): "staff",
    ("PUT", "/api/deliberations/{deliberation_id}"): "organiser",
    ("DELETE", "/api/deliberations/{deliberation_id}"): "organiser",
    ("POST", "/api/deliberations/{deliberation_id}/open"): "organiser",
    ("POST", "/api/deliberations/{deliberation_id}/pause"): "organiser",
    ("POST", "/api/deliberations/{deliberation_id}/close"): "organiser",
    ("GET", "/api/deliberations/{deliberation_id}/moderators"): "organiser",
    ("DELETE", "/api/deliberations/{deliberation_id}/moderators/{user_id}"): "organiser",
    ("DELETE", "/api/deliberations/{deliberation_id}/participants/{participant_id}"): "organiser",
    ("POST", "/api/deliberations/{deliberation_id}/invites"): "organiser",
    ("GET", "/api/deliberations/{deliberation_id}/lobby"): "staff",
    ("GET", "/api/deliberations/{deliberation_id}/polis/{name}"): "staff",
    ("GET", "/api/deliberations/{deliberation_id}/search"): "staff",
    ("POST", "/api/deliberations/{deliberation_id}/broadcast"): "staff",
    ("POST", "/api/deliberations/{deliberation_id}/facilitator/{action}"): "staff",
    ("POST", "/api/deliberations/{deliberation_id}/report"): "staff",
    ("GET", "/api/deliberations/{deliberation_id}/report"): "staff",
    ("POST", "/api/deliberations/{deliberation_id}/rounds"): "organiser",
    ("GET", "/api/invites/{token}"): "link",
    ("POST", "/api/invites/{token}/accept"): "link",
    # Lobby
    ("GET", "/api/lobby/{deliberation_id}"): "link",
    ("POST", "/api/lobby/{deliberation_id}/arrive"): "link",
    ("GET", "/api/lobby/{deliberation_id}/me"): "participant",
    ("POST", "/api/lobby/{deliberation_id}/leave"): "participant",
    # Rooms
    ("POST", "/api/rooms"): "public",  # MOOT_OPEN_ROOMS (default); set false: organisers only
    ("GET", "/api/rooms/{room_id}"): "link",
    ("GET", "/api/rooms/{room_id}/transcript"): "room-reader",
    ("GET", "/api/rooms/{room_id}/transcript.json"): "room-reader",
    ("GET", "/api/rooms/{room_id}/transcript.vtt"): "room-reader",
    ("GET", "/api/rooms/{room_id}/transcript.srt"): "room-reader",
    ("GET", "/api/rooms/{room_id}/transcript.csv"): "room-reader",
    ("GET", "/api/rooms/{room_id}/report.md"): "room-reader",
    ("GET", "/api/rooms/{room_id}/ai-messages"): "room-reader",
    ("GET", "/api/rooms/{room_id}/statements"): "room-reader",
    ("WEBSOCKET", "/ws/deliberations/{deliberation_id}/dashboard"): "staff",  # tests/test_dashboard_live.py
    ("WEBSOCKET", "/ws/rooms/{room_id}"): "participant",  # a deliberation's room; a stand-alone room: link
    # Moderation
    ("GET", "/api/rooms/{room_id}/llm-calls"): "room-staff",
    ("GET", "/api/rooms/{room_id}/summary-flags"): "room-staff",
    ("GET", "/api/rooms/{room_id}/safety-flags"): "room-staff",
    ("GET", "/api/rooms/{room_id}/ai-messages/pending"): "room-staff",
    ("GET", "/api/rooms/{room_id}/moderator-actions"): "room-staff",
    ("GET", "/api/rooms/{room_id}/review"): "room-staff",
    ("POST", "/api/rooms/{room_id}/messages"): "room-staff",
    ("GET", "/api/rooms/{room_id}/help-requests"): "room-staff",
    ("POST", "/api/rooms/{room_id}/help-requests/{request_id}/take"): "room-staff",
    ("GET", "/review/{deliberation_id}"): "public",
    ("POST", "/api/rooms/{room_id}/ai-messages/{message_id}/approve"): "room-staff",
    ("POST", "/api/rooms/{room_id}/ai-messages/{message_id}/reject"): "room-staff",
    ("POST", "/api/rooms/{room_id}/facilitator/{action}"): "room-staff",
    ("POST", "/api/rooms/{room_id}/participants/{participant_id}/mute"): "room-staff",
    ("POST", "/api/rooms/{room_id}/participants/{participant_id}/remove"): "room-staff",
    ("POST", "/api/rooms/{room_id}/participants/{participant_id}/move"): "room-staff",
    ("POST", "/api/rooms/{room_id}/end"): "room-staff",
}
