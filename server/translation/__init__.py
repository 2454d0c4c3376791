"""Caption translation: text translation backends (``backends``), which languages each room reads (``book``, a
deterministic core) and the translation worker on the bus (``service``). Imports only the core and the models."""
