"""The AI facilitator: deliberation templates, a stage engine driven by room events, and LLM backends.

It talks to rooms only through events on the bus, so it runs inside ``moot serve`` or as its own worker unchanged.
"""
