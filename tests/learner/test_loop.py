"""The distributed loop on CPU with tiny models: 2 generators, an oracle actor, the learner actor."""

import pytest
import ray

from actors.generator import StaleWeights
from duel.ledger import Ledger
from duel.metrics import read_metrics
from learner import loop as loop_mod
from learner.loop import run_experiment
from tests.helpers.tiny import start_ray, tiny_config, tiny_model_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    start_ray()
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("policy") / "tiny")


def _watch(seen):
    """after_step hook: what the learner published at that step, what every generator holds."""
    def hook(loop, step):
        infos = ray.get([g.info.remote() for g in loop.generators])
        seen.append({"step": step, "version": loop.version,
                     "learner": ray.get(loop.learner.weights_checksum.remote()),
                     "generators": [(i["version"], i["checksum"]) for i in infos],
                     "oracle_calls": loop.pool.num_calls(), "queries": loop.counters.queries,
                     "counters": (loop.counters, ray.get(loop.learner.get_counters.remote()))})
    return hook


def test_sync_run_two_generators_with_mixed_preference(tmp_path, model):
    cfg = tiny_config(model, steps=4, **{"mixed.gamma": 0.5, "mixed.burn_in": 2, "eval.every": 4})
    seen = []
    res = run_experiment(cfg, tmp_path, hooks={"after_step": _watch(seen), "checksums": True})
    assert res["step"] == 4 and res["version"] == 4
    # the weights a generator holds are exactly those the learner published for that version
    assert [s["version"] for s in seen] == [1, 2, 3, 4]
    assert len({s["learner"] for s in seen}) == 4  # every update changed the policy
    published = {s["version"]: s["learner"] for s in seen}
    for s in seen:
        assert [(v, published[v]) for v, _ in s["generators"]] == s["generators"], s
    # the next step's generation leaves with the learner's update (the loop's pipeline): after
    # steps 1-3 both generators already loaded the new version; after the last step none is sent
    assert [[v for v, _ in s["generators"]] for s in seen] == [[1, 1], [2, 2], [3, 3], [3, 3]]
    # every sample was drawn with the version just published (sync: on-policy)
    rows = read_metrics(tmp_path, "train")
    assert [r["sample_version"] for r in rows] == [0, 1, 2, 3]
    assert all(r["staleness"] == 0 for r in rows)
    # queries == oracle calls; steps 0-1 are all oracle (burn-in), steps 2-3 half synthetic
    assert [r["queries"] for r in rows] == [4, 8, 10, 12]
    assert [r["synthetic"] for r in rows] == [0, 0, 2, 4]
    # the task's gold reward scores the ERM's labels (free: no query), on the steps that have them
    assert [("synthetic_gold_ties" in r) for r in rows] == [False, False, True, True]
    assert all(0.0 <= r[k] <= 1.0 for r in rows[2:] for k in ("synthetic_gold_ties", "synthetic_gold_agree") if k in r)
    assert [s["oracle_calls"] for s in seen] == [4, 8, 10, 12]
    assert res["queries"] == 12 and res["synthetic"] == 4
    # one owner: the loop's counters are the learner's answer, step by step
    assert all(s["counters"][0] == s["counters"][1] for s in seen)
    assert [s["counters"][1].synthetic for s in seen] == [0, 0, 2, 4]
    # the ledger holds every paid label, once, and nothing else
    ledger = Ledger(tmp_path, readonly=True)
    entries = ledger.entries()
    assert len(entries) == 12
    assert len({e.pair_id for e in entries}) == 12
    assert sorted(e.step for e in entries) == [0] * 4 + [1] * 4 + [2] * 2 + [3] * 2
    assert all(e.version == e.step for e in entries)
    # eval row, checkpoint and config are in the run directory
    ev = read_metrics(tmp_path, "eval")
    assert [e["step"] for e in ev] == [4] and ev[0]["n"] == 8
    assert 0.0 <= ev[0]["win_rate_vs_start"] <= 1.0
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "checkpoints" / "4").is_dir()


def test_async_run_overlaps_within_max_staleness(tmp_path, model):
    cfg = tiny_config(model, steps=4, mode="async", max_staleness=1)
    res = run_experiment(cfg, tmp_path)
    rows = read_metrics(tmp_path, "train")
    # step t learns from samples drawn with version max(t - 1, 0): one step of generation ahead
    assert [r["sample_version"] for r in rows] == [0, 0, 1, 2]
    assert [r["staleness"] for r in rows] == [0, 1, 1, 1]
    assert res["queries"] == 16 == len(Ledger(tmp_path, readonly=True))
    versions = sorted(e.version for e in Ledger(tmp_path, readonly=True).entries())
    assert versions == [0] * 8 + [1] * 4 + [2] * 4


def test_a_skipped_publish_fails_the_next_step(tmp_path, monkeypatch, model):
    real = loop_mod.Loop.publish

    def skip_once(self, ref, version=None):
        if (self.version if version is None else version) == 2:  # the learner published version 2,
            return None  # but the loop drops it
        return real(self, ref, version)

    monkeypatch.setattr(loop_mod.Loop, "publish", skip_once)
    with pytest.raises(StaleWeights, match="holds weights version 1 but was asked to sample with version 2"):
        run_experiment(tiny_config(model, steps=4), tmp_path)
    assert [r["step"] for r in read_metrics(tmp_path, "train")] == [1, 2]


class _Stop(Exception):
    pass


def _straight_and_resumed(cfg, tmp_path, stop_at: int) -> tuple[dict, dict]:
    """Run `cfg` straight, and again stopped after step `stop_at` then resumed -> ({name: (weights
    checksum, ERM checksum, stream position) at the last step}, {name: run dir}); asserts the two
    runs' metric rows (times aside) and ledgers are equal."""
    ends, dirs = {}, {"straight": tmp_path / "straight", "resumed": tmp_path / "stopped"}

    def final(name):
        def hook(loop, step):
            if step == cfg.steps:
                ends[name] = (ray.get(loop.learner.weights_checksum.remote()),
                              ray.get(loop.learner.erm_checksum.remote()), loop.stream.position)
        return hook

    def stop(loop, step):
        if step == stop_at:
            raise _Stop

    run_experiment(cfg, dirs["straight"], hooks={"after_step": final("straight")})
    with pytest.raises(_Stop):
        run_experiment(cfg, dirs["resumed"], hooks={"after_step": stop})
    res = run_experiment(cfg, dirs["resumed"], hooks={"after_step": final("resumed")})
    assert res["step"] == cfg.steps

    def rows(d):
        return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in read_metrics(d)]

    assert rows(dirs["resumed"]) == rows(dirs["straight"])
    a, b = ([e.__dict__ | {"metadata": None} for e in Ledger(d, readonly=True).entries()] for d in dirs.values())
    assert a == b
    return ends, dirs


def test_stop_and_resume_ends_bit_identical(tmp_path, model):
    """Sync mode: 4 steps straight == 2 steps, stop, resume to 4 (weights, ERM, ledger, metrics)."""
    cfg = tiny_config(model, steps=4, **{"checkpoint.every": 2, "mixed.gamma": 0.5, "mixed.burn_in": 1})
    ends, dirs = _straight_and_resumed(cfg, tmp_path, stop_at=2)
    assert ends["resumed"] == ends["straight"]
    assert len(Ledger(dirs["resumed"], readonly=True)) == 4 + 2 * 3


def test_a_prompts_schedule_grows_the_batch_and_resumes_bit_identical(tmp_path, model):
    """prompts_per_step_from {2: 8}: steps 0-1 take 4 prompts, steps 2-3 take 8, every one of
    them paid (no mixed preference); stopped after step 3 (the schedule's second size), the
    resumed run takes the same prompts and ends with the same weights, ledger and metrics."""
    cfg = tiny_config(model, steps=4, prompts_per_step_from={2: 8}, **{"checkpoint.every": 1})
    ends, dirs = _straight_and_resumed(cfg, tmp_path, stop_at=3)
    assert ends["resumed"] == ends["straight"]
    assert ends["straight"][2] == 24  # the stream handed out 4 + 4 + 8 + 8 prompts
    assert [r["queries"] for r in read_metrics(dirs["straight"], "train")] == [4, 8, 16, 24]
    entries = Ledger(dirs["straight"], readonly=True).entries()
    assert sorted(e.step for e in entries) == [0] * 4 + [1] * 4 + [2] * 8 + [3] * 8
