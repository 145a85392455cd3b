"""Multi-host learner: initialise `jax.distributed` for the learner's JAX processes.

A learner spread over several hosts is one JAX program run by N processes (one per host, or one
per device) that meet at a coordinator (process 0's host and a port). After initialisation
`jax.devices()` lists every device of every process and `duel.sharding.make_mesh` spans them.

    spec = from_slurm()                          # SLURM: one task per learner process (sbatch/srun)
    spec = DistributedSpec("10.0.0.5:41234", 2, 1)
    init_distributed(**spec.kwargs())            # once per process, before any other JAX call

Under Ray the learner processes are actors. Rank 0 picks a free port on its own node
(`coordinator_endpoint`), the driver hands (address, N, rank) to every rank, and all ranks
initialise at once (jax.distributed.initialize blocks until all N have joined):

    class LearnerProcess(Learner, DistributedMember): ...  # learner/group.py mixes this in
    actors = [LearnerProcessActor.options(...).remote(...) for _ in range(n)]
    infos = init_ray_group(actors)                         # -> per rank: process index, devices

The loop does this for `learner.processes > 1` (learner/group.py, `LearnerGroup`).

Generators and oracles are separate Ray actors on their own GPUs/nodes and never join the group.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import zlib
from collections.abc import Mapping, Sequence

DEFAULT_PORT_BASE = 20000  # SLURM: port = base + job_id % 20000 (all tasks derive the same one)


@dataclasses.dataclass(frozen=True)
class DistributedSpec:
    coordinator_address: str  # "host:port" of process 0
    num_processes: int
    process_id: int
    local_device_ids: tuple[int, ...] | None = None  # None: every local device

    def __post_init__(self):
        if self.num_processes < 1:
            raise ValueError(f"num_processes must be >= 1, got {self.num_processes}")
        if not 0 <= self.process_id < self.num_processes:
            raise ValueError(f"process_id {self.process_id} is outside [0, {self.num_processes})")
        host, _, port = self.coordinator_address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"coordinator_address must be 'host:port', got {self.coordinator_address!r}")

    def kwargs(self) -> dict:
        return dataclasses.asdict(self)


def init_distributed(coordinator_address: str, num_processes: int, process_id: int,
                     local_device_ids: Sequence[int] | None = None, *, timeout_s: int = 300) -> DistributedSpec:
    """jax.distributed.initialize for this process (a no-op for a single process).

    Must run before the process touches a JAX device. Returns the validated spec.
    """
    spec = DistributedSpec(coordinator_address, int(num_processes), int(process_id),
                           None if local_device_ids is None else tuple(int(i) for i in local_device_ids))
    if spec.num_processes == 1:
        return spec
    import jax

    jax.distributed.initialize(
        coordinator_address=spec.coordinator_address, num_processes=spec.num_processes,
        process_id=spec.process_id,
        local_device_ids=None if spec.local_device_ids is None else list(spec.local_device_ids),
        initialization_timeout=int(timeout_s))
    if jax.process_count() != spec.num_processes or jax.process_index() != spec.process_id:
        raise RuntimeError(f"jax.distributed joined as process {jax.process_index()} of {jax.process_count()}, "
                           f"expected {spec.process_id} of {spec.num_processes}")
    return spec


# ------------------------------------------------------------------------------------- SLURM


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: "gpu[003-004,010],cpu1" -> "gpu003"."""
    nodelist = nodelist.strip()
    if not nodelist:
        raise ValueError("empty SLURM node list")
    m = re.match(r"([^,\[]*)(?:\[([^\]]+)\])?([^,]*)", nodelist)
    prefix, ranges, suffix = m.group(1), m.group(2), m.group(3)
    if ranges is None:
        return prefix + suffix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first + suffix


def slurm_port(job_id: str | int | None, base: int = DEFAULT_PORT_BASE) -> int:
    """A coordinator port every task of the job derives alike (no communication needed)."""
    if job_id is None or str(job_id) == "":
        return base
    s = str(job_id)
    return base + (int(s) if s.isdigit() else zlib.crc32(s.encode())) % 20000


def from_slurm(env: Mapping[str, str] | None = None, *, port: int | None = None,
               one_device_per_task: bool = False) -> DistributedSpec:
    """DistributedSpec from SLURM's variables: SLURM_PROCID (rank), SLURM_NTASKS (N), the first
    host of SLURM_STEP_NODELIST / SLURM_JOB_NODELIST (coordinator) and a port from
    DUEL_COORDINATOR_PORT or the job id. one_device_per_task: several tasks per node, each
    owning the device SLURM_LOCALID."""
    env = os.environ if env is None else env
    missing = [k for k in ("SLURM_PROCID", "SLURM_NTASKS") if k not in env]
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if nodelist is None:
        missing.append("SLURM_JOB_NODELIST")
    if missing:
        raise ValueError(f"not inside a SLURM job step: environment lacks {', '.join(missing)} "
                         f"(launch the learner with srun; see launch/cluster/slurm.sbatch)")
    if port is None:
        port = int(env["DUEL_COORDINATOR_PORT"]) if env.get("DUEL_COORDINATOR_PORT") else slurm_port(env.get("SLURM_JOB_ID"))
    local = (int(env.get("SLURM_LOCALID", 0)),) if one_device_per_task else None
    return DistributedSpec(f"{first_host(nodelist)}:{port}", int(env["SLURM_NTASKS"]), int(env["SLURM_PROCID"]), local)


# --------------------------------------------------------------------------------------- Ray


def free_port(host: str = "") -> int:
    """A TCP port free on this host right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def node_ip() -> str:
    """This node's IP as Ray sees it (falls back to the hostname's address outside Ray)."""
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - no Ray, or not connected: ask the OS
        return socket.gethostbyname(socket.gethostname())


def group_specs(coordinator: str, n: int, local_device_ids=None) -> list[DistributedSpec]:
    """The spec of every rank, given rank 0's "ip:port"."""
    return [DistributedSpec(coordinator, n, i, local_device_ids) for i in range(n)]


class DistributedMember:
    """Mix into a Ray actor class that runs one learner JAX process."""

    def coordinator_endpoint(self) -> str:
        """Called on rank 0 only: "node_ip:free_port" for the group to meet at."""
        return f"{node_ip()}:{free_port()}"

    def init_distributed(self, spec: DistributedSpec, timeout_s: int = 300) -> dict:
        init_distributed(**spec.kwargs(), timeout_s=timeout_s)
        import jax

        return {"process_index": jax.process_index(), "process_count": jax.process_count(),
                "devices": jax.device_count(), "local_devices": jax.local_device_count()}


def init_ray_group(actors: Sequence, *, timeout_s: int = 300, local_device_ids=None) -> list[dict]:
    """Initialise jax.distributed across Ray actors (DistributedMember); rank = list position.

    All ranks are called concurrently (initialize blocks until every rank has joined)."""
    import ray

    coordinator = ray.get(actors[0].coordinator_endpoint.remote())
    specs = group_specs(coordinator, len(actors), local_device_ids)
    return ray.get([a.init_distributed.remote(s, timeout_s) for a, s in zip(actors, specs)], timeout=timeout_s + 30)
