"""DynamoPPOTrainer on CPU: name resolution, our Hydra configs, allocation of a real dataloader batch, checkpoints.

Needs verl's V1 trainer package (TransferQueue + verl-core extras such as cachetools, uvicorn). Nothing starts Ray:
the trainer is constructed (``__init__`` only) and its overridden steps are driven directly.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path
from unittest import mock

import pytest

pytest.importorskip("verl.trainer.ppo.core_algos")
pytest.importorskip("transfer_queue")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from tensordict import NonTensorStack, TensorDict  # noqa: E402
from transfer_queue import KVBatchMeta  # noqa: E402
from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls  # noqa: E402
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer  # noqa: E402
from verl.utils import tensordict_utils as tu  # noqa: E402
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn  # noqa: E402

from dynamo_rl.adapters.verl.prepare_data import verl_rows, write_parquet  # noqa: E402
from dynamo_rl.adapters.verl.settings import check_loss, resolve_settings, verl_overrides  # noqa: E402
from dynamo_rl.adapters.verl.trainer import DynamoPPOTrainer  # noqa: E402
from dynamo_rl.core.history import SuccessHistory  # noqa: E402
from dynamo_rl.data.types import Problem  # noqa: E402
from dynamo_rl.run.allocator import STATE_FILE  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
CONFIG_DIR = REPO / "configs" / "verl"
MODEL_CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("dynamo_*.yaml") if p.stem != "dynamo_table3")
VERL_CONFIG_DIR = str(Path(__import__("verl.trainer.main_ppo", fromlist=["x"]).__file__).parent / "config")


def _compose(name: str, overrides: list[str] | None = None):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(name, overrides=overrides or [])


def _leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict) and value and key != "override_config":  # override_config is a free-form dict
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_trainer_resolves_by_name_and_subclasses_the_sync_trainer():
    assert get_trainer_cls("dynamo_sync") is DynamoPPOTrainer
    assert issubclass(DynamoPPOTrainer, PPOTrainerSync)


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_paper_configs_compose_and_use_only_keys_verl_knows(name):
    with initialize_config_dir(config_dir=VERL_CONFIG_DIR, version_base=None):
        base = OmegaConf.to_container(compose("ppo_trainer"))
    for file in ("dynamo_table3.yaml", f"{name}.yaml"):
        ours = yaml.safe_load((CONFIG_DIR / file).read_text())
        for key in ("defaults", "hydra", "dynamo"):
            ours.pop(key, None)
        for key in _leaves(ours):
            node = base
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{file}: {key} is not a verl 0.9 config key"
                node = node[part]
    cfg = _compose(name)
    assert cfg.trainer.v1.trainer_mode == "dynamo_sync"
    assert cfg.data.train_batch_size == 512 and cfg.actor_rollout_ref.rollout.n == 16
    assert cfg.actor_rollout_ref.actor.ppo_mini_batch_size == 32
    assert cfg.data.max_response_length == 8192 and cfg.actor_rollout_ref.rollout.tensor_model_parallel_size == 2
    assert (cfg.dynamo.allocation.n_min, cfg.dynamo.allocation.n_max) == (8, 24)
    assert cfg.actor_rollout_ref.actor.ppo_max_token_len_per_gpu >= 2048 + 8192
    settings = resolve_settings(cfg.dynamo, rollout_n=int(cfg.actor_rollout_ref.rollout.n))
    check_loss(settings.method, cfg)  # the shipped config runs the official method's loss


@pytest.mark.parametrize("method", ["grpo", "dr_grpo", "clip_cov", "kl_cov", "entropy_loss"])
def test_the_printed_overrides_make_verls_loss_the_methods(method):
    """What `python -m dynamo_rl.adapters.verl.settings METHOD` prints (the launch script passes it) composes with our
    config and passes the trainer's loss check; without it the check refuses, naming the keys."""
    name = "dynamo_qwen2.5_math_1.5b"
    settings = resolve_settings({"method": method}, rollout_n=16)
    with pytest.raises(ValueError, match="do not match"):
        check_loss(settings.method, _compose(name, [f"dynamo.method={method}"]))
    cfg = _compose(name, [f"dynamo.method={method}", *verl_overrides(method)])
    check_loss(settings.method, cfg)
    assert resolve_settings(cfg.dynamo, rollout_n=16).method == settings.method

@pytest.fixture(scope="module")
def dataset_rows(tmp_path_factory):
    """Six prompts written by prepare-verl's row builder and read back through verl's own RLHFDataset."""
    folder = tmp_path_factory.mktemp("verl_data")
    problems = [Problem(prompt_id=f"toy/{i}", problem=f"What is {i} + {i}?", answer=str(2 * i)) for i in range(6)]
    path = write_parquet(verl_rows(problems, data_source="toy", split="train", template="qwen_math"),
                         folder / "train.parquet")
    dataset = RLHFDataset(data_files=[str(path)], tokenizer=None,
                          config=OmegaConf.create({"filter_overlong_prompts": False, "cache_dir": str(folder)}))
    return [dataset[i] for i in range(len(dataset))]


@pytest.fixture()
def trainer(tmp_path, dataset_rows):
    cfg = _compose("dynamo_qwen2.5_math_1.5b", [
        "data.train_batch_size=6", "actor_rollout_ref.rollout.n=4", "dynamo.allocation.n_min=2",
        "dynamo.allocation.n_max=8", f"trainer.default_local_dir={tmp_path}/ckpt"])
    trainer = DynamoPPOTrainer(cfg)
    trainer.train_dataloader = [collate_fn(dataset_rows)]
    trainer.train_dataloader_it = None
    trainer.global_steps = 1
    return trainer


def test_init_resets_the_mode_and_requests_entropy(trainer):
    assert trainer.trainer_mode == "sync" and trainer.config.trainer.v1.trainer_mode == "sync"
    assert type(trainer.replay_buffer) is ReplayBuffer
    assert trainer.config.actor_rollout_ref.actor.calculate_entropy is True
    assert trainer.dynamo.method.allocation.mean_rollouts == 4 and trainer.dynamo_allocator.config.mean_rollouts == 4
    loss_fn = pickle.loads(pickle.dumps(trainer.dynamo_loss_fn()))  # what set_loss_fn ships to the workers
    assert loss_fn.keywords["modulation"]["mu_max"] == 1.2
    assert loss_fn.keywords["config"].clip_ratio_high == 0.28


def test_next_train_batch_sets_rollout_n_and_scores_update_the_history(trainer):
    batch = trainer._next_train_batch()
    counts = tu.get(batch, "__rollout_n__")
    assert counts == [4] * 6  # empty history: uniform
    uids = tu.get(batch, "uid")
    # what AgentLoopWorkerTQ does with the chunk a worker receives: prompt[k] = v[i].data, then pop __rollout_n__
    chunk = batch.chunk(2)[1]
    column = dict(chunk.items())["__rollout_n__"]
    assert isinstance(column, NonTensorStack)
    assert [column[i].data for i in range(len(chunk))] == [4, 4, 4]
    # score: prompt toy/i answered correctly by i of its 4 rollouts (capped), keys as TransferQueue stores them
    keys, scores = [], []
    for i, uid in enumerate(uids):
        for session in range(4):
            keys.append(f"{uid}_{session}_0")
            scores.append(1.0 if session < min(i, 4) else 0.0)
    metrics = trainer.dynamo_allocator.update_from_trajectories(keys, scores, [{}] * len(keys))
    correct, total = trainer.dynamo_allocator.history.counts([f"toy/{i}" for i in range(6)])
    assert correct.tolist() == [0, 1, 2, 3, 4, 4] and total.tolist() == [4.0] * 6
    assert metrics["history/batch_accuracy"] == pytest.approx(14 / 24)
    # next fetch: fresh uids, same stable ids; the budget moves to the uncertain prompts (toy/1..3) and sums to 24
    batch = trainer._next_train_batch()
    assert set(tu.get(batch, "uid")).isdisjoint(uids)
    counts = np.array(tu.get(batch, "__rollout_n__"))
    assert counts.sum() == 24 and counts.min() >= 2 and counts.max() <= 8
    assert counts[1:4].min() > max(counts[0], counts[4], counts[5])
    assert trainer.dynamo_allocator.last_metrics["alloc/variance_reduction_ratio"] < 1  # live Eq 44 ratio
    assert trainer.dynamo_allocator.last_metrics["alloc/num_rollouts_max"] == counts.max()


def test_allocator_state_is_saved_with_verl_checkpoints_and_restored(trainer, tmp_path):
    trainer.dynamo_allocator.allocator.update(["toy/0", "toy/1"], [1, 2], [4, 4])
    trainer.actor_rollout_wg = mock.Mock()
    trainer.train_dataloader = mock.Mock()
    trainer.train_dataloader.state_dict.return_value = {"epoch": 0}
    trainer.global_steps = 7
    trainer._save_checkpoint()  # verl's own save path, with the workers mocked
    folder = tmp_path / "ckpt" / "global_step_7"
    assert (folder / STATE_FILE).is_file()
    assert (tmp_path / "ckpt" / "latest_checkpointed_iteration.txt").read_text() == "7"

    fresh = DynamoPPOTrainer(trainer.config)
    fresh.actor_rollout_wg = mock.Mock()
    fresh.train_dataloader = mock.Mock()
    fresh._load_checkpoint()  # verl's resume_mode=auto finds global_step_7
    assert fresh.global_steps == 7
    assert fresh.dynamo_allocator.state_dict() == trainer.dynamo_allocator.state_dict()
    fresh.train_dataloader.load_state_dict.assert_called_once_with({"epoch": 0})
    # a checkpoint written by an earlier release of the plugin: its dynamo_history.json still loads
    (folder / STATE_FILE).unlink()
    old = SuccessHistory()
    old.update(["toy/3"], [2], [4])
    (folder / "dynamo_history.json").write_text(json.dumps({"version": 1, "global_step": 7,
                                                            "history": old.state_dict()}))
    legacy = DynamoPPOTrainer(trainer.config)
    legacy.actor_rollout_wg = mock.Mock()
    legacy.train_dataloader = mock.Mock()
    legacy._load_checkpoint()
    assert legacy.dynamo_allocator.history.state_dict() == old.state_dict()
    (folder / "dynamo_history.json").unlink()  # a checkpoint without our file: warn, start empty
    empty = DynamoPPOTrainer(trainer.config)
    empty.actor_rollout_wg = mock.Mock()
    empty.train_dataloader = mock.Mock()
    empty._load_checkpoint()
    assert len(empty.dynamo_allocator.history) == 0


def test_compute_advantage_reads_scores_from_transfer_queue_and_skips_padding(trainer):
    batch = trainer._next_train_batch()
    uids = tu.get(batch, "uid")
    keys = [f"{uid}_{s}_0" for uid in uids[:2] for s in range(4)] + ["pad_0_0"]
    tags = [{"status": "success"}] * 8 + [{"is_padding": True}]
    meta = KVBatchMeta(partition_id="train", keys=keys, tags=tags)
    # rm_scores as TransferQueue holds them: jagged per response, the reward on the last token
    lengths = [3, 5, 2, 4, 6, 1, 2, 3, 2]
    rewards = [1, 1, 0, 0, 1, 1, 1, 1, 1]
    rm = [torch.zeros(n) for n in lengths]
    for row, (n, r) in enumerate(zip(lengths, rewards)):
        rm[row][n - 1] = float(r)
    stored = TensorDict({"rm_scores": torch.nested.as_nested_tensor(rm, layout=torch.jagged)}, batch_size=[9])
    metrics: dict = {}
    with mock.patch.object(PPOTrainerSync, "_compute_advantage", return_value=meta) as parent, \
            mock.patch("dynamo_rl.adapters.verl.trainer.tq.kv_batch_get", return_value=stored) as get:
        assert trainer._compute_advantage(meta, metrics) is meta
    parent.assert_called_once()
    assert get.call_args.kwargs["keys"] == keys and get.call_args.kwargs["select_fields"] == ["rm_scores"]
    correct, total = trainer.dynamo_allocator.history.counts(["toy/0", "toy/1", "toy/2"])
    assert correct.tolist() == [2, 4, 0] and total.tolist() == [4, 4, 0]
    assert metrics["history/batch_rollouts"] == 8 and metrics["alloc/num_rollouts_mean"] == 4
    assert not any(key.startswith("dynamo/") for key in metrics)


def test_update_actor_requests_sum_pi_squared_only_when_configured(trainer):
    meta = KVBatchMeta(partition_id="train", keys=["a_0_0"], tags=[{}])
    with mock.patch.object(PPOTrainerSync, "_update_actor", side_effect=lambda b, m: b):
        trainer._update_actor(meta, {})
        assert "calculate_sum_pi_squared" not in meta.extra_info
        trainer.dynamo = dataclasses.replace(trainer.dynamo, sum_pi_squared=True)
        trainer._update_actor(meta, {})
        assert meta.extra_info["calculate_sum_pi_squared"] is True


def test_update_actor_logs_the_core_mod_keys_without_verls_actor_prefix(trainer):
    """verl prefixes every actor metric with actor/; the core's mod/* keys are logged as in the other engines."""
    meta = KVBatchMeta(partition_id="train", keys=["a_0_0"], tags=[{}])

    def parent(batch, metrics):  # what verl's _update_actor does with the loss metrics (rename_dict "actor/")
        metrics.update({"actor/pg_loss": 0.5, "actor/mod/factor_mean": 1.02, "actor/mod/sum_sq_probs_mean": 0.3})
        return batch

    metrics = {"timing": 1.0}
    with mock.patch.object(PPOTrainerSync, "_update_actor", side_effect=parent):
        assert trainer._update_actor(meta, metrics) is meta
    assert metrics == {"timing": 1.0, "actor/pg_loss": 0.5, "mod/factor_mean": 1.02, "mod/sum_sq_probs_mean": 0.3}


def test_init_refuses_a_loss_config_that_does_not_run_the_method(tmp_path):
    cfg = _compose("dynamo_qwen2.5_math_1.5b", ["dynamo.method=grpo", f"trainer.default_local_dir={tmp_path}"])
    with pytest.raises(ValueError, match="(?s)do not match grpo.*clip_ratio_high=0.2"):
        DynamoPPOTrainer(cfg)
    cfg = _compose("dynamo_qwen2.5_math_1.5b", ["dynamo.method=fork_tokens"])
    with pytest.raises(ValueError, match="fork_top_ratio.*Methods verl can run"):
        DynamoPPOTrainer(cfg)
