"""Character-level tokenizer of the demo model, built with ``tokenizers`` and wrapped for ``transformers``.

Every printable ASCII character is one token. It is written as a byte-level BPE without merges (the GPT-2 / Qwen2
byte-to-unicode alphabet, so the space is ``Ġ``), which makes it the tokenizer ``AutoTokenizer.from_pretrained``
rebuilds for a ``qwen2`` folder: a saved demo model or checkpoint loads with the stock ``AutoTokenizer`` and gives
the same ids and text (transformers replaces the tokenizer class of any ``qwen2`` folder with its byte-level Qwen2
tokenizer). Special tokens: ``<pad>`` (id 0), ``<s>``, ``</s>`` (end of a completion) and ``<unk>``. No special token
is added automatically; padding is on the left, as batched generation needs.
"""

from __future__ import annotations

import string
from pathlib import Path

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
CHARACTERS: str = "".join(ch for ch in string.printable if ch.isprintable())
"""The 95 printable ASCII characters, space included (tab and newlines are unknown)."""


def byte_level(character: str) -> str:
    """The byte-level BPE symbol of a one-byte character (GPT-2's byte-to-unicode map: ``" "`` → ``"Ġ"``)."""
    code = ord(character)
    if code > 255:
        raise ValueError(f"{character!r} is not a single byte")
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    if code in printable:
        return character
    return chr(256 + [b for b in range(256) if b not in printable].index(code))


def build_tokenizer():
    """A fresh ``PreTrainedTokenizerFast`` over :data:`CHARACTERS`; ids are fixed (special tokens first)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    vocab.update({byte_level(ch): len(SPECIAL_TOKENS) + i for i, ch in enumerate(CHARACTERS)})
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        padding_side="left", model_max_length=128, clean_up_tokenization_spaces=False,
    )


def load_tokenizer(directory: str | Path):
    """The tokenizer saved by ``save_pretrained`` in ``directory`` (left padding enforced)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    tokenizer.padding_side = "left"
    return tokenizer
