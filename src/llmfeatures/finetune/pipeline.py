"""Chapter 7 end to end, cached: runs -> behaviour -> SAE fit -> tuned SAEs -> drift -> early/late.

:func:`chapter_results` returns a dict of DataFrames and figures' inputs; it is stored as
``results.pkl`` in the fine-tuning cache folder (:func:`llmfeatures.finetune.runs.finetune_dir`)
beside the runs and the tuned SAEs (``saes/layer_<l>/``, sae-lens format), all written atomically.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch

from llmfeatures.cache import atomic_path
from llmfeatures.config import get_scale
from llmfeatures.finetune.analysis import (
    behaviour,
    drift_test,
    drift_tests_by_layer,
    encode_latents,
    explanations_hold,
    feature_drift,
    finetune_sae,
    match_decoders,
    matching_summary,
    sae_fit,
)
from llmfeatures.finetune.runs import (
    RUNS,
    FinetuneConfig,
    base_model,
    finetune_config,
    finetune_dir,
    finetuned_model,
)
from llmfeatures.organism.train import pack_documents

RESULTS_VERSION = 4  # bump when only the analyses change (the runs and tuned SAEs are kept)
SAES_VERSION = 2  # bump when only the tuned SAEs' code changes (the runs are kept)


def base_saes(model, scale: str | None = None) -> dict[int, object]:
    """The organism's SAE of every layer, ``{layer: sae}``."""
    from llmfeatures.loaders import load_sae

    return {L: load_sae("organism", L, scale=scale, model=model) for L in range(model.cfg.n_layers)}


def analysis_texts(world, cfg: FinetuneConfig) -> list[str]:
    """The analysis documents: the first ``n_val_docs`` of ``val`` and all of ``finetune_val``."""
    return world.texts("val")[: cfg.n_val_docs] + world.texts("finetune_val")


def analysis_corpus(world, tokenizer, cfg: FinetuneConfig):
    """The same documents as :func:`analysis_texts` as a labelled ``TokenCorpus``."""
    from llmfeatures.features import organism_corpus

    corpus = organism_corpus(world, tokenizer, ("val", "finetune_val"))
    n_val = len(world.documents("val"))
    keep = np.r_[np.arange(min(cfg.n_val_docs, n_val)),
                 np.arange(n_val, n_val + len(world.documents("finetune_val")))]
    return corpus.subset(keep)


def tuned_saes(tuned, saes: dict[int, object], scale: str | None = None,
               config: FinetuneConfig | None = None) -> dict[int, object]:
    """The base SAEs trained further on the fully tuned model's activations (cached): on
    ``finetune_train`` and as many pre-training documents, a seeded sample of their rows with
    about 1.25 times the tokens that ``sae_steps`` batches of ``sae_batch`` draw."""
    from llmfeatures.loaders import load_world
    from llmfeatures.organism.sae import load_sae_folder, residual_streams, save_sae

    scale = get_scale(scale)
    cfg = config or finetune_config(scale)
    art = finetune_dir(scale, cfg)

    def build(folder) -> list[str]:
        world = load_world(scale)
        n = len(world.documents("finetune_train"))
        texts = world.texts("finetune_train") + world.texts("train")[:n]
        rows = pack_documents(texts, tuned.tokenizer, tuned.cfg.n_ctx)
        # a seeded sample of the rows with about 1.25x the tokens the steps draw (all of them
        # when the budget exceeds the corpus): each token is seen about once
        need = -(-5 * cfg.sae_steps * cfg.sae_batch // (4 * tuned.cfg.n_ctx))
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(cfg.seed))
        rows = rows[order[: max(1, need)]]
        acts = residual_streams(tuned, rows, sorted(saes))  # one pass for every layer
        files = []
        for L, sae in saes.items():
            new = finetune_sae(sae, acts.pop(L), cfg.sae_steps, cfg.sae_lr, cfg.sae_batch,
                               cfg.seed + L)
            with atomic_path(folder / f"saes/layer_{L}") as tmp:
                save_sae(new, tmp)
            files.append(f"saes/layer_{L}")
        art.manifest = art._read_manifest()  # the full run may have been recorded meanwhile
        return files

    (art.path / "saes").mkdir(exist_ok=True)
    art.stage("saes", build, version=SAES_VERSION)
    return {L: load_sae_folder(art.path / f"saes/layer_{L}", tuned) for L in saes}


def analysis_stats(model, saes: dict[int, object], corpus, scale: str | None = None):
    """One feature-engine pass of ``model`` with ``saes`` over the analysis ``corpus`` (per-latent
    firing counts, top examples and ground-truth label counts; cached by the engine)."""
    from llmfeatures.features import StatsConfig, feature_stats

    cfg = StatsConfig(cooccurrence=False, moments=False, band_examples=0)
    return feature_stats(model, corpus, saes, sorted(saes), cfg, scale=scale, progress=False)


class PhaseTimer:
    """Wall and CPU seconds of named phases: ``with timer("runs"): ...``; ``timer.table()``."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.rows.append({"phase": name, "wall_s": time.perf_counter() - t0,
                              "cpu_s": time.process_time() - c0,
                              "load_1min": os.getloadavg()[0]})

    def table(self) -> pd.DataFrame:
        """One row per phase: ``phase``, ``wall_s``, ``cpu_s``, ``load_1min`` (at its end)."""
        return pd.DataFrame(self.rows, columns=["phase", "wall_s", "cpu_s", "load_1min"])


def _compute(scale: str, cfg: FinetuneConfig) -> dict:
    from llmfeatures.icl.lm import build_prompts, cd_by_layer_lm, icl_accuracy
    from llmfeatures.loaders import load_world
    from llmfeatures.organism.sae import non_special, residual_streams

    t0, c0 = time.perf_counter(), time.process_time()
    timer = PhaseTimer()
    with timer("load"):
        world = load_world(scale)
        base = base_model(scale)
    models = {"base": base}
    histories = {}
    with timer("runs"):
        for name in RUNS:
            models[name], histories[name] = finetuned_model(name, scale, cfg)
    res: dict = {"config": cfg, "scale": scale, "histories": histories,
                 "run_cpu_s": sum(h["cpu_s"] for h in histories.values()),
                 "run_wall_s": sum(h["wall_s"] for h in histories.values())}
    with timer("behaviour"):
        res["behaviour"] = pd.DataFrame(
            {name: behaviour(models[name], world, cfg.n_eval_prompts, seed=cfg.seed)
             for name in ("base", "full", "early", "late")}).T
    with timer("tuned_saes"):
        saes = base_saes(base, scale)
        new_saes = tuned_saes(models["full"], saes, scale, cfg)
    # --- SAE fit before and after.  The analysis rows are shuffled once (seeded), so the rows of
    # the loss recovered and the tokens of the correlations (the first ones) cover every domain;
    # each model's residual streams are computed once and shared by the fit and the drift.
    with timer("residual_streams"):
        rows = pack_documents(analysis_texts(world, cfg), base.tokenizer, base.cfg.n_ctx)
        rows = rows[torch.randperm(len(rows),
                                   generator=torch.Generator().manual_seed(cfg.seed))]
        acts = {name: residual_streams(models[name], rows, sorted(saes))
                for name in ("base", "full")}
    with timer("sae_fit"):
        tuned_losses: dict = {}  # clean and zero-ablated losses of the tuned model, computed once
        res["sae_fit"] = pd.concat([
            sae_fit(base, saes, rows, acts=acts["base"]).assign(model="base", sae="base"),
            sae_fit(models["full"], saes, rows, acts=acts["full"], losses=tuned_losses
                    ).assign(model="tuned", sae="base"),
            sae_fit(models["full"], new_saes, rows, acts=acts["full"], losses=tuned_losses
                    ).assign(model="tuned", sae="tuned"),
        ], ignore_index=True)
    # --- drift, per layer, on the same tokens and the same labelled corpus
    with timer("feature_stats"):
        corpus = analysis_corpus(world, base.tokenizer, cfg)
        s_base = analysis_stats(base, saes, corpus, scale)
        s_tuned = analysis_stats(models["full"], new_saes, corpus, scale)
    with timer("drift"):
        n_corr = int(non_special(base, rows[: max(1, cfg.n_corr_tokens // base.cfg.n_ctx)]).sum())
        frames, match_rows = [], []
        for L in saes:
            a = encode_latents(saes[L], acts["base"][L][:n_corr])
            b = encode_latents(new_saes[L], acts["full"][L][:n_corr])
            frames.append(feature_drift(L, s_base, s_tuned, a, b, saes[L].W_dec,
                                        new_saes[L].W_dec, world, cfg.tie_threshold))
            match, cos = match_decoders(saes[L].W_dec, new_saes[L].W_dec)
            m = matching_summary(match, cos, cfg.match_threshold, s_base.sae[L].fire_count > 0,
                                 s_tuned.sae[L].fire_count > 0)
            for tag, st in (("before", s_base), ("after", s_tuned)):  # recipe latents (>= 0.5)
                m[f"recipe_latents_{tag}"] = int(((_recipe_share(st, L) >= 0.5)
                                                  & (st.sae[L].fire_count > 0)).sum())
            match_rows.append({"layer": L, **m})
        del acts
        drift = pd.concat(frames, ignore_index=True)
        res["drift"], res["matching"] = drift, pd.DataFrame(match_rows)
        res["drift_test"] = {col: drift_test(drift, col) for col in ("drift", "dec_change")}
        res["drift_test_by_layer"] = drift_tests_by_layer(drift)
        res["explanations"] = explanations_hold(drift)
        res["explanations_by_layer"] = drift.groupby("layer")["holds"].mean()
    # --- early vs late on a few-shot family
    with timer("icl"):
        prompts = build_prompts(world, [cfg.icl_family], 4, cfg.n_eval_prompts,
                                seed=cfg.seed + 7)
        acc, cd = [], []
        for name in ("base", "icl_early", "icl_late"):
            a = icl_accuracy(models[name], prompts, progress=False)
            acc.append(a.assign(model=name))
            c = cd_by_layer_lm(models[name], prompts=prompts, progress=False)
            cd.append(c[c["concept"] == "mean"].assign(model=name))
        res["icl_accuracy"] = pd.concat(acc, ignore_index=True)
        res["icl_cd"] = pd.concat(cd, ignore_index=True)
    res["phases"] = timer.table()
    res["time_s"] = time.perf_counter() - t0
    res["cpu_s"] = time.process_time() - c0
    return res


def _recipe_share(stats, layer: int) -> np.ndarray:
    from llmfeatures.finetune.analysis import label_shares

    return label_shares(stats, layer, "domain", ["recipe"])


def chapter_results(scale: str | None = None, config: FinetuneConfig | None = None) -> dict:
    """Everything chapter 7 reports, computed once per base organism and config (cached)."""
    from llmfeatures.organism.pipeline import _cpu_threads, organism_config

    scale = get_scale(scale)
    cfg = config or finetune_config(scale)
    art = finetune_dir(scale, cfg)

    def build(folder) -> list[str]:
        with _cpu_threads(organism_config(scale).cpu_threads if not torch.cuda.is_available()
                          else 0):
            res = _compute(scale, cfg)
        with atomic_path(folder / "results.pkl") as tmp:
            tmp.write_bytes(pickle.dumps(res))
        art.manifest = art._read_manifest()  # the runs and SAEs were recorded meanwhile
        return ["results.pkl"]

    art.stage("results", build, version=RESULTS_VERSION)
    return pickle.loads((art.path / "results.pkl").read_bytes())
