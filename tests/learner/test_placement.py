"""A multi-node layout (ray.cluster_utils.Cluster, 3 nodes): roles land where configured."""

import os

import pytest
import ray
from ray.cluster_utils import Cluster

from duel.metrics import read_metrics
from learner.loop import run_experiment
from learner.placement import role_specs
from tests.helpers.tiny import tiny_config, tiny_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.slow


def test_role_specs_take_config_and_extra_resources():
    cfg = tiny_config(**{"resources.generator_gpus": 0.5, "resources.learner_gpus": 1.0,
                         "resources.oracle_gpus": 1.0})
    specs = role_specs(cfg, {"oracle": {"resources": {"judge": 1}}, "generator": {"num_cpus": 1}})
    assert specs["generator"].count == 2
    assert specs["generator"].bundle() == {"CPU": 1.0, "GPU": 0.5}
    assert specs["learner"].bundle() == {"GPU": 1.0}
    assert specs["oracle"].bundle() == {"judge": 1.0, "GPU": 1.0}  # per oracle actor
    assert role_specs(tiny_config())["oracle"].bundle() == {}
    with pytest.raises(ValueError, match="unknown role 'critic'"):
        role_specs(cfg, {"critic": {}})


def test_three_node_cluster_places_roles_by_custom_resources(tmp_path):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"oracle_node": 1}})
    learner_node = cluster.add_node(num_cpus=1, resources={"learner_node": 1})
    gen_node = cluster.add_node(num_cpus=1, resources={"generator_node": 2})
    env = {k: os.environ[k] for k in ("JAX_COMPILATION_CACHE_DIR", "DUEL_CACHE")}
    ray.init(address=cluster.address, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": ROOT, **env}})
    try:
        seen = {}

        def hook(loop, step):
            seen["learner"] = ray.get(loop.learner.ping.remote())["node_id"]
            seen["generators"] = [i["node_id"] for i in ray.get([g.info.remote() for g in loop.generators])]
            seen["oracles"] = ray.get([o.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())
                                       for o in loop.oracles])

        placement = {"learner": {"resources": {"learner_node": 1}},
                     "generator": {"resources": {"generator_node": 1}},
                     "oracle": {"resources": {"oracle_node": 1}}}
        model = tiny_model_dir(tmp_path / "policy")
        res = run_experiment(tiny_config(model, steps=1), tmp_path / "run", placement=placement,
                             hooks={"after_step": hook})
        assert res["step"] == 1 and res["queries"] == 4
        assert seen["learner"] == learner_node.node_id
        assert seen["generators"] == [gen_node.node_id] * 2
        assert seen["oracles"] == [cluster.head_node.node_id]
        assert len(read_metrics(tmp_path / "run", "train")) == 1
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_oracle_gpus_reach_the_oracle_actors_ray_options():
    """resources.oracle_gpus: each oracle actor's bundle and Ray options ask for that many GPUs,
    and an OracleActor started with them is given its own (Ray's logical GPUs on a CPU machine)."""
    from actors.oracle import OracleActor, OracleSpec
    from learner.placement import Layout

    cfg = tiny_config(**{"resources.oracle_actors": 2, "resources.oracle_gpus": 1.0})
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": ROOT}})
    layout = None
    try:
        layout = Layout(role_specs(cfg))
        opts = [layout.options("oracle", i) for i in range(2)]
        assert [o["num_gpus"] for o in opts] == [1.0, 1.0]
        assert [o["scheduling_strategy"].placement_group_bundle_index for o in opts] == [
            layout.index[("oracle", 0)], layout.index[("oracle", 1)]]
        assert layout.pg.bundle_specs[layout.index[("oracle", 1)]] == {"GPU": 1.0}
        actors = [OracleActor.options(**o).remote(OracleSpec("rule", {"reward": "operator:eq"})) for o in opts]
        gpus = ray.get([a.__ray_call__.remote(lambda self: ray.get_gpu_ids()) for a in actors])
        assert sorted(len(g) for g in gpus) == [1, 1] and gpus[0] != gpus[1]
    finally:
        if layout is not None:
            layout.close()
        ray.shutdown()
