"""Composition roots for Moot's worker processes: each assembles components from the feature packages
(``facilitator``, ``server.asr``, storage) on the configured bus and runs them until stopped."""
