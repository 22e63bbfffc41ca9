"""Tiny random models for tests: a character-level tokenizer and a 2-layer Qwen2, built in code (no downloads).

Reusable by every test suite::

    from tests.tiny_models import make_tiny_tokenizer, make_tiny_qwen2, save_tiny_model

    tokenizer = make_tiny_tokenizer()
    model = make_tiny_qwen2(len(tokenizer))           # random weights, seeded
    path = save_tiny_model(tmp_path / "tiny")         # model + tokenizer, loadable with from_pretrained

The tokenizer maps each printable ASCII character to one token (anything else becomes ``<unk>``), has a pad token
``<pad>`` (id 0), an EOS token ``<|endoftext|>`` (id 1) and ChatML markers ``<|im_start|>`` / ``<|im_end|>`` with a
minimal ChatML chat template, so ``apply_chat_template`` works.
"""

from __future__ import annotations

import string
from pathlib import Path

PAD, EOS, UNK, IM_START, IM_END = "<pad>", "<|endoftext|>", "<unk>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (PAD, EOS, UNK, IM_START, IM_END)
CHARACTERS = tuple(c for c in string.printable if c not in "\x0b\x0c")

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def make_tiny_tokenizer():
    """A ``PreTrainedTokenizerFast`` with one token per printable ASCII character plus the special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from dynamo_rl.demo.tokenizer import byte_level

    # A byte-level BPE without merges (the space is "Ġ"), as the demo tokenizer: AutoTokenizer rebuilds exactly this
    # for a saved qwen2 folder, so a saved tiny model loads with the same ids and text.
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    vocab.update({byte_level(ch): len(SPECIAL_TOKENS) + i for i, ch in enumerate(CHARACTERS)})
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, eos_token=EOS, unk_token=UNK,
        additional_special_tokens=[IM_START, IM_END],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def make_tiny_qwen2(vocab_size: int | None = None, hidden: int = 32, layers: int = 2, heads: int = 2,
                    *, seed: int = 0, tie_word_embeddings: bool = True, initializer_range: float = 0.2):
    """A randomly initialised ``Qwen2ForCausalLM`` (float32, eval mode) sized for CPU tests.

    ``vocab_size`` defaults to the tiny tokenizer's length; ``heads`` is also the number of KV heads. The weights
    are drawn with ``initializer_range`` (larger than the usual 0.02) so that outputs depend on the context, which
    makes padding or caching bugs visible in greedy outputs.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if vocab_size is None:
        vocab_size = len(SPECIAL_TOKENS) + len(CHARACTERS)
    config = Qwen2Config(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=2048,
        tie_word_embeddings=tie_word_embeddings, initializer_range=initializer_range, pad_token_id=0, eos_token_id=1, bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    return model.eval()


def save_tiny_model(directory: str | Path, *, hidden: int = 32, layers: int = 2, heads: int = 2,
                    seed: int = 0, initializer_range: float = 0.2) -> Path:
    """Save a tiny Qwen2 and its tokenizer to ``directory`` (``from_pretrained``-loadable); returns the path."""
    directory = Path(directory)
    tokenizer = make_tiny_tokenizer()
    model = make_tiny_qwen2(len(tokenizer), hidden=hidden, layers=layers, heads=heads, seed=seed,
                            initializer_range=initializer_range)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
