"""A checkpoint write that fails on a full disk: CheckpointWriteError, no partial checkpoint left,
the older checkpoints intact. On a real (tmpfs) disk where the test may mount one; the loop-level
case (stop, resume, no label paid twice) is tests/learner/test_faults.py."""

import errno
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from duel.checkpoint import os_error

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# what TensorStore raised when Orbax filled a 2 MB tmpfs (orbax-checkpoint 0.12.8)
TENSORSTORE_ENOSPC = (
    'RESOURCE_EXHAUSTED: Error writing "a/0" in OCDBT database at local file "/mnt/run/checkpoints/'
    '3.orbax-checkpoint-tmp/state.orbax-checkpoint-tmp/ocdbt.process_0/": Failed writing: "/mnt/run/'
    'checkpoints/3.orbax-checkpoint-tmp/state.orbax-checkpoint-tmp/ocdbt.process_0/d/8d8f5a4da3055439'
    "cfb3ec72d9179366\": Failed to write 872698 bytes to file 14: No space left on device "
    "[os_error_code='28']")


def test_os_error_finds_the_errno_behind_a_failed_write():
    assert os_error(ValueError(TENSORSTORE_ENOSPC)) == errno.ENOSPC
    assert os_error(OSError(errno.ENOSPC, "No space left on device")) == errno.ENOSPC
    try:
        try:
            raise OSError(errno.EIO, "Input/output error")
        except OSError as inner:
            raise RuntimeError("save failed") from inner
    except RuntimeError as e:
        assert os_error(e) == errno.EIO
    assert os_error(ValueError("state structure differs from the template")) is None


FULL_DISK = textwrap.dedent("""
    import os, sys
    import numpy as np
    from duel.checkpoint import CheckpointWriteError, all_steps, restore, save

    run = sys.argv[1]
    small = {"w": np.arange(1000, dtype=np.float32)}
    save(run, 1, small, {"n": 1}, keep=1)
    big = {"w": np.random.default_rng(0).random(800_000).astype(np.float32)}  # 3.2 MB > the disk
    try:
        save(run, 2, big, {"n": 2}, keep=1)
        print("saved")
    except CheckpointWriteError as e:
        print("errno", e.errno)
        print("message", e)
    print("left", sorted(os.listdir(os.path.join(run, "checkpoints"))))
    r = restore(run, small)
    print("restored", r.step, bool((r.state["w"] == small["w"]).all()))
""")


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="needs root and unshare to mount a small tmpfs in a private namespace")
def test_save_on_a_really_full_disk_removes_the_partial_checkpoint(tmp_path):
    from tests.helpers.hang import HANG_TIMEOUT_S
    mnt = tmp_path / "disk"
    mnt.mkdir()
    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK)
    cmd = (f"mount -t tmpfs -o size=2m tmpfs {mnt} && "
           f"{sys.executable} {script} {mnt / 'run'}")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", cmd], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, timeout=HANG_TIMEOUT_S)
    if "mount:" in proc.stderr and proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[:200]}")
    out = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "errno 28" in out, out
    assert (f"message {mnt / 'run' / 'checkpoints' / '2'}: writing checkpoint step 2 failed (No "
            "space left on device); its partial files were removed, checkpoints [1] are intact") in out
    assert "left ['1']" in out  # Orbax's temporary directory is gone, keep=1 deleted nothing
    assert "restored 1 True" in out
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
