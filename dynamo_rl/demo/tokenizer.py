"""Character-level tokenizer of the demo model, built with ``tokenizers`` and wrapped for ``transformers``.

Every printable ASCII character is one token (a WordLevel model over single characters, fed by a pre-tokenizer that
isolates each character, and a ``Fuse`` decoder that joins them back without spaces). Special tokens: ``<pad>``
(id 0), ``<s>``, ``</s>`` (end of a completion) and ``<unk>``. No special token is added automatically; padding is on
the left, as batched generation needs.
"""

from __future__ import annotations

import string
from pathlib import Path

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
CHARACTERS: str = "".join(ch for ch in string.printable if ch.isprintable())
"""The 95 printable ASCII characters, space included (tab and newlines are unknown)."""


def build_tokenizer():
    """A fresh ``PreTrainedTokenizerFast`` over :data:`CHARACTERS`; ids are fixed (special tokens first)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + tuple(CHARACTERS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        padding_side="left", model_max_length=128, clean_up_tokenization_spaces=False,
    )


def load_tokenizer(directory: str | Path):
    """The tokenizer saved by ``save_pretrained`` in ``directory`` (left padding enforced)."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(directory))
    tokenizer.padding_side = "left"
    return tokenizer
