"""The moderators' live dashboard: a deterministic board of room cards (``board``) and its WebSocket host (``live``)."""
