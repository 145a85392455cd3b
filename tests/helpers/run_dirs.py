"""Reading a finished run directory in tests: checkpoint records, digests, metrics rows, ledger."""

import orbax.checkpoint as ocp

from duel.checkpoint import _manager
from duel.ledger import Ledger
from duel.metrics import read_metrics


def record(run_dir, step):
    """The checkpoint's metadata record: {"meta", "checksums", "keys", "saved_at"}."""
    with _manager(run_dir) as m:
        return m.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def digests(run_dir, step, replay: bool = False):
    """The checkpoint's array digests, checked to cover the policy, its optimizer state, the ERM
    and its replay buffer (and the label replay, for a run with replay.updates > 0)."""
    sums = record(run_dir, step)["checksums"]
    parts = ("['policy']['params']", "['policy']['opt_state']", "['erm']", "['buffer']") + (("['replay']",) if replay else ())
    for part in parts:
        assert any(k.startswith(part) for k in sums), (part, sorted(sums)[:5])
    return sums


def rows(run_dir):
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in read_metrics(run_dir)]


def ledger_rows(run_dir):
    return [e.__dict__ | {"metadata": None} for e in Ledger(run_dir, readonly=True).entries()]


def counters(run_dir, step):
    c = dict(record(run_dir, step)["meta"]["counters"])
    return c
