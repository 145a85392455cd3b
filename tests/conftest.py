"""Shared by every test: one JAX persistent compilation cache and one starting-policy cache
(driver and Ray actors alike), and the Ray session with the counting oracle (tests/helpers).

Helpers (not tests) live in tests/helpers/ and are imported as `tests.helpers.NAME`.
"""

import os
import tempfile

import pytest

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "duel-test-jax-cache"))
os.environ.setdefault("DUEL_CACHE", os.path.join(tempfile.gettempdir(), "duel-test-cache"))
# A test file run as a script in a subprocess (`python tests/x/test_y.py`, for a fresh JAX with
# several host devices) has its own directory on sys.path, not the repository root, so
# `import tests.helpers...` needs the root on PYTHONPATH; `python -m pytest` alone does not set it.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)


@pytest.fixture(scope="module")
def oracle_dir(tmp_path_factory):
    """Where tests.helpers.counting_oracle counts its calls (one directory per test module)."""
    return tmp_path_factory.mktemp("oracle")


@pytest.fixture(scope="module")
def counting_ray(oracle_dir):
    """Ray for a module whose runs use the counting oracle: its directory is in every actor's
    environment. Use with `pytestmark = pytest.mark.usefixtures("counting_ray")`."""
    import ray

    from tests.helpers import counting_oracle
    from tests.helpers.tiny import start_ray

    start_ray(**{counting_oracle.ENV: str(oracle_dir)})
    yield
    ray.shutdown()
