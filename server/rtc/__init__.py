"""Media: WebRTC peers, forwarding of published tracks to subscribers, audio taps for speech. Imports only the core."""
