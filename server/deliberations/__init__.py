"""Deliberations: one question discussed in many small rooms, set up by an organiser and moderated by the moderators
they invite. ``spec`` validates what an organiser sets, ``store`` keeps it, ``access`` says who may see and do what."""
