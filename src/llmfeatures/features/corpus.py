"""Tokenised documents with per-token ground-truth labels: the input of the feature engine.

A :class:`TokenCorpus` holds every document's token ids (without ``<|bos|>``; the engine adds it)
in one flat array with document offsets, so a token has one global index
``gid = offsets[doc] + pos``.  Labels come in two kinds:

- *document* labels (e.g. ``domain``), one code per document;
- *token* labels (e.g. ``pos``, ``entity_type``, ``word``), one code per token.

Codes index the label's vocabulary in :attr:`TokenCorpus.label_names`; ``-1`` means the token
has no label of that kind (for the ``word`` kind: it is not part of a lexicon word).

:func:`tokenize_documents` builds a corpus from texts with any tokenizer; :func:`organism_corpus`
adds the organism's ground truth (document domain; part of speech, entity type and word of every
token, looked up in the world's lexicon).  A real model's corpus simply has fewer labels.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

DOC_KINDS_ORGANISM = ("domain", "group")
TOKEN_KINDS_ORGANISM = ("pos", "entity_type", "word")
OTHER = "other"  # the class of tokens outside the lexicon (pos / entity_type)

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


@dataclass
class TokenCorpus:
    """Token ids of many documents in one flat array, with ground-truth labels.

    Attributes
    ----------
    tokens:
        ``int64 [n_tokens]``: all documents' token ids, concatenated (no special tokens).
    offsets:
        ``int64 [n_docs + 1]``: document ``d`` is ``tokens[offsets[d]:offsets[d + 1]]``.
    doc_labels:
        ``{kind: int64 [n_docs]}`` label codes per document (``-1``: none).
    token_labels:
        ``{kind: int64 [n_tokens]}`` label codes per token (``-1``: none).
    label_names:
        ``{kind: [name, ...]}``, the vocabulary of every label kind.
    token_strings:
        the tokenizer's string for every token id (for contexts and dashboards).
    """

    tokens: np.ndarray
    offsets: np.ndarray
    doc_labels: dict[str, np.ndarray] = field(default_factory=dict)
    token_labels: dict[str, np.ndarray] = field(default_factory=dict)
    label_names: dict[str, list[str]] = field(default_factory=dict)
    token_strings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tokens = np.asarray(self.tokens, dtype=np.int64)
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        if self.offsets.ndim != 1 or len(self.offsets) < 2 or self.offsets[0] != 0:
            raise ValueError("offsets must be [n_docs + 1] starting at 0; the corpus is empty "
                             "or malformed (pass at least one document).")
        if self.offsets[-1] != len(self.tokens) or np.any(np.diff(self.offsets) < 0):
            raise ValueError("offsets must be non-decreasing and end at len(tokens).")
        for kind, codes in self.doc_labels.items():
            self._check_codes(kind, codes, self.n_docs, "document")
        for kind, codes in self.token_labels.items():
            self._check_codes(kind, codes, self.n_tokens, "token")

    def _check_codes(self, kind: str, codes: np.ndarray, n: int, what: str) -> None:
        if kind not in self.label_names:
            raise ValueError(f"label kind {kind!r} has no names in label_names.")
        if len(codes) != n:
            raise ValueError(f"{what} labels {kind!r} have {len(codes)} entries; expected {n}.")
        if len(codes) and (codes.max(initial=-1) >= len(self.label_names[kind]) or codes.min() < -1):
            raise ValueError(f"{what} labels {kind!r} hold codes outside -1..{len(self.label_names[kind]) - 1}.")

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def label_kinds(self) -> list[str]:
        """Every label kind: document kinds first, then token kinds."""
        return [*self.doc_labels, *self.token_labels]

    def doc(self, d: int) -> np.ndarray:
        """Token ids of document ``d``."""
        return self.tokens[self.offsets[d] : self.offsets[d + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def locate(self, gid: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """Global token index -> ``(doc, position in doc)``."""
        gid = np.asarray(gid, dtype=np.int64)
        doc = np.searchsorted(self.offsets, gid, side="right") - 1
        return doc, gid - self.offsets[doc]

    def token_label_codes(self, kind: str) -> np.ndarray:
        """``int64 [n_tokens]`` codes of ``kind`` for every token (document kinds broadcast)."""
        if kind in self.token_labels:
            return self.token_labels[kind]
        if kind in self.doc_labels:
            return np.repeat(self.doc_labels[kind], self.lengths())
        raise KeyError(f"no label kind {kind!r}; this corpus has {self.label_kinds}.")

    def context(self, gid: int, before: int = 8, after: int = 4) -> tuple[list[str], int]:
        """Token strings around ``gid`` within its document, and the index of ``gid`` in them."""
        doc, pos = self.locate(gid)
        doc, pos = int(doc), int(pos)
        lo = max(0, pos - before)
        hi = min(int(self.offsets[doc + 1] - self.offsets[doc]), pos + after + 1)
        ids = self.doc(doc)[lo:hi]
        return [self.token_strings[i] for i in ids], pos - lo

    def fingerprint(self) -> str:
        """A short hash of the token ids, offsets and labels (part of cache keys)."""
        h = hashlib.sha256()
        h.update(self.tokens.tobytes())
        h.update(self.offsets.tobytes())
        for kind in sorted(self.doc_labels):
            h.update(kind.encode() + self.doc_labels[kind].tobytes())
        for kind in sorted(self.token_labels):
            h.update(kind.encode() + self.token_labels[kind].tobytes())
        return h.hexdigest()[:16]

    def subset(self, docs: Sequence[int] | np.ndarray) -> TokenCorpus:
        """A corpus of the given documents (in that order), labels included."""
        docs = np.asarray(docs, dtype=np.int64)
        pieces = [self.doc(d) for d in docs]
        lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        idx = np.concatenate([np.arange(self.offsets[d], self.offsets[d + 1]) for d in docs]) \
            if len(docs) else np.zeros(0, dtype=np.int64)
        return TokenCorpus(
            tokens=self.tokens[idx], offsets=offsets,
            doc_labels={k: v[docs] for k, v in self.doc_labels.items()},
            token_labels={k: v[idx] for k, v in self.token_labels.items()},
            label_names=dict(self.label_names), token_strings=self.token_strings,
        )


def _token_strings(tokenizer) -> list[str]:
    n = len(tokenizer)
    return [tokenizer.decode([i]) for i in range(n)]


def tokenize_documents(
    tokenizer,
    texts: Sequence[str],
    doc_labels: Mapping[str, Sequence[str | None]] | None = None,
    word_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> TokenCorpus:
    """Tokenise ``texts`` (no special tokens) into a :class:`TokenCorpus`.

    Parameters
    ----------
    tokenizer:
        a ``transformers`` fast tokenizer (the model's ``model.tokenizer``).
    texts:
        the documents.
    doc_labels:
        ``{kind: [label per document]}`` (``None``: unlabelled), e.g. ``{"domain": [...]}``.
    word_labels:
        ``{kind: {word: label}}``: every token gets the label of the word its last character
        belongs to (words are runs of letters); tokens outside any listed word get ``"other"``,
        except for the kind ``"word"`` itself, whose labels are the words and whose unlisted
        tokens get ``-1``.
    """
    texts = list(texts)
    if not texts or not any(t for t in texts):
        raise ValueError("tokenize_documents got no text: pass a non-empty list of documents.")
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    ids = [np.asarray(x, dtype=np.int64) for x in enc["input_ids"]]
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    if lengths.sum() == 0:
        raise ValueError("the documents tokenise to nothing; pass texts with content.")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    label_names: dict[str, list[str]] = {}
    dl: dict[str, np.ndarray] = {}
    for kind, values in (doc_labels or {}).items():
        values = list(values)
        if len(values) != len(texts):
            raise ValueError(f"doc_labels[{kind!r}] has {len(values)} entries for {len(texts)} texts.")
        names = sorted({v for v in values if v is not None})
        index = {n: i for i, n in enumerate(names)}
        label_names[kind] = names
        dl[kind] = np.array([index[v] if v is not None else -1 for v in values], dtype=np.int64)
    tl: dict[str, np.ndarray] = {}
    if word_labels:
        # the word (if any) that each token's last character belongs to
        words_per_token: list[str | None] = []
        for text, offs in zip(texts, enc["offset_mapping"]):
            spans = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(text)]
            starts = np.array([s for s, _, _ in spans], dtype=np.int64)
            for _, end in offs:
                last = end - 1
                j = int(np.searchsorted(starts, last, side="right")) - 1
                if j >= 0 and spans[j][0] <= last < spans[j][1]:
                    words_per_token.append(spans[j][2])
                else:
                    words_per_token.append(None)
        for kind, mapping in word_labels.items():
            if kind == "word":
                names = sorted(set(mapping))
                index = {n: i for i, n in enumerate(names)}
                codes = [index.get(w, -1) if w is not None else -1 for w in words_per_token]
            else:
                names = sorted({*mapping.values(), OTHER})
                index = {n: i for i, n in enumerate(names)}
                codes = [index[mapping.get(w, OTHER)] if w is not None else index[OTHER]
                         for w in words_per_token]
            label_names[kind] = names
            tl[kind] = np.array(codes, dtype=np.int64)
    return TokenCorpus(
        tokens=np.concatenate(ids), offsets=offsets, doc_labels=dl, token_labels=tl,
        label_names=label_names, token_strings=_token_strings(tokenizer),
    )


def organism_corpus(world, tokenizer, splits: Sequence[str] = ("val",),
                    max_docs: int | None = None) -> TokenCorpus:
    """The organism's documents of ``splits`` with their ground truth, tokenised.

    Labels: ``domain`` and ``group`` (``"formal"``/``"prose"``) per document; ``pos``, ``entity_type`` and ``word`` per token from the
    world's lexicon (tokens of words outside it are ``"other"`` / unlabelled).
    """
    import pandas as pd

    frames = [world.documents(s) for s in splits]
    docs = pd.concat(frames, ignore_index=True)
    if max_docs is not None:
        if max_docs < 1:
            raise ValueError(f"max_docs must be >= 1, got {max_docs}.")
        docs = docs.iloc[:max_docs]
    lex = world.lexicon
    words = dict(zip(lex["word"], lex["word"]))
    return tokenize_documents(
        tokenizer, docs["text"].tolist(), doc_labels={"domain": docs["domain"].tolist(),
                                                 "group": docs["group"].tolist()},
        word_labels={"pos": dict(zip(lex["word"], lex["pos"])),
                     "entity_type": dict(zip(lex["word"], lex["entity_type"])),
                     "word": words},
    )
