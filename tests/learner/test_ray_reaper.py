"""A driver killed with SIGKILL leaves no Ray agent behind (learner.ray_reaper)."""

import os
import signal
import subprocess
import sys

import psutil
import pytest

from tests.helpers.tiny import ROOT

DRIVER = """
import os, sys, time
import psutil
from learner.loop import init_ray
from learner import ray_reaper
init_ray(num_cpus=1)
me = psutil.Process()
while True:  # until the raylet has started both agents
    agents = [p for p in me.children(recursive=True) if p.cmdline()[:1] and p.cmdline()[0].startswith(ray_reaper.AGENTS)]
    if len(agents) == 2:
        break
    time.sleep(0.2)
print(ray_reaper._child.pid, *[p.pid for p in agents], flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_the_agents_of_a_sigkilled_driver_are_ended(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    reaper_pid, *agent_pids = map(int, driver.stdout.readline().split())
    agents = [psutil.Process(p) for p in agent_pids]
    reaper = psutil.Process(reaper_pid)
    assert sorted(a.cmdline()[0].split()[0] for a in agents) == ["ray::DashboardAgent", "ray::RuntimeEnvAgent"]
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    reaper.wait(timeout=120)  # it ends once it has dealt with the agents (Ray's own wait: 60 s)
    for a in agents:
        assert not a.is_running() or a.status() == psutil.STATUS_ZOMBIE, a
