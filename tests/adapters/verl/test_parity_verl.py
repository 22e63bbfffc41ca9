"""verl ↔ built-in trainer parity on the shared scenario (tests/parity/scenario.py; verl 0.9.x environment only).

For each case the verl plugin gets the scenario the way verl's engines hand it over (jagged micro-batch, packed
prompt + response model outputs, the settings resolved from a ``dynamo:`` section) and must reproduce, in fp32 to
1e-6: the allocation and its metrics (``RolloutAllocator``), the GRPO advantages (``dynamo_grpo``), the modulated
per-token advantages, the loss and its gradient (``compute_objective``). ``theory`` (``entropy_change_mode="exact"``)
is refused with a message saying why.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

pytest.importorskip("verl.trainer.ppo.core_algos")
import torch  # noqa: E402
from tensordict import TensorDict  # noqa: E402
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage  # noqa: E402
from verl.utils import tensordict_utils as tu  # noqa: E402
from verl.workers.config import ActorConfig, PolicyLossConfig  # noqa: E402
from verl_helpers import jagged  # noqa: E402

from dynamo_rl.adapters.verl.allocation import VerlRolloutAllocator  # noqa: E402
from dynamo_rl.adapters.verl.loss import (  # noqa: E402
    SUM_SQ_PROBS_MEAN,
    dynamo_grpo_advantage,
    dynamo_ppo_loss,
    modulated_advantages,
)
from dynamo_rl.adapters.verl.settings import (  # noqa: E402
    ACTOR,
    VerlDynamoSettings,
    resolve_settings,
    verl_loss_settings,
)

# verl's wheel ships a top-level ``tests`` package that shadows ours, so the scenario is imported as ``parity``
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from parity.scenario import (  # noqa: E402
    CASES,
    HISTORY,
    MAX_LENGTH,
    Scenario,
    build_scenario,
    builtin_grad,
    builtin_loss,
)

TOL = 1e-6
RUNNABLE = [case for case in CASES if case[1] != "theory"]
ROLLOUT_N = 4  # verl's actor_rollout_ref.rollout.n = the scenario's mean rollouts


def _ids(case) -> str:
    return "-".join(case)


def verl_settings(scenario: Scenario) -> VerlDynamoSettings:
    """The plugin's settings for the scenario's method, from a ``dynamo:`` section as a user writes it: no bounds
    (derived from rollout.n = 4: [2, 6]); the paper preset with verl's only normalisation scope, ``micro``."""
    section = {"method": scenario.method_name, "preset": scenario.preset}
    if scenario.preset == "paper":
        section["modulation"] = {"norm_scope": "micro"}
    return resolve_settings(section, rollout_n=ROLLOUT_N)


def verl_actor_config(settings: VerlDynamoSettings) -> ActorConfig:
    """verl's ActorConfig with exactly the loss keys the plugin requires for the method (L_max = T)."""
    keys = verl_loss_settings(settings.method, {"data": {"max_response_length": MAX_LENGTH}})
    actor = {path[len(ACTOR) + 1:]: value for path, value in keys.items() if path.startswith(ACTOR + ".")}
    policy = {k.split(".", 1)[1]: actor.pop(k) for k in list(actor) if k.startswith("policy_loss.")}
    return ActorConfig(strategy="fsdp", rollout_n=ROLLOUT_N, ppo_micro_batch_size_per_gpu=1,
                       policy_loss=PolicyLossConfig(**policy), **actor)


class VerlBatch:
    """The scenario as one verl micro-batch: jagged data fields, packed (prompt + response) model outputs."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        lengths = scenario.lengths
        prompt_lens = [1 + r % 3 for r in range(len(lengths))]
        g = torch.Generator().manual_seed(7)
        rows = {
            "response_mask": [torch.ones(n, dtype=torch.int64) for n in lengths],
            "old_log_probs": [scenario.old_logprobs[r, :n] for r, n in enumerate(lengths)],
            "advantages": [scenario.advantages[r].expand(n).clone() for r, n in enumerate(lengths)],
        }
        fields = {"prompts": jagged([torch.randint(0, 50, (p,), generator=g) for p in prompt_lens]),
                  "responses": jagged([torch.randint(0, 50, (n,), generator=g) for n in lengths])}
        fields.update({key: jagged(parts) for key, parts in rows.items()})
        self.data = TensorDict(fields, batch_size=[len(lengths)])
        tu.assign_non_tensor(self.data, dp_size=1, batch_num_tokens=int(scenario.mask.sum()),
                             global_batch_size=len(lengths))
        seq = torch.tensor([p + n for p, n in zip(prompt_lens, lengths)])
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.int64), seq.cumsum(0)])
        # packed position of response token t of row r: the usual next-token shift
        self.rows, self.cols, self.packed = [], [], []
        for r, (p, n) in enumerate(zip(prompt_lens, lengths)):
            for t in range(n):
                self.rows.append(r)
                self.cols.append(t)
                self.packed.append(int(self.offsets[r]) + p - 1 + t)
        self.log_prob_values = self._pack(scenario.logprobs).requires_grad_()

    def _pack(self, values: torch.Tensor) -> torch.Tensor:
        out = torch.full((int(self.offsets[-1]),), -7.0)  # prompt positions: junk the loss must ignore
        out[self.packed] = values[self.rows, self.cols]
        return out

    def model_output(self) -> dict:
        s = self.scenario
        return {name: torch.nested.nested_tensor_from_jagged(values, self.offsets) for name, values in (
            ("log_probs", self.log_prob_values), ("entropy", self._pack(s.entropy)),
            ("sum_pi_squared", self._pack(s.sum_sq_probs)))}

    def unpack_grad(self) -> torch.Tensor:
        out = torch.zeros(self.scenario.mask.shape)
        out[self.rows, self.cols] = self.log_prob_values.grad[self.packed]
        return out


def _metric_values(metrics: dict) -> dict:
    return {k: float(v.aggregate() if hasattr(v, "aggregate") else v) for k, v in metrics.items()}


def run_verl_loss(scenario: Scenario, settings: VerlDynamoSettings):
    """(per-token advantages fed to ppo_loss (B, T), loss, d loss/d logprobs (B, T), metrics) on verl's side."""
    config = verl_actor_config(settings)
    modulation = settings.modulation_kwargs() if settings.method.modulation.enabled else None  # as the trainer
    batch = VerlBatch(scenario)
    loss, metrics = dynamo_ppo_loss(config, batch.model_output(), batch.data, modulation=modulation)
    loss.backward()
    if modulation is None:
        advantages = batch.data.select("advantages").to_padded_tensor()["advantages"]
    else:
        advantages = modulated_advantages(config, batch.model_output(), batch.data, modulation).advantages
    advantages = torch.where(scenario.mask, advantages, torch.zeros(()))
    return advantages, loss.detach(), batch.unpack_grad(), _metric_values(metrics)


@pytest.mark.parametrize("case", RUNNABLE, ids=_ids)
def test_verl_settings_resolve_to_the_scenario_method(case):
    scenario = build_scenario(*case)
    settings = verl_settings(scenario)
    expected = scenario.method
    if scenario.preset == "paper":  # verl normalises per micro-batch; the scenario's batch is one micro-batch
        expected = dataclasses.replace(expected, modulation=dataclasses.replace(expected.modulation,
                                                                                norm_scope="micro"))
    assert settings.method == expected


@pytest.mark.parametrize("case", RUNNABLE, ids=_ids)
def test_allocation_matches_the_rollout_allocator(case):
    """History fed through verl's trajectory keys → the same counts and alloc/* metrics as RolloutAllocator."""
    scenario = build_scenario(*case)
    allocator = VerlRolloutAllocator(verl_settings(scenario).method.allocation)
    prompts = list(scenario.prompt_ids)
    first = allocator.allocate([f"a{i}" for i in range(len(prompts))], prompts)
    assert first.tolist() == [ROLLOUT_N] * len(prompts)  # empty history: uniform
    keys, scores = [], []
    for i, pid in enumerate(prompts):
        correct, total = HISTORY[pid]
        for session in range(total):
            keys.append(f"a{i}_{session}_0")
            scores.append(1.0 if session < correct else 0.0)
    allocator.update_from_trajectories(keys, scores)
    counts = allocator.allocate([f"b{i}" for i in range(len(prompts))], prompts)
    assert counts.tolist() == scenario.num_rollouts.tolist()
    expected = scenario.allocator.metrics(scenario.allocation, scalars_only=True)
    assert allocator.last_metrics == pytest.approx({k: v for k, v in expected.items() if v is not None}, abs=1e-12)
    if scenario.method_name == "dynamo":
        assert len(set(counts.tolist())) > 1 and allocator.last_metrics["alloc/variance_reduction_ratio"] < 1


@pytest.mark.parametrize("case", RUNNABLE, ids=_ids)
def test_grpo_advantages_match(case):
    scenario = build_scenario(*case)
    settings = verl_settings(scenario)
    mask = scenario.mask.float()
    rewards = torch.zeros(mask.shape)
    rewards[torch.arange(len(scenario.lengths)), torch.tensor(scenario.lengths) - 1] = scenario.rewards
    uids = [f"uid-{g}" for g in scenario.group_ids.tolist()]
    norm = verl_loss_settings(settings.method)["algorithm.norm_adv_by_std_in_grpo"]
    ours, _ = dynamo_grpo_advantage(rewards, mask, uids, norm_adv_by_std_in_grpo=norm)
    verl, _ = compute_grpo_outcome_advantage(rewards, mask, uids, norm_adv_by_std_in_grpo=norm)
    assert torch.allclose(ours, scenario.token_advantages, atol=TOL, rtol=0)
    assert torch.allclose(verl, scenario.token_advantages, atol=TOL, rtol=0)  # no singleton groups here


@pytest.mark.parametrize("case", RUNNABLE, ids=_ids)
def test_modulated_advantages_loss_and_gradient_match_the_builtin_trainer(case):
    scenario = build_scenario(*case)
    ref_adv, ref_loss, ref_metrics = builtin_loss(scenario)
    ref_grad = builtin_grad(scenario)
    adv, loss, grad, metrics = run_verl_loss(scenario, verl_settings(scenario))
    assert (adv - ref_adv).abs().max() <= TOL
    assert abs(float(loss) - float(ref_loss)) <= TOL
    assert (grad - ref_grad).abs().max() <= TOL
    assert metrics["actor/pg_loss"] == pytest.approx(ref_metrics["pg_loss"], abs=TOL)
    for key, value in ref_metrics.items():
        if key.startswith("mod/"):
            assert metrics[key] == pytest.approx(value, abs=TOL), key
    if scenario.method.modulation.enabled:
        assert metrics[SUM_SQ_PROBS_MEAN] == pytest.approx(float(scenario.sum_sq_probs[scenario.mask].mean()), abs=TOL)
        assert not torch.allclose(adv, scenario.token_advantages)  # the modulation really acts here
    ratio = (scenario.logprobs - scenario.old_logprobs).exp()[scenario.mask]
    eps_low, eps_high = scenario.method.loss.eps_low, scenario.method.loss.eps_high
    assert ((ratio > 1 + eps_high) | (ratio < 1 - eps_low)).any()  # some tokens are clipped


def test_the_ums_guard_matters_in_the_lone_token_variant_and_verl_follows_it():
    """Exactly one token with Ξ > 0: official (ums_min_tokens 0) damps it, paper (2) leaves g ≡ 1; verl matches."""
    official = run_verl_loss(build_scenario("dynamo", "official", "lone_token"),
                             verl_settings(build_scenario("dynamo", "official", "lone_token")))[3]
    paper = run_verl_loss(build_scenario("dynamo", "paper", "lone_token"),
                          verl_settings(build_scenario("dynamo", "paper", "lone_token")))[3]
    assert official["mod/stabilization_min"] < 0.8
    assert paper["mod/stabilization_min"] == 1.0 and paper["mod/instability_max"] > 0


def test_dr_grpo_uses_the_same_l_max_as_the_builtin_normalizer():
    """seq-mean-token-sum-norm: Σℓ / (L_max · #sequences) on both sides, L_max = T = verl's loss_scale_factor."""
    scenario = build_scenario("dr_grpo", "official")
    config = verl_actor_config(verl_settings(scenario))
    assert config.loss_agg_mode == "seq-mean-token-sum-norm" and config.loss_scale_factor == MAX_LENGTH
    assert scenario.method.loss.loss_agg_mode == "seq-mean-token-sum-norm"


def test_theory_preset_is_refused_with_the_reason():
    scenario = build_scenario("dynamo", "theory")
    assert scenario.method.modulation.entropy_change_mode == "exact"
    builtin_loss(scenario)  # the built-in trainer computes it (Σπ²Λ from token_stats)
    with pytest.raises(ValueError, match=r"entropy_change_mode='exact' needs Σπ²\(log π \+ H\)"):
        resolve_settings({"method": "dynamo", "preset": "theory", "modulation": {"norm_scope": "micro"}},
                         rollout_n=ROLLOUT_N)
    settings = verl_settings(build_scenario("dynamo", "official"))
    exact = {**settings.modulation_kwargs(), "entropy_change_mode": "exact"}
    batch = VerlBatch(scenario)
    with pytest.raises(ValueError, match="verl's engines do not compute"):
        dynamo_ppo_loss(verl_actor_config(settings), batch.model_output(), batch.data, modulation=exact)
