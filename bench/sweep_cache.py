"""A demo sweep of 4 runs x 6 steps timed at one commit: the persistent compile cache A/B.

    .venv/bin/python bench/sweep_cache.py --commit af41904 --label before
    .venv/bin/python bench/sweep_cache.py --commit 8873bfd --label after

Runs `duel sweep demo --strategies passive,ee_ts --seeds 2 --budget 96 --set steps=6` from a
git worktree of COMMIT (PYTHONPATH and cwd set to it; this checkout's .venv), as a new user
would: JAX_COMPILATION_CACHE_DIR unset, DUEL_CACHE a fresh temporary directory. The starting
policy is the one thing copied into that directory (from --policy-from, else built by the sweep
and timed with it), so that the A/B times compilation, not SFT training. Reports the sweep's
wall time, each run's step 1 (time_generate, time_learn, time_step from metrics.jsonl: the
first step compiles) and what the compile cache holds afterwards. Writes
bench/results/sweep_cache_LABEL.json. Timings on a shared machine: run each once, one after
the other, and say the load (uptime is recorded before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["sweep", "demo", "--strategies", "passive,ee_ts", "--seeds", "2", "--budget", "96",
        "--set", "steps=6"]


def loadavg() -> list[float]:
    return list(os.getloadavg())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commit", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--policy-from", help="a cached starting-policy directory to copy in")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix=f"duel-sweep-{args.label}-"))
    wt = tmp / "wt"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(wt), args.commit],
                   check=True, capture_output=True)
    commit = subprocess.run(["git", "-C", str(wt), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    cache = tmp / "cache"
    cache.mkdir()
    if args.policy_from:
        src = Path(args.policy_from)
        shutil.copytree(src, cache / src.name)
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "RAY_ADDRESS")}
    env.update(DUEL_CACHE=str(cache), PYTHONPATH=str(wt), HF_HUB_OFFLINE="1")
    out = tmp / "sweep"
    load0, t0 = loadavg(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "launch", *ARGS, "--out", str(out)], cwd=wt,
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    load1 = loadavg()
    (tmp / "sweep.log").write_text(proc.stdout + proc.stderr)
    runs = {}
    for d in sorted(p for p in out.iterdir() if (p / "metrics.jsonl").is_file()):
        rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
        train = [r for r in rows if r.get("kind") == "train"]
        first = min(train, key=lambda r: r["step"])
        runs[d.name] = {"steps": len(train),
                        **{k: round(first[k], 3) for k in ("time_generate", "time_learn", "time_step")},
                        "later_steps_time_step_s": round(sum(r["time_step"] for r in train if r is not first), 3)}
    jax_dir = cache / "jax"
    files = [p for p in jax_dir.rglob("*") if p.is_file()] if jax_dir.is_dir() else []
    result = {"benchmark": "sweep_cache", "label": args.label, "commit": commit,
              "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu_count": os.cpu_count(),
              "command": "duel " + " ".join(ARGS), "starting_policy": "copied" if args.policy_from else "built",
              "returncode": proc.returncode, "sweep_wall_s": round(wall, 1),
              "loadavg_before": load0, "loadavg_after": load1, "runs": runs,
              "compile_cache_files": len(files),
              "compile_cache_mb": round(sum(p.stat().st_size for p in files) / 2**20, 1),
              "log_tail": (proc.stdout + proc.stderr).splitlines()[-8:]}
    dest = ROOT / "bench" / "results" / f"sweep_cache_{args.label}.json"
    dest.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "log_tail"}, indent=1))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)], capture_output=True)
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
