"""The organism's tokenizer: a small byte-level BPE trained on the world's corpus.

It behaves like GPT-2's tokenizer (words carry their leading space, e.g. ``" Paris"``), so every
chapter's code reads the same on the organism and on GPT-2.  Three special tokens frame the
documents the model is trained on:

- ``<|bos|>`` starts every document (and every prompt, through TransformerLens' ``prepend_bos``),
- ``<|eos|>`` ends every document,
- ``<|pad|>`` pads batches of prompts of unequal length.

The trained tokenizer is saved as a single ``tokenizer.json`` (the ``tokenizers`` format) and
wrapped as a :class:`transformers.PreTrainedTokenizerFast` for TransformerLens.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

BOS = "<|bos|>"
EOS = "<|eos|>"
PAD = "<|pad|>"
SPECIAL_TOKENS: tuple[str, ...] = (BOS, EOS, PAD)
MIN_VOCAB = 256 + len(SPECIAL_TOKENS)


def train_bpe(texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2) -> Tokenizer:
    """Train a byte-level BPE on ``texts`` and return the raw ``tokenizers.Tokenizer``.

    The 256 byte symbols are always in the vocabulary, so any text can be encoded; the
    special tokens get the ids 0, 1, 2 (bos, eos, pad).
    """
    if vocab_size < MIN_VOCAB:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: a byte-level BPE needs at least {MIN_VOCAB} "
            "ids (256 bytes + 3 special tokens). Use e.g. vocab_size=2048."
        )
    texts = list(texts)
    if not texts or not any(t.strip() for t in texts):
        raise ValueError("train_bpe got no text: pass the corpus' training documents (a list of str).")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tok


def wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    """Wrap a raw tokenizer as a ``transformers`` fast tokenizer with bos/eos/pad set.

    Like Llama's tokenizer it prepends ``<|bos|>`` when encoding (``add_bos_token=True``); this is
    what TransformerLens expects, and ``model.to_tokens(..., prepend_bos=False)`` drops it.  Pass
    ``add_special_tokens=False`` to encode without it.
    """
    fast = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(tok.to_str()),  # a copy: wrapping edits its processor
        name_or_path="llmfeatures-organism",
        add_bos_token=True,
        add_eos_token=False,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=None,
        model_max_length=1_000_000,
        clean_up_tokenization_spaces=False,
    )
    fast.padding_side = "right"
    return fast


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts`` and return it wrapped for ``transformers``."""
    return wrap(train_bpe(texts, vocab_size=vocab_size))


def save_tokenizer(tokenizer: PreTrainedTokenizerFast | Tokenizer, path: str | os.PathLike[str]) -> None:
    """Write the tokenizer to ``path`` as one ``tokenizer.json`` file."""
    raw = tokenizer.backend_tokenizer if isinstance(tokenizer, PreTrainedTokenizerFast) else tokenizer
    raw.save(str(path))


def load_tokenizer(path: str | os.PathLike[str]) -> PreTrainedTokenizerFast:
    """Load a ``tokenizer.json`` written by :func:`save_tokenizer`, wrapped for ``transformers``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No tokenizer file at {path}; build the organism first "
            "(python -m llmfeatures organism build)."
        )
    return wrap(Tokenizer.from_file(str(path)))
