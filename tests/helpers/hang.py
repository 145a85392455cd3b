"""How long a test waits for a subprocess before calling it hung.

A guard against a hang, not a speed check: tests must pass on a loaded machine (the project's
rule), so the default is an hour, far above any run's time on two busy cores. A quick local loop
can lower it: DUEL_TEST_HANG_TIMEOUT=300.
"""

import os

HANG_TIMEOUT_S = float(os.environ.get("DUEL_TEST_HANG_TIMEOUT", "3600"))
