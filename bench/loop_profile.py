"""Where a sync demo step's wall time goes: every process of the loop sampled at once with py-spy.

    .venv/bin/python bench/loop_profile.py                  # demo preset, sync, 160 steps
    .venv/bin/python bench/loop_profile.py --duration 8 --set resources.generators=1

`bench/loop.py` measures the orchestration overhead (wall time not spent generating, selecting,
labelling or learning) but not where it goes. This samples the driver, the learner, each generator
and the oracle actor (py-spy, wall-clock, idle stacks included, 200 Hz) for `--duration` seconds
from step 30, and splits each process's main thread per step:
- actors: busy (inside duel's own code: the actor method), or idle (Ray's loop waiting for a task
  or for the objects the task needs);
- the driver: waiting for the generators, for the oracle, for the learner, or its own work.
It also reads the CPU seconds every process on the machine spent in the window (/proc), Ray's own
daemons included. Needs py-spy (`pip install py-spy`) and ptrace rights (root, or
kernel.yama.ptrace_scope=0). Writes bench/results/loop_profile.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_table, write_result
from bench.loop import LOOP_SETTINGS

OURS = ("(learner/", "(actors/", "(duel/")
ROLES = ("Learner", "Generator", "Oracle")
DRIVER_WAITS = {"Loop._gather": "wait: generators", "Loop._label": "wait: oracle",
                "Loop._learned": "wait: learner"}


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """{pid: (name, utime + stime seconds)} of every process on the machine."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
            cmd = (p / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        name = cmd.split("/")[-1] or stat[stat.index("(") + 1:stat.rindex(")")]
        out[int(p.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def main_thread(raw: Path, driver: bool) -> list[tuple[list[str], int]]:
    """The sampled stacks (frames outermost first) of the process's main thread."""
    threads: dict[str, list] = defaultdict(list)
    for line in raw.read_text().splitlines():
        stack, n = line.rsplit(" ", 1)
        frames = stack.split(";")
        threads[frames[0]].append((frames[1:], int(n)))
    mark = "Loop._steps" if driver else "Worker.main_loop"
    return max(threads.values(), key=lambda s: sum(n for f, n in s if any(mark in x for x in f)))


def classify_actor(frames: list[str]) -> str:
    ours = [f.split(" (")[0] for f in frames if any(k in f for k in OURS)]
    return f"busy: {ours[0]}" if ours else "idle"


def classify_driver(frames: list[str]) -> str | None:
    names = [f.split(" (")[0] for f in frames]
    if "Loop._steps" not in names:
        return None  # before or after the stepping
    waiting = names[-1] in ("Worker.get_objects", "wait")
    for fn, label in DRIVER_WAITS.items():
        if fn in names and waiting:
            return label
    return "own work"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="demo")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--start", type=int, default=60, help="step after which sampling starts")
    p.add_argument("--duration", type=int, default=20, help="seconds sampled")
    p.add_argument("--rate", type=int, default=20, help="samples per second per process (py-spy costs CPU)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args(argv)
    if subprocess.run(["py-spy", "--version"], capture_output=True).returncode != 0:
        raise SystemExit("bench/loop_profile.py needs py-spy on PATH: pip install py-spy")

    import ray

    from launch.presets import load_config
    from learner.loop import init_ray, run_experiment

    cfg = load_config(a.config, [f"steps={a.steps}", "mode=sync", *LOOP_SETTINGS, *a.set])
    tmp = Path(tempfile.mkdtemp(prefix="duel-loop-profile-"))
    spies: list[tuple[str, int, Path, subprocess.Popen]] = []
    window: dict = {"ends": []}

    def after_step(loop, step):
        now = time.perf_counter()
        if step < a.start:
            window.setdefault("before", []).append(now)
        if step == a.start:
            pids = {"driver": [os.getpid()]}
            ps = subprocess.run(["pgrep", "-af", "ray::"], capture_output=True, text=True).stdout
            for line in ps.splitlines():
                pid, title = line.split(" ", 1)
                role = next((r for r in ROLES if r in title.split()[0]), None)
                if role:
                    pids.setdefault(role.lower(), []).append(int(pid))
            for role, ps_ in pids.items():
                for i, pid in enumerate(ps_):
                    out = tmp / f"{role}{i}.raw"
                    cmd = ["py-spy", "record", "--pid", str(pid), "--idle", "--threads", "--format", "raw",
                           "-r", str(a.rate), "--duration", str(a.duration), "-o", str(out)]
                    spies.append((f"{role}{i}" if len(ps_) > 1 else role, pid, out,
                                  subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(out.with_suffix(".log"), "w"))))
            window.update(t0=now, cpu0=cpu_seconds())
        elif "t0" in window and "t1" not in window:
            window["ends"].append(now)
            if now - window["t0"] >= a.duration:
                window.update(t1=now, cpu1=cpu_seconds())

    init_ray()
    try:
        run_experiment(cfg, tmp / "run", hooks={"after_step": after_step})
    finally:
        for *_, proc in spies:
            proc.wait()
        ray.shutdown()
    if "t1" not in window:
        raise SystemExit(f"the run ended before {a.duration} s were sampled: raise --steps")
    steps = len(window["ends"])
    seconds = window["t1"] - window["t0"]
    wall_ms = 1e3 * seconds / steps

    rows, split = [], {}
    for name, pid, raw, _ in spies:
        if not raw.is_file():
            log = raw.with_suffix(".log")
            raise SystemExit(f"py-spy wrote no profile of {name} (pid {pid}): {log.read_text()[-500:] if log.is_file() else ''}")
        stacks = main_thread(raw, driver=name == "driver")
        counts = Counter()
        for frames, n in stacks:
            label = classify_driver(frames) if name == "driver" else classify_actor(frames)
            if label:
                counts[label] += n
        total = sum(counts.values())
        # each state's share of the process's samples, as ms of the window's mean step
        ms = {k: wall_ms * v / total for k, v in counts.most_common()}
        split[name] = ms
        for k, v in counts.most_common():
            rows.append({"process": name, "state": k, "ms per step": ms[k], "% of step": 100 * v / total})

    cpu = defaultdict(float)
    for pid, (nm, t1) in window["cpu1"].items():
        t0 = window["cpu0"].get(pid, (nm, 0.0))[1]
        cpu[nm] += t1 - t0
    cpu_ms = {k: 1e3 * v / steps for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v > 0}
    before = window["before"][10:]  # steps 11 .. start, unsampled (the first ones compile)
    wall_before_ms = 1e3 * (before[-1] - before[0]) / (len(before) - 1)
    write_result("loop_profile", {
        "config": a.config, "settings": a.set, "steps_sampled": steps, "seconds_sampled": seconds,
        "wall_ms_per_step": wall_ms, "wall_ms_per_step_unsampled": wall_before_ms, "rate_hz": a.rate, "main_thread_ms_per_step": split,
        "cpu_ms_per_step_by_process": cpu_ms, "cpus": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0]})
    print(f"{steps} steps in {seconds:.2f} s: wall {wall_ms:.1f} ms per step sampled, "
          f"{wall_before_ms:.1f} unsampled (steps 11-{a.start}); CPU ms per step by process "
          f"({os.cpu_count()} cores = {os.cpu_count() * wall_ms:.0f} CPU ms per step): "
          + ", ".join(f"{k} {v:.1f}" for k, v in list(cpu_ms.items())[:10]))
    print_table(rows, f"main thread of each process, {steps} sync steps of {a.config} (py-spy, wall clock)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
