"""``python -m metaqnn``: the command line."""

import sys

from metaqnn.cli import main

sys.exit(main())
