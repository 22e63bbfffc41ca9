"""The shipped demo model, its tokenizer and the ``pretrain-demo`` command that rebuilds it."""

from __future__ import annotations

import pytest
import torch

from dynamo_rl.cli import main
from dynamo_rl.demo.model import (
    DEMO_ASSETS,
    load_demo_card,
    load_demo_model,
    load_model,
    sample_completions,
    sampled_accuracy,
)
from dynamo_rl.demo.task import FAMILIES, extract_boxed, make_problems
from dynamo_rl.demo.tokenizer import build_tokenizer, load_tokenizer


def test_tokenizer_round_trips_and_reloads(tmp_path):
    tokenizer = build_tokenizer()
    texts = [p.prompt + p.meta["completion"] for f in FAMILIES for p in make_problems("test", 20, family=f)]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(text)  # one token per character
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text
    tokenizer.save_pretrained(tmp_path)
    reloaded = load_tokenizer(tmp_path)
    assert reloaded.padding_side == "left"
    assert reloaded(texts)["input_ids"] == tokenizer(texts)["input_ids"]
    batch = reloaded(["Q: 1+1=? A:", "Q: 123+456=? A:"], padding=True)
    assert batch["input_ids"][0][0] == reloaded.pad_token_id and batch["attention_mask"][0][0] == 0
    ids = reloaded("7", add_special_tokens=False)["input_ids"] + [reloaded.eos_token_id]
    assert reloaded.decode(ids, skip_special_tokens=True) == "7"


def test_shipped_model_is_small_and_loads():
    total = sum(path.stat().st_size for path in DEMO_ASSETS.iterdir())
    assert total < 3_000_000, f"demo assets take {total} bytes"
    model, tokenizer = load_demo_model()
    assert model.config.vocab_size == len(tokenizer)
    assert not model.training
    card = load_demo_card()
    assert set(card["accuracy_t1"]) == {"L1", "L2", "L3", "L4", "L5"}


def test_shipped_model_generates_boxed_answers_and_solves_some_middle_problems():
    torch.set_num_threads(1)
    model, tokenizer = load_demo_model()
    easy = make_problems("test", 20, seed=0, levels=[1])
    greedy = sample_completions(model, tokenizer, [p.prompt for p in easy], temperature=0.0)
    assert all(extract_boxed(text) is not None for text in greedy)
    assert sum(extract_boxed(t) == p.answer for t, p in zip(greedy, easy)) >= 15
    middle = make_problems("test", 64, seed=0, levels=[3])
    accuracy = sampled_accuracy(model, tokenizer, middle, samples_per_level=64, temperature=1.0, seed=0)["L3"]
    assert 0.0 < accuracy < 1.0
    # the card's numbers are measurements: a fresh, smaller sample lands near them
    assert abs(accuracy - load_demo_card()["accuracy_t1"]["L3"]) < 0.2


@pytest.mark.parametrize("family", FAMILIES)
def test_pretrain_demo_runs_end_to_end(tmp_path, family):
    output = tmp_path / "tiny"
    code = main(["pretrain-demo", "--steps", "5", "--output", str(output), "--eval-samples", "4",
                 "--batch-size", "8", "--family", family])
    assert code == 0
    card = load_demo_card(output)
    assert card["family"] == family and card["train"]["steps"] == 5 and set(card["accuracy_t1"]) == {f"L{k}" for k in range(1, 6)}
    assert all(0.0 <= value <= 1.0 for value in card["accuracy_t1"].values())
    model, tokenizer = load_model(output)
    assert len(sample_completions(model, tokenizer, ["Q: 1+2=? A:"], temperature=1.0)) == 1


def test_pretrain_demo_is_deterministic_by_seed(tmp_path):
    weights = []
    for name in ("first", "second"):
        output = tmp_path / name
        assert main(["pretrain-demo", "--steps", "3", "--output", str(output), "--eval-samples", "1",
                     "--batch-size", "8", "--seed", "7"]) == 0
        weights.append(load_model(output)[0].state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
