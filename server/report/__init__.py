"""The cross-room report of a deliberation: opinion groups, consensus and divisive statements (``opinions``, with
red-dwarf), and ``moot report`` to print them."""
