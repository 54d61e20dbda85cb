"""Features appearing during training: the organism's checkpoints measured one by one.

Per checkpoint: next-token loss per domain, accuracy on the fact and pronoun tasks, and linear
probe accuracy per layer (layer ``L`` = ``blocks.L.hook_resid_post``, ``-1`` = the embeddings
``blocks.0.hook_resid_pre``) for the document's domain (mean over its tokens), the token's part
of speech, and the gender of the person in a pronoun prompt (last position).  Probes are
scikit-learn logistic regressions scored on held-out halves, beside the majority-class baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from llmfeatures.config import pick, progress_disabled
from llmfeatures.features import TokenCorpus


@dataclass(frozen=True)
class TrainingScanConfig:
    """How much of the validation corpus each checkpoint reads."""

    docs_per_domain: int = 20
    tokens_per_pos: int = 300
    pronoun_prompts: int = 2  # per person
    seed: int = 0


SCAN_PRESETS = {
    "ci": TrainingScanConfig(docs_per_domain=8, tokens_per_pos=120, pronoun_prompts=1),
    "book": TrainingScanConfig(),
    "gpu": TrainingScanConfig(docs_per_domain=60, tokens_per_pos=1000, pronoun_prompts=3),
    "paper": TrainingScanConfig(docs_per_domain=60, tokens_per_pos=1000, pronoun_prompts=3),
}


def _pick_docs(corpus: TokenCorpus, per_domain: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dom = corpus.doc_labels["domain"]
    keep = [rng.permutation(np.flatnonzero(dom == d))[:per_domain] for d in np.unique(dom)]
    return np.sort(np.concatenate(keep))


def _doc_pass(model, corpus: TokenCorpus, docs: np.ndarray, layers: Sequence[int]):
    """Per document: loss per token [len], resid per layer [len, d] (BOS position dropped)."""
    bos = model.tokenizer.bos_token_id
    names = [f"blocks.{L}.hook_resid_post" if L >= 0 else "blocks.0.hook_resid_pre" for L in layers]
    out = []
    with torch.no_grad():
        for d in docs:
            toks = corpus.doc(int(d))[: model.cfg.n_ctx - 1]
            full = torch.tensor([[bos, *toks.tolist()]], device=next(model.parameters()).device)
            logits, cache = model.run_with_cache(full, names_filter=lambda n: n in names)
            loss = F.cross_entropy(logits[0, :-1], full[0, 1:], reduction="none")
            out.append((loss.cpu().numpy(), {L: cache[n][0, 1:].cpu().numpy()
                                              for L, n in zip(layers, names)}, len(toks)))
    return out


def _probe(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[float, float]:
    """Held-out accuracy of a logistic-regression probe and of the majority class."""
    keep = np.isin(y, np.flatnonzero(np.bincount(y) >= 2))
    x, y = x[keep], y[keep]
    if len(np.unique(y)) < 2:
        return float("nan"), float("nan")
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.5, random_state=seed, stratify=y)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(xtr, ytr)
    majority = float((yte == np.bincount(ytr).argmax()).mean())
    return float(clf.score(xte, yte)), majority


def _task_accuracy(model, prompts: pd.DataFrame) -> float:
    hits = []
    with torch.no_grad():
        for r in prompts.itertuples(index=False):
            logits = model(model.to_tokens(r.prompt))[0, -1]
            hits.append(int(logits.argmax()) == int(model.to_tokens(r.answer,
                                                                    prepend_bos=False)[0, 0]))
    return float(np.mean(hits))


def scan_checkpoint(model, corpus: TokenCorpus, world, config: TrainingScanConfig) -> dict:
    """All measurements of one model: ``loss`` (DataFrame domain, loss), ``tasks`` (dict task ->
    accuracy), ``probes`` (DataFrame layer, probe, accuracy, majority)."""
    layers = [-1, *range(model.cfg.n_layers)]
    docs = _pick_docs(corpus, config.docs_per_domain, config.seed)
    passes = _doc_pass(model, corpus, docs, layers)
    names = corpus.label_names["domain"]
    dom = corpus.doc_labels["domain"][docs]
    loss = pd.DataFrame({"domain": [names[c] for c in dom],
                         "loss": [p[0].mean() for p in passes]}).groupby("domain")["loss"].mean()
    pos = np.concatenate([corpus.token_labels["pos"][corpus.offsets[d]:corpus.offsets[d] + n]
                          for d, (_, _, n) in zip(docs, passes)])
    rng = np.random.default_rng(config.seed)
    pos_idx = np.concatenate([rng.permutation(np.flatnonzero(pos == c))[:config.tokens_per_pos]
                              for c in np.unique(pos[pos >= 0])])
    pron = world.eval_pronouns(config.pronoun_prompts, seed=config.seed)
    gender = pd.factorize(pron["gender"], sort=True)[0]
    rows = []
    with torch.no_grad():
        gnames = [f"blocks.{L}.hook_resid_post" if L >= 0 else "blocks.0.hook_resid_pre"
                  for L in layers]
        g_x = {L: [] for L in layers}
        for p in pron["prompt"]:
            _, cache = model.run_with_cache(model.to_tokens(p), names_filter=lambda n: n in gnames)
            for L, n in zip(layers, gnames):
                g_x[L].append(cache[n][0, -1].cpu().numpy())
    for L in layers:
        doc_x = np.stack([p[1][L].mean(0) for p in passes])
        tok_x = np.concatenate([p[1][L] for p in passes])[pos_idx]
        for probe, x, y in (("domain", doc_x, dom), ("part of speech", tok_x, pos[pos_idx]),
                            ("gender", np.stack(g_x[L]), gender)):
            acc, maj = _probe(x, y, config.seed)
            rows.append({"layer": L, "probe": probe, "accuracy": acc, "majority": maj})
    tasks = {"facts": _task_accuracy(model, world.eval_facts()),
             "pronouns": _task_accuracy(model, pron)}
    return {"loss": loss.reset_index(), "tasks": tasks, "probes": pd.DataFrame(rows)}


def training_scan(scale: str | None = None, steps: Sequence[int] | None = None,
                  config: TrainingScanConfig | None = None, progress: bool = True) -> dict:
    """:func:`scan_checkpoint` on every saved checkpoint of the organism (and the final model as
    the last step), cached.  Returns ``loss`` (step, domain, loss), ``tasks`` (step, task,
    accuracy), ``probes`` (step, layer, probe, accuracy, majority) DataFrames."""
    from llmfeatures.cache import ArtifactDir, atomic_path
    from llmfeatures.config import get_scale
    from llmfeatures.features import organism_corpus
    from llmfeatures.loaders import load_world
    from llmfeatures.organism import organism_checkpoints, organism_model

    scale = get_scale(scale)
    config = config or pick(SCAN_PRESETS, scale)
    steps = list(steps) if steps is not None else organism_checkpoints(scale)
    final = organism_model(scale)
    from llmfeatures.features.engine import fingerprint_module

    art = ArtifactDir("emergence", scale, {"scan": asdict(config), "steps": steps,
                                           "model": fingerprint_module(final)}, version=1)

    def build(folder) -> list[str]:
        world = load_world(scale)
        corpus = organism_corpus(world, final.tokenizer, ("val",))
        frames = {"loss": [], "tasks": [], "probes": []}
        for s in tqdm(steps, desc="checkpoints", disable=progress_disabled(progress)):
            m = organism_model(scale, checkpoint=s)
            r = scan_checkpoint(m, corpus, world, config)
            frames["loss"].append(r["loss"].assign(step=s))
            frames["tasks"].append(pd.DataFrame({"task": list(r["tasks"]),
                                                 "accuracy": list(r["tasks"].values())}
                                                ).assign(step=s))
            frames["probes"].append(r["probes"].assign(step=s))
        for k, v in frames.items():
            with atomic_path(folder / f"{k}.csv") as tmp:
                pd.concat(v, ignore_index=True).to_csv(tmp, index=False)
        return [f"{k}.csv" for k in frames]

    art.stage("scan", build)
    return {k: pd.read_csv(art.path / f"{k}.csv") for k in ("loss", "tasks", "probes")}


def onsets(probes: pd.DataFrame, jump: float = 0.2) -> pd.DataFrame:
    """For each (probe, layer): the first pair of consecutive checkpoints between which the probe
    accuracy rises by at least ``jump``; columns probe, layer, step_before, step_after, before,
    after (no row when there is no such jump)."""
    rows = []
    for (probe, layer), g in probes.sort_values("step").groupby(["probe", "layer"]):
        acc = g["accuracy"].to_numpy()
        st = g["step"].to_numpy()
        d = np.diff(acc)
        if len(d) and np.nanmax(d) >= jump:
            i = int(np.nanargmax(d >= jump))
            rows.append({"probe": probe, "layer": int(layer), "step_before": int(st[i]),
                         "step_after": int(st[i + 1]), "before": float(acc[i]),
                         "after": float(acc[i + 1])})
    return pd.DataFrame(rows, columns=["probe", "layer", "step_before", "step_after", "before",
                                       "after"])
