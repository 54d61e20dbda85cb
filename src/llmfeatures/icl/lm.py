"""Concept encoding and decoding on language models: the LM half of chapter 6.

Few-shot task families, each with a Null task (copy the input), are the concepts.  A CD says
something about the demonstrations only if the tasks of a family share their inputs and differ
only in the rule the demonstrations show: the world's ``relation`` family does not (countries,
people and words), :func:`shared_input_families` does.  This module

- builds the prompts (:func:`shared_input_prompts`, :func:`build_prompts` from the organism's
  world, or
  :func:`pos_prompts_from_sentences` from any part-of-speech tagged sentences, e.g. the Penn
  Treebank sample on a real LM),
- measures greedy exact-match ICL accuracy (:func:`predict_answers`, :func:`icl_accuracy`),
- takes the residual stream at the last prompt token, the token just before the answer, at
  every layer (:func:`last_token_representations`), with left padding and an attention mask so
  a batched prompt gives the same vector as the prompt alone,
- computes Concept Decodability per layer and number of shots (:func:`cd_by_layer_lm`, reusing
  :func:`llmfeatures.icl.decodability.concept_decodability`), beside the CD of the query alone
  (:func:`cd_with_input_baseline`, :func:`baseline_table`),
- correlates per-task CD with per-task accuracy across a family (:func:`cd_accuracy_r2`), and
- adds mean task representations at the query position to steer the answers
  (:func:`task_vector_intervention`, the paper's intervention experiment).

Everything takes a TransformerLens ``HookedTransformer`` with a tokenizer and a DataFrame with
columns ``prompt, answer, family, task`` (``answer`` starts with the space that follows the
prompt), so the same calls run on the organism and on Llama-3.1-8B or Gemma-2.  Layers follow
the package's one convention (:func:`llmfeatures.loaders.resid_hook`): layer ``L`` is
``blocks.L.hook_resid_post``, the residual stream after block ``L``, so it is the layer that
``load_sae(name, L)`` reads; layer ``EMBED = -1`` is the embeddings (``blocks.0.hook_resid_pre``).
"""

from __future__ import annotations

import os
import random
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from llmfeatures.config import pick, progress_disabled
from llmfeatures.icl.decodability import concept_decodability, model_layers
from llmfeatures.loaders import EMBED, check_layer, resid_hook

REQUIRED_COLUMNS = ("prompt", "answer", "family", "task")


@dataclass(frozen=True)
class LMPreset:
    """Sizes of the LM experiments at one scale."""

    n_prompts: int  # prompts per task (the paper uses N = 100 for CD)
    shots: tuple[int, ...]  # numbers of demonstrations for CD
    n_shots_accuracy: int  # demonstrations for the accuracy / R^2 analysis (paper: 4)
    batch_size: int
    k: int = 10  # neighbours of the leave-one-out k-NN


PRESETS: dict[str, LMPreset] = {
    "ci": LMPreset(n_prompts=20, shots=(1, 4, 10), n_shots_accuracy=4, batch_size=64),
    "book": LMPreset(n_prompts=60, shots=(1, 4, 10), n_shots_accuracy=4, batch_size=64),
    "gpu": LMPreset(n_prompts=100, shots=(1, 4, 10), n_shots_accuracy=4, batch_size=32),
    "paper": LMPreset(n_prompts=100, shots=(1, 4, 10), n_shots_accuracy=4, batch_size=16),
}


def lm_preset(scale: str | None = None) -> LMPreset:
    """The :class:`LMPreset` for ``scale`` (default: the scale in force)."""
    return pick(PRESETS, scale)


# ------------------------------------------------------------------------------------ prompts
def build_prompts(
    world,
    families: Iterable[str] | None = None,
    n_shots: int = 4,
    n_prompts: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Few-shot prompts for every task (Null included) of ``families`` of the organism's world.

    Returns a DataFrame with columns ``prompt, answer, family, task, query, n_shots``,
    ``n_prompts`` rows per task (default: the scale's preset), e.g. prompt
    ``"01011 11001 -> 10010 ; 10100 01111 ->"`` and answer ``" 11011"`` (xor).

    Any other source of prompts works with the rest of this module as long as it gives the
    columns ``prompt, answer, family, task``: hand-written prompts for Llama-3.1-8B or Gemma-2,
    the bitwise family of this function (it reads fine to any LM), or part-of-speech prompts from
    real sentences.  For those, when online, the Penn Treebank sample ships with nltk::

        import nltk
        nltk.download("treebank")                 # about 10 MB, once
        from nltk.corpus import treebank
        sents = [map_ptb_tags(s) for s in treebank.tagged_sents()]
        pos = pos_prompts_from_sentences([s for s in sents if s is not None], n_shots=4,
                                         n_prompts=100, seed=0)

    (:func:`map_ptb_tags` maps the Penn tags to the six coarse tags and drops sentences lacking
    one.)  Nothing is downloaded here.
    """
    families = list(world.fewshot_families) if families is None else list(families)
    unknown = [f for f in families if f not in world.fewshot_families]
    if unknown:
        raise ValueError(
            f"unknown few-shot families {unknown}; valid: {', '.join(world.fewshot_families)}"
        )
    n_prompts = lm_preset().n_prompts if n_prompts is None else n_prompts
    frames = [
        world.fewshot_prompts(family, task, n_shots, n_prompts, seed)
        for family in families
        for task in world.fewshot_families[family]
    ]
    return pd.concat(frames, ignore_index=True)


# Penn Treebank tag -> coarse tag of the paper's POS family (None: not one of the six)
PTB_TO_POS: dict[str, str] = {
    **dict.fromkeys(("NN", "NNS", "NNP", "NNPS"), "noun"),
    **dict.fromkeys(("JJ", "JJR", "JJS"), "adjective"),
    **dict.fromkeys(("VB", "VBD", "VBG", "VBN", "VBP", "VBZ"), "verb"),
    **dict.fromkeys(("RB", "RBR", "RBS"), "adverb"),
    "IN": "preposition",
    **dict.fromkeys(("PRP", "PRP$"), "pronoun"),
}


def map_ptb_tags(tagged: Sequence[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """A Penn-Treebank-tagged sentence with coarse tags (others become ``"other"``); ``None``
    unless it holds all six tags.  Trace tokens (``-NONE-``) are dropped."""
    out = [(w, PTB_TO_POS.get(t, "other")) for w, t in tagged if t != "-NONE-"]
    return out if set(PTB_TO_POS.values()) <= {t for _, t in out} else None


def pos_prompts_from_sentences(
    sentences: Sequence[Sequence[tuple[str, str]]],
    n_shots: int = 4,
    n_prompts: int = 100,
    seed: int = 0,
    tags: Sequence[str] = ("noun", "adjective", "verb", "adverb", "preposition", "pronoun"),
) -> pd.DataFrame:
    """Part-of-speech prompts (family ``"pos"``) from tagged sentences ``[(word, tag), ...]``.

    Task ``tag`` answers with the first word of that tag, task ``"null"`` with the first word.
    Items are ``sentence -> word`` joined by ``" ; "``, as in the organism's documents.  Every
    sentence must hold all ``tags`` (see :func:`map_ptb_tags`).
    """
    from llmfeatures.organism.fewshot import render_prompt

    if len(sentences) < n_shots + 1:
        raise ValueError(f"need at least n_shots + 1 = {n_shots + 1} sentences, got {len(sentences)}")
    for s in sentences:
        missing = set(tags) - {t for _, t in s}
        if missing:
            raise ValueError(
                f"sentence {' '.join(w for w, _ in s)!r} lacks tags {sorted(missing)}; "
                "filter the sentences first (map_ptb_tags returns None for those)"
            )
    rows = []
    for task in (*tags, "null"):
        rng = random.Random(f"llmfeatures-lm-pos-{seed}-{task}-{n_shots}")
        for _ in range(n_prompts):
            chosen = rng.sample(range(len(sentences)), n_shots + 1)
            items = []
            for i in chosen:
                s = sentences[i]
                word = s[0][0] if task == "null" else next(w for w, t in s if t == task)
                items.append((" ".join(w for w, _ in s), word))
            prompt, answer = render_prompt(items)
            rows.append((prompt, answer, "pos", task, items[-1][0], n_shots))
    return pd.DataFrame(rows, columns=["prompt", "answer", "family", "task", "query", "n_shots"])


def _check_df(df: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"prompt table lacks columns {missing}; it needs {list(REQUIRED_COLUMNS)} "
            "(build it with build_prompts or pos_prompts_from_sentences)"
        )
    if len(df) == 0:
        raise ValueError("prompt table is empty")


# ------------------------------------------------------------------------------- tokenising
def _caller_stacklevel() -> int:
    """``stacklevel`` that points a warning at the first frame outside this package and torch
    (the reader's own call), however deep inside the package it was raised."""
    inside = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), f"{os.sep}torch{os.sep}")
    level, frame = 1, sys._getframe(1)
    while frame is not None and (
        frame.f_code.co_filename.startswith(inside[0]) or inside[1] in frame.f_code.co_filename
    ):
        frame, level = frame.f_back, level + 1
    return level


def _encode(model, prompts: Sequence[str], extra: int = 0, truncate: bool = False) -> list[list[int]]:
    """Token ids of each prompt (with BOS where the model wants one).  A prompt longer than
    ``n_ctx - extra`` raises, or with ``truncate`` keeps its first token (BOS) and its tail."""
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer; load it with llmfeatures.load_model")
    limit = model.cfg.n_ctx - extra
    out, cut = [], 0
    for p in prompts:
        ids = model.to_tokens(p, truncate=False)[0].tolist()
        if len(ids) > limit:
            if not truncate:
                raise ValueError(
                    f"a prompt has {len(ids)} tokens but the model takes {model.cfg.n_ctx}"
                    f"{f' (minus {extra} to generate)' if extra else ''}; use fewer shots or "
                    "pass truncate=True to keep the first token and the last ones"
                )
            ids = ids[:1] + ids[len(ids) - limit + 1:]
            cut += 1
        out.append(ids)
    if cut:
        warnings.warn(f"{cut} of {len(out)} prompts were longer than {limit} tokens and lost "
                      "their first demonstrations (truncate=True)", stacklevel=_caller_stacklevel())
    return out


def _left_pad(seqs: Sequence[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded tokens ``[B, L]`` and attention mask ``[B, L]`` (1 on real tokens)."""
    L = max(len(s) for s in seqs)
    tokens = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, L - len(s):] = torch.tensor(s)
        mask[i, L - len(s):] = 1
    return tokens.to(device), mask.to(device)


def _pad_id(model) -> int:
    tok = model.tokenizer
    for t in (tok.pad_token_id, tok.eos_token_id, 0):
        if t is not None:
            return int(t)
    return 0


def _batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (little padding)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _device(model):
    return next(model.parameters()).device


# ------------------------------------------------------------------------------- accuracy
@torch.no_grad()
def predict_answers(
    model, df: pd.DataFrame, batch_size: int | None = None, truncate: bool = False,
    progress: bool = True, steer: tuple[int, torch.Tensor] | None = None,
) -> pd.DataFrame:
    """Greedy continuation of every prompt, as many tokens as its answer has.

    Returns a copy of ``df`` with columns ``prediction`` (decoded text) and ``correct``
    (``prediction.strip() == answer.strip()``, exact match).  Prompts are batched by length with
    left padding and an attention mask.

    ``steer=(layer, vectors)`` adds ``vectors[i]`` (``vectors``: ``[len(df), d_model]``) to the
    residual stream of ``layer`` (``blocks.{layer}.hook_resid_post``; ``-1``: the embeddings) at
    the last token of prompt ``i`` (the query position), on every forward pass of the generation.
    """
    _check_df(df)
    batch_size = batch_size or lm_preset().batch_size
    if steer is not None:
        layer, vectors = steer
        check_layer(layer, model.cfg.n_layers)
        if tuple(vectors.shape) != (len(df), model.cfg.d_model):
            raise ValueError(
                f"steer vectors have shape {tuple(vectors.shape)}; expected "
                f"({len(df)}, {model.cfg.d_model}): one vector per prompt"
            )
    n_ans = [len(model.to_tokens(a, prepend_bos=False)[0]) for a in df.answer]
    seqs = _encode(model, list(df.prompt), extra=max(n_ans) - 1, truncate=truncate)
    dev, pad = _device(model), _pad_id(model)
    preds: list[str] = [""] * len(df)
    for idx in tqdm(_batches([len(s) for s in seqs], batch_size), desc="generate",
                    disable=progress_disabled(progress)):
        tokens, mask = _left_pad([seqs[i] for i in idx], pad, dev)
        steps = max(n_ans[i] for i in idx)
        hooks = [] if steer is None else [
            (resid_hook(steer[0]), _add_at(tokens.shape[1] - 1, steer[1][torch.as_tensor(idx)]))
        ]
        new = []
        for _ in range(steps):
            logits = model.run_with_hooks(tokens, attention_mask=mask, return_type="logits",
                                          fwd_hooks=hooks)
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            new.append(nxt)
            tokens = torch.cat([tokens, nxt], 1)
            mask = torch.cat([mask, torch.ones_like(nxt)], 1)
        gen = torch.cat(new, 1).cpu()
        for row, i in enumerate(idx):
            preds[i] = model.tokenizer.decode(gen[row, :n_ans[i]].tolist())
    out = df.copy()
    out["prediction"] = preds
    out["correct"] = [p.strip() == a.strip() for p, a in zip(preds, df.answer, strict=True)]
    return out


def _add_at(position: int, vectors: torch.Tensor):
    """Hook adding ``vectors`` (``[B, d]``) to ``act[:, position]`` (``act``: ``[B, T, d]``)."""

    def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
        act[:, position] += vectors.to(act.device, act.dtype)
        return act

    return hook


def icl_accuracy(
    model, df: pd.DataFrame, batch_size: int | None = None, truncate: bool = False,
    progress: bool = True, steer: tuple[int, torch.Tensor] | None = None,
) -> pd.DataFrame:
    """Greedy exact-match ICL accuracy per task: columns ``family, task, accuracy, n``
    (``steer``: see :func:`predict_answers`)."""
    pred = predict_answers(model, df, batch_size, truncate, progress, steer)
    return (
        pred.groupby(["family", "task"], sort=False)["correct"]
        .agg(accuracy="mean", n="size")
        .reset_index()
    )


# -------------------------------------------------------------------------- representations
@torch.no_grad()
def last_token_representations(
    model,
    prompts: Sequence[str],
    layers: Sequence[int] | None = None,
    batch_size: int | None = None,
    truncate: bool = False,
    progress: bool = True,
) -> torch.Tensor:
    """Residual stream at each prompt's last token: ``[len(layers), n_prompts, d_model]``.

    ``layers``: layer ``L`` is ``blocks.L.hook_resid_post``, ``-1`` the embeddings
    (``blocks.0.hook_resid_pre``); default all, ``[-1, 0, ..., n_layers - 1]``.  Batched with left
    padding and an attention mask, so the last column is every prompt's real last token.  Returned
    on the CPU in float32.
    """
    if len(prompts) == 0:
        raise ValueError("no prompts given")
    n_layers = model.cfg.n_layers
    layers = model_layers(model) if layers is None else list(layers)
    for layer in layers:
        check_layer(layer, n_layers)
    hooks = [resid_hook(layer) for layer in layers]
    batch_size = batch_size or lm_preset().batch_size
    seqs = _encode(model, list(prompts), truncate=truncate)
    dev, pad = _device(model), _pad_id(model)
    out = torch.empty(len(layers), len(seqs), model.cfg.d_model)
    wanted = set(hooks)
    # blocks after the last wanted layer need not run (the embeddings are read inside block 0)
    stop = max(max(layers) + 1, 1) if max(layers) + 1 < n_layers else None
    for idx in tqdm(_batches([len(s) for s in seqs], batch_size), desc="representations",
                    disable=progress_disabled(progress)):
        tokens, mask = _left_pad([seqs[i] for i in idx], pad, dev)
        _, cache = model.run_with_cache(
            tokens, attention_mask=mask, names_filter=lambda n: n in wanted, return_type=None,
            stop_at_layer=stop,
        )
        for j, h in enumerate(hooks):
            out[j, torch.as_tensor(idx)] = cache[h][:, -1].float().cpu()
    return out


# ------------------------------------------------------------------------------ decodability
def cd_from_representations(
    reps: torch.Tensor, df: pd.DataFrame, k: int = 10, layers: Sequence[int] | None = None
) -> pd.DataFrame:
    """CD per family and layer from ``reps`` ``[n_layers, len(df), d]`` (rows of ``df``).

    ``layers`` names the rows of ``reps`` (default ``-1, 0, 1, ...``, the order of
    :func:`last_token_representations`).  The tasks of a family are its concepts.  Columns
    ``family, layer, concept, cd`` (concept ``"mean"`` is the average over tasks).
    """
    _check_df(df)
    layers = list(range(EMBED, reps.shape[0] - 1)) if layers is None else list(layers)
    if reps.shape[:2] != (len(layers), len(df)):
        raise ValueError(
            f"reps has shape {tuple(reps.shape)}; expected ({len(layers)}, {len(df)}, d_model)"
        )
    rows = []
    for family, g in df.reset_index(drop=True).groupby("family", sort=False):
        tasks = list(dict.fromkeys(g.task))
        if len(tasks) < 2:
            raise ValueError(f"family {family!r} has one task; CD needs at least two concepts")
        labels = torch.tensor([tasks.index(t) for t in g.task])
        sel = torch.tensor(g.index.to_list())
        for j, layer in enumerate(layers):
            res = concept_decodability(reps[j, sel], labels, k)
            rows += [{"family": family, "layer": layer, "concept": t, "cd": float(v)}
                     for t, v in zip(tasks, res.per_concept, strict=True)]
            rows.append({"family": family, "layer": layer, "concept": "mean", "cd": res.mean})
    return pd.DataFrame(rows)


def cd_by_layer_lm(
    model,
    world=None,
    families: Iterable[str] | None = None,
    shots: Sequence[int] | None = None,
    n_prompts: int | None = None,
    k: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    prompts: pd.DataFrame | None = None,
    truncate: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Concept Decodability per family, number of shots and layer.

    Either builds prompts from ``world`` (:func:`build_prompts`, once per entry of ``shots``,
    default the preset's ``(1, 4, 10)``) or takes a ready table ``prompts`` whose ``n_shots``
    column (if any) splits it.  Returns columns ``family, n_shots, layer, concept, cd``
    (concept ``"mean"``: the average over the family's tasks, Null included).
    """
    p = lm_preset()
    k = k or p.k
    if prompts is None:
        if world is None:
            raise ValueError("pass a world (llmfeatures.load_world()) or a prompts DataFrame")
        shots = p.shots if shots is None else shots
        tables = [build_prompts(world, families, s, n_prompts, seed) for s in shots]
    else:
        _check_df(prompts)
        if "n_shots" in prompts.columns:
            tables = [g for _, g in prompts.groupby("n_shots", sort=True)]
        else:
            tables = [prompts.assign(n_shots=-1)]
    frames = []
    for table in tables:
        table = table.reset_index(drop=True)
        layers = model_layers(model)
        reps = last_token_representations(model, list(table.prompt), layers, batch_size, truncate,
                                          progress)
        cd = cd_from_representations(reps, table, k, layers)
        cd.insert(1, "n_shots", int(table.n_shots.iloc[0]))
        frames.append(cd)
    return pd.concat(frames, ignore_index=True)


def best_layers(cd: pd.DataFrame, n_shots: int | None = None) -> pd.Series:
    """Layer of highest mean CD per family (at ``n_shots`` if the table has several)."""
    m = cd[cd.concept == "mean"]
    if n_shots is not None and "n_shots" in m.columns:
        m = m[m.n_shots == n_shots]
        if m.empty:
            raise ValueError(f"no CD rows with n_shots={n_shots}; have {sorted(cd.n_shots.unique())}")
    return m.loc[m.groupby("family", sort=False)["cd"].idxmax()].set_index("family")["layer"]


def r_squared(x: Sequence[float], y: Sequence[float]) -> float:
    """Squared Pearson correlation of ``x`` and ``y`` (the R^2 of a least-squares line);
    ``nan`` if either is constant or there are fewer than 3 points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.shape} vs {y.shape}")
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1] ** 2)


def cd_accuracy_r2(
    cd: pd.DataFrame,
    accuracy: pd.DataFrame,
    n_shots: int | None = None,
    layers: dict[str, int] | None = None,
    include_null: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """R^2 of per-task CD (at each family's best layer) against per-task accuracy.

    ``cd`` from :func:`cd_by_layer_lm` (or :func:`cd_from_representations`), ``accuracy`` from
    :func:`icl_accuracy` (columns ``family, task, accuracy``).  ``n_shots`` picks the CD rows
    (default: the only value, or the preset's ``n_shots_accuracy``); ``layers`` overrides the
    best layer per family.  Returns ``(summary, points)``: summary has columns ``family, layer,
    r2, n_tasks``; points has ``family, task, layer, cd, accuracy`` (one row per task).
    """
    cd = cd.copy()
    if "n_shots" in cd.columns:
        values = sorted(cd.n_shots.unique())
        if n_shots is None:
            n_shots = values[0] if len(values) == 1 else lm_preset().n_shots_accuracy
        cd = cd[cd.n_shots == n_shots]
        if cd.empty:
            raise ValueError(f"no CD rows with n_shots={n_shots}; have {values}")
    best = best_layers(cd).to_dict()
    best.update(layers or {})
    per_task = cd[cd.concept != "mean"].rename(columns={"concept": "task"})
    rows, points = [], []
    for family, layer in best.items():
        c = per_task[(per_task.family == family) & (per_task.layer == layer)][["task", "cd"]]
        a = accuracy[accuracy.family == family][["task", "accuracy"]]
        m = c.merge(a, on="task")
        if not include_null:
            m = m[m.task != "null"]
        if m.empty:
            raise ValueError(f"no task of family {family!r} has both a CD and an accuracy")
        points.append(m.assign(family=family, layer=layer))
        rows.append({"family": family, "layer": layer, "r2": r_squared(m.cd, m.accuracy),
                     "n_tasks": len(m)})
    pts = pd.concat(points, ignore_index=True)[["family", "task", "layer", "cd", "accuracy"]]
    return pd.DataFrame(rows), pts


# R^2 of CD vs accuracy in the paper (Han et al., 2024), 4 shots: {model: (POS, bitwise)}
PAPER_R2: dict[str, tuple[float, float]] = {
    "Llama-3.1-8B": (0.78, 0.53),
    "Llama-3.1-70B": (0.84, 0.32),
    "Gemma-2-2B": (0.42, 0.78),
    "Gemma-2-9B": (0.53, 0.45),
    "Gemma-2-27B": (0.82, 0.59),
}


def task_vector_intervention(
    model,
    df: pd.DataFrame,
    layer: int,
    means_df: pd.DataFrame | None = None,
    alpha: float = 1.0,
    centre: bool = True,
    batch_size: int | None = None,
    truncate: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """The paper's intervention: add a mean task representation at the query position of
    ``layer`` (``blocks.{layer}.hook_resid_post``).

    The mean last-token representation at ``layer`` of every task is taken from ``means_df``
    (prompts built with another seed; default ``df`` itself).  Each prompt of ``df`` is then
    answered three times: unchanged (``"none"``), with ``alpha`` times its own task's mean added
    (``"task mean"``) and with its family's Null mean added (``"null mean"``).  Well-encoded tasks
    gain from their own mean and lose from the Null one.

    With ``centre`` (default) the family's average over its tasks is subtracted from every task
    mean first, so only what sets a task apart is added.  ``centre=False`` adds the raw mean, as
    written in the paper; on a small model that also doubles the part shared by all prompts
    (position, the ``" ->"`` token) and pushes the residual stream off its usual range.

    Returns columns ``family, task, condition, accuracy, n``.
    """
    _check_df(df)
    means_df = df if means_df is None else means_df
    _check_df(means_df)
    reps = last_token_representations(model, list(means_df.prompt), layers=[layer],
                                      batch_size=batch_size, truncate=truncate, progress=progress)[0]
    keys = list(zip(means_df.family, means_df.task, strict=True))
    means = {}
    for key in dict.fromkeys(keys):
        rows = torch.tensor([i for i, k in enumerate(keys) if k == key])
        means[key] = reps[rows].mean(0)
    if centre:
        for family in dict.fromkeys(means_df.family):
            fam_keys = [k for k in means if k[0] == family]
            centre_vec = torch.stack([means[k] for k in fam_keys]).mean(0)
            for k in fam_keys:
                means[k] = means[k] - centre_vec
    need = {(f, t) for f, t in zip(df.family, df.task, strict=True)} | {(f, "null") for f in df.family}
    missing = sorted(need - set(means))
    if missing:
        raise ValueError(f"means_df has no prompts for {missing}; build it with the same families and tasks")
    own = torch.stack([means[(f, t)] for f, t in zip(df.family, df.task, strict=True)])
    null = torch.stack([means[(f, "null")] for f in df.family])
    frames = []
    for condition, vecs in (("none", None), ("task mean", own), ("null mean", null)):
        steer = None if vecs is None else (layer, alpha * vecs)
        acc = icl_accuracy(model, df, batch_size, truncate, progress, steer)
        frames.append(acc.assign(condition=condition))
    out = pd.concat(frames, ignore_index=True)
    return out[["family", "task", "condition", "accuracy", "n"]]


def paper_r2_table() -> pd.DataFrame:
    """The paper's R^2 values as a DataFrame (rows: models; columns: pos, bitwise)."""
    return pd.DataFrame(PAPER_R2, index=["pos", "bitwise"]).T


# ------------------------------------------------------------- shared inputs and input baseline
def shared_input_families(world) -> dict[str, tuple[str, ...]]:
    """Few-shot families whose tasks share their inputs: ``{family: (task, ..., "null")}``.

    The world's relations grouped by what they take as input (``country_capital``,
    ``country_currency`` and ``country_language`` all map the same countries: family
    ``"country"``; likewise ``"person"``), each group with a Null task copying the input, then the
    ``pos`` family (all tasks read the same kind of generated sentence) and the ``bitwise`` family
    (all tasks read the same kind of 5-bit pair).  A relation whose inputs no other relation
    shares (``singular_plural``, ...) forms no family: its tasks could be told apart from the
    query word alone.
    """
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, pairs in world.relations.items():
        groups.setdefault(tuple(sorted(x for x, _ in pairs)), []).append(name)
    out: dict[str, tuple[str, ...]] = {}
    for names in groups.values():
        if len(names) >= 2:
            prefix = os.path.commonprefix(names).rstrip("_") or "+".join(names)
            out[prefix] = (*names, "null")
    for family in ("pos", "bitwise"):
        if family in world.fewshot_families:
            out[family] = tuple(world.fewshot_families[family])
    return out


def query_prompt(query: str) -> str:
    """The prompt of ``query`` without demonstrations, ``"France ->"``: the input-only view."""
    from llmfeatures.organism.fewshot import ARROW

    return query + ARROW.rstrip()


def shared_input_prompts(
    world,
    families: Iterable[str] | None = None,
    n_shots: int = 4,
    n_prompts: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Few-shot prompts of the :func:`shared_input_families`, ``n_prompts`` per task.

    Columns ``prompt, answer, family, task, query, n_shots, query_prompt`` (``query_prompt``: the
    query alone, :func:`query_prompt`).  Within a family every task draws its inputs (queries and
    demonstrations) from the same pool, independently per task, so the query says nothing about
    the task.  A relation family with ``P`` inputs gets at most ``P - 1`` demonstrations (its
    items never repeat in a prompt): the ``n_shots`` column holds the number actually used.
    """
    from llmfeatures.organism.fewshot import render_prompt

    fams = shared_input_families(world)
    families = list(fams) if families is None else list(families)
    unknown = [f for f in families if f not in fams]
    if unknown:
        raise ValueError(f"unknown shared-input families {unknown}; valid: {', '.join(fams)}")
    if n_shots < 0:
        raise ValueError(f"n_shots must be >= 0, got {n_shots}")
    n_prompts = lm_preset().n_prompts if n_prompts is None else n_prompts
    if n_prompts < 1:
        raise ValueError(f"n_prompts must be >= 1, got {n_prompts}")
    frames = []
    for family in families:
        tasks = fams[family]
        if family in world.fewshot_families:  # pos, bitwise: the world's own prompts
            for task in tasks:
                frames.append(world.fewshot_prompts(family, task, n_shots, n_prompts, seed))
            continue
        maps = {t: dict(world.relations[t]) for t in tasks if t != "null"}
        inputs = sorted(next(iter(maps.values())))
        shots = min(n_shots, len(inputs) - 1)
        rows = []
        for task in tasks:
            rng = random.Random(f"llmfeatures-lm-shared-{seed}-{family}-{task}-{shots}")
            for _ in range(n_prompts):
                xs = rng.sample(inputs, shots + 1)
                prompt, answer = render_prompt([(x, x if task == "null" else maps[task][x])
                                                for x in xs])
                rows.append((prompt, answer, family, task, xs[-1], shots))
        frames.append(pd.DataFrame(rows, columns=["prompt", "answer", "family", "task", "query",
                                                  "n_shots"]))
    out = pd.concat(frames, ignore_index=True)
    out["query_prompt"] = [query_prompt(q) for q in out["query"]]
    return out


def cd_with_input_baseline(
    model,
    prompts: pd.DataFrame,
    layers: Sequence[int] | None = None,
    k: int | None = None,
    batch_size: int | None = None,
    truncate: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """CD of the full prompts beside the CD of their queries alone, per family, shots and layer.

    ``prompts`` needs the columns ``prompt, answer, family, task, query_prompt`` (e.g. from
    :func:`shared_input_prompts`); ``n_shots``, if present, splits it.  Both CDs use the same rows,
    labels and layer (``L`` is ``blocks.L.hook_resid_post``, ``-1`` the embeddings; default all):
    ``cd`` reads the last token of ``prompt``, ``cd_input`` the last token of ``query_prompt``,
    the same query without demonstrations.  ``cd_input`` is what the query words alone tell about
    the task; ``cd - cd_input`` is what the demonstrations add.  Columns ``family, n_shots, layer,
    concept, cd, cd_input`` (concept ``"mean"``: the average over the family's tasks).
    """
    _check_df(prompts)
    if "query_prompt" not in prompts.columns:
        raise ValueError("prompts lack the column 'query_prompt' (the query without "
                         "demonstrations); build them with shared_input_prompts")
    k = k or lm_preset().k
    layers = model_layers(model) if layers is None else list(layers)
    tables = ([g for _, g in prompts.groupby("n_shots", sort=True)]
              if "n_shots" in prompts.columns else [prompts.assign(n_shots=-1)])
    frames = []
    for table in tables:
        table = table.reset_index(drop=True)
        full = last_token_representations(model, list(table.prompt), layers, batch_size,
                                          truncate, progress)
        unique = list(dict.fromkeys(table.query_prompt))
        alone = last_token_representations(model, unique, layers, batch_size, False, progress)
        index = {q: i for i, q in enumerate(unique)}
        alone = alone[:, torch.tensor([index[q] for q in table.query_prompt])]
        cd = cd_from_representations(full, table, k, layers)
        cd["cd_input"] = cd_from_representations(alone, table, k, layers)["cd"].to_numpy()
        cd.insert(1, "n_shots", int(table.n_shots.iloc[0]))
        frames.append(cd)
    return pd.concat(frames, ignore_index=True)


def baseline_table(cd: pd.DataFrame) -> pd.DataFrame:
    """One row per family and number of shots: the best block layer's mean CD beside both controls.

    ``cd`` from :func:`cd_with_input_baseline`.  The best layer is chosen among the blocks
    (``L >= 0``); ``cd_input`` is the input-only CD at that layer and ``cd_length`` the CD at the
    embeddings (layer ``-1``), where the last token is always ``" ->"`` and only its position, the
    prompt's length in tokens, differs.  Columns ``family, n_shots, layer, cd, cd_input,
    cd_length, chance``.
    """
    need = {"family", "layer", "concept", "cd", "cd_input"}
    if not need <= set(cd.columns):
        raise ValueError(f"cd lacks columns {sorted(need - set(cd.columns))}; compute it with "
                         "cd_with_input_baseline")
    m = cd[cd.concept == "mean"]
    if "n_shots" not in m.columns:
        m = m.assign(n_shots=-1)
    keys = ["family", "n_shots"]
    blocks = m[m.layer >= 0]
    if blocks.empty:
        raise ValueError("cd has no block layer (L >= 0); pass layers including at least one block")
    best = blocks.loc[blocks.groupby(keys, sort=False).cd.idxmax()].set_index(keys)
    out = best[["layer", "cd", "cd_input"]]
    embed = m[m.layer == EMBED].set_index(keys).cd.rename("cd_length")
    out = out.join(embed).reset_index()
    n_tasks = cd[cd.concept != "mean"].groupby("family").concept.nunique()
    out["chance"] = 1 / out.family.map(n_tasks)
    return out[["family", "n_shots", "layer", "cd", "cd_input", "cd_length", "chance"]]
