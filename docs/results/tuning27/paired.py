"""Round 27's finals, same seeds: G100's ee_ts minus recipe-r16-style's shipped ee_ts on `style`
seeds 5-9, in AUC and final (`expected_win_rate`), mean and 95% t-interval over the seeds.

    python docs/results/tuning27/paired.py   # after run_finals.sh ee_ts G100
"""
import sys
from pathlib import Path

from duel import report_stats as st

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning20"))
from against import from_runs, shipped  # noqa: E402  (round 20's)

budget, groups = shipped(HERE.parent / "style-r16" / "report.json")
base = {r["seed"]: r for r in groups["ee_ts"]}
new = {r["seed"]: r for r in from_runs(Path("runs/tuning27/final-style-G100"), "ee_ts")}
seeds = sorted(set(base) & set(new))
for name, f in (("AUC", lambda r: st.auc(r["eval_queries"], r["values"], budget)), ("final", lambda r: r["values"][-1])):
    d = [f(new[s]) - f(base[s]) for s in seeds]
    m, lo, hi = st.t_interval(d)
    print(f"G100 - shipped ee_ts, seeds {seeds}: {name} {m:+.4f} [{lo:+.4f}, {hi:+.4f}]  per seed "
          + " ".join(f"{x:+.3f}" for x in d))
