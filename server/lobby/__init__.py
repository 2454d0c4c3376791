"""The lobby: people waiting on a deliberation's participant link, and how they are formed into groups."""
