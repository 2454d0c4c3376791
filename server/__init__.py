"""Moot server: WebRTC forwarding for small-group rooms, live captions, transcripts and the HTTP/WebSocket API."""

__version__ = "0.1.0"
