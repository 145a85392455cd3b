"""A test oracle whose calls survive the death of any process: the rule oracle with this reward.

    oracle: {kind: rule, options: {reward: "tests.helpers.counting_oracle:reward", tau: 1.0}}

`reward(prompt, response)` is TinyTask's gold reward. Every call appends one line
`query|eval PID KEY` to `$DUEL_TEST_ORACLE_DIR/calls` (the rule oracle scores response a then
response b, so one pair = 2 lines; calls made by the win-rate evaluation are tagged apart; KEY
= `call_key(prompt, response)` tells which call was asked twice), written with O_APPEND and
fsynced: the count survives a SIGKILLed driver or actor. While `$DUEL_TEST_ORACLE_DIR/down` exists and holds an integer k, the oracle answers its
first k reward calls and then fails every call (an outage); removing the file ends the outage.
While `$DUEL_TEST_ORACLE_DIR/kill` holds k, the query call that finds k calls counted removes the
file and SIGKILLs its own process (the oracle actor dies mid-call, before counting that call).
The directory comes from the environment, so the driver must set it before Ray starts.
"""

from __future__ import annotations

import os
import signal
import sys
import zlib
from pathlib import Path

ENV = "DUEL_TEST_ORACLE_DIR"
REWARD = "tests.helpers.counting_oracle:reward"
_task = None


class OracleDown(RuntimeError):
    pass


def _dir() -> Path:
    return Path(os.environ[ENV])


def calls(directory=None) -> int:
    """Reward calls answered for queries so far (2 per pair); evaluation calls not counted."""
    p = Path(directory or _dir()) / "calls"
    return sum(1 for x in p.read_bytes().splitlines() if x.startswith(b"query")) if p.exists() else 0


def _in_oracle_actor() -> bool:
    """True when called through actors.oracle (a query), False for win-rate evaluation."""
    f = sys._getframe(1)
    while f is not None:
        if f.f_code.co_filename.endswith(os.path.join("actors", "oracle.py")):
            return True
        f = f.f_back
    return False


def call_key(prompt: str, response: str) -> str:
    return f"{zlib.crc32((prompt + chr(0) + response).encode()):08x}"


def query_calls(directory=None, start: int = 0) -> list[tuple[int, str]]:
    """(pid, call_key) of each query reward call after the first `start`, in order."""
    p = Path(directory or _dir()) / "calls"
    lines = [x.split() for x in p.read_bytes().splitlines() if x.startswith(b"query")]
    return [(int(x[1]), x[2].decode()) for x in lines[start:]]


def pairs(directory=None) -> int:
    """calls // 2. A pair whose actor died between its two reward calls adds one odd call, so
    compare differences of `pairs` (or count `calls`) rather than expect an even total."""
    return calls(directory) // 2


def reward(prompt: str, response: str) -> float:
    global _task
    d = _dir()
    down = d / "down"
    query = _in_oracle_actor()
    if query and down.exists() and calls(d) >= int(down.read_text()):
        raise OracleDown(f"test oracle is down (after {down.read_text()} calls)")
    kill = d / "kill"
    if query and kill.exists() and calls(d) >= int(kill.read_text()):
        kill.unlink(missing_ok=True)  # once: the restarted actor answers
        os.kill(os.getpid(), signal.SIGKILL)
    if _task is None:
        from tests.helpers.tiny import TinyTask

        _task = TinyTask()
    r = _task.gold_reward(prompt, response)
    fd = os.open(d / "calls", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{'query' if query else 'eval'} {os.getpid()} {call_key(prompt, response)}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return r


def oracle_config(**over) -> dict:
    """tiny_config overrides that make the run use this oracle, one pair per oracle call (as a
    paid oracle: each answer reaches the driver before the next pair is asked)."""
    return {"oracle.kind": "rule", "oracle.options": {"reward": REWARD, "tau": 1.0, "call_size": 1},
            **over}
