"""Actor tests share one JAX persistent compilation cache (driver and Ray actors alike)."""

import os
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "duel-test-jax-cache"))
os.environ.setdefault("DUEL_CACHE", os.path.join(tempfile.gettempdir(), "duel-test-cache"))
