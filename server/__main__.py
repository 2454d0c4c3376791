"""``python -m server`` is the same as the ``moot`` command."""

import sys

from server.cli import main

if __name__ == "__main__":  # not when a spawned child process (the local language model) imports this module
    sys.exit(main())
