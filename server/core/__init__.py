"""Moot's shared core: the event model, the bus, settings, ids, the clock and error types.

Every other part of Moot builds on this package, and it imports nothing else of Moot (a contract in
``pyproject.toml``, checked by ``lint-imports`` in the test suite). Media (``server.rtc``), speech (``server.asr``)
and the facilitator (``facilitator``) import only this package among Moot's own; composition roots (the app, the CLI,
the worker runtime, benchmarks) import everything.
"""
