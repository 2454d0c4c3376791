"""Model weights that ship inside Python packages, and where Moot finds or assembles them.

Nothing here downloads from a model hub: every model is either inside an installed package or a path the operator
provides.
"""
