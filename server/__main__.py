"""``python -m server`` is the same as the ``moot`` command."""

import sys

from server.cli import main

sys.exit(main())
