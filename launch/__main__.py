"""`python -m launch ...` is the `duel` command."""

import sys

from launch.cli import main

sys.exit(main())
