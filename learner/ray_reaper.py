"""Ends the agents of an embedded local Ray when its driver dies without shutting Ray down.

Killed with SIGKILL, a driver leaves `ray::DashboardAgent` and `ray::RuntimeEnvAgent` running
for about a minute: the raylet and GCS die with the driver (Ray's fate sharing), the agents
notice at once, but each first reports the raylet's unexpected death to the GCS, which is gone,
and Ray waits 60 s for that report (ray._private.utils.publish_error_to_driver). Ray offers no
setting to start a local node without them or to shorten that wait.

`start(pid)` (called by the driver right after ray.init started a local Ray) runs this file as
a small process with a pipe from the driver. The process notes the session directory of the
driver's raylet (a child of the driver by then) and waits for the pipe to close, which happens however the driver ends.
Then it gives Ray GRACE_S to end the agents itself (a normal `ray.shutdown()` already has) and
kills the agents still running that hold files open in that raylet's session directory
(/tmp/ray/session_...), so that no other Ray's agents are ever hit. It imports only psutil (a
Ray dependency).
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time

AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")
GRACE_S = 3.0
RESCAN_S = 10.0  # look for raylets again (a driver may start Ray more than once)

_child: subprocess.Popen | None = None


def start(pid: int | None = None) -> subprocess.Popen:
    """Start the reaper for the Ray agents of process `pid` (default: this one); idempotent."""
    global _child
    if _child is None or _child.poll() is not None:
        # the pipe's write end stays open in this process until it exits, however it exits
        _child = subprocess.Popen([sys.executable, os.path.abspath(__file__), str(pid or os.getpid())],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        _child.stdout.readline()  # it has noted the session (this process may die right after)
    return _child


def _sessions(driver) -> set[str]:
    """The session directories (/tmp/ray/session_...) of the driver's raylets (children it
    started in ray.init), read from their command lines."""
    import psutil

    found = set()
    try:
        children = driver.children()
    except psutil.Error:
        return found
    for p in children:
        try:
            if p.name() != "raylet":
                continue
            for arg in p.cmdline():
                m = re.search(r"=(/\S*/session_[^/\s]+)/", arg)
                if m:
                    found.add(m.group(1))
                    break
        except psutil.Error:
            continue
    return found


def _agents_of(sessions: set[str]) -> list:
    """Running agents of those sessions (their open log files are in the session directory)."""
    import psutil

    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = p.info["cmdline"]
            if not cmd or not cmd[0].startswith(AGENTS) or p.status() == psutil.STATUS_ZOMBIE:
                continue
            if any(f.path.startswith(f"{d}/") for f in p.open_files() for d in sessions):
                out.append(p)
        except psutil.Error:
            continue
    return out


def main(driver_pid: int) -> int:
    import psutil

    try:
        driver = psutil.Process(driver_pid)
    except psutil.Error:
        return 0
    sessions = _sessions(driver)
    print("ready", flush=True)
    while True:
        sessions |= _sessions(driver)  # a later ray.init of the same driver
        ready, _, _ = select.select([sys.stdin], [], [], RESCAN_S)
        if ready and not os.read(sys.stdin.fileno(), 4096):  # EOF: the driver has ended
            break
    if not sessions:
        return 0
    time.sleep(GRACE_S)
    for p in _agents_of(sessions):
        try:
            p.kill()
        except psutil.Error:  # already gone
            continue
    return 0


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1])))
