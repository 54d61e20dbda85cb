"""Fine-tuning runs of the organism (chapter 7), cached like the organism.

Five runs start from the organism's final weights, each with the same number of optimiser steps
(:class:`FinetuneConfig`, presets per scale in :data:`FINETUNE_PRESETS`):

- ``full``, ``early``, ``late``: the shifted world (``finetune_train``: swapped capitals and
  occupations, and the ``recipe`` domain that pre-training never saw), tuning every parameter,
  only the first half of the blocks, or only the second half;
- ``icl_early``, ``icl_late``: few-shot documents of one task family (``cfg.icl_family``), tuning
  the first or the second half of the blocks (Han et al.'s early-vs-late experiment).

"Early" are blocks ``0 .. n_layers//2 - 1`` and "late" the others; in partial runs the embeddings,
the unembedding and the final layer norm stay frozen too, so every frozen tensor is bit-identical
to the organism's.  The loop is the organism's own :func:`llmfeatures.organism.train.train_model`.

Cache: ``<cache>/finetune/<scale>-<hash>/`` (:class:`llmfeatures.cache.ArtifactDir`), keyed by the
base organism's folder and the config; files ``runs/<name>.pt`` (state_dict) and
``runs/<name>.json`` (loss history), written atomically.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass

import torch
from transformer_lens import HookedTransformer

from llmfeatures.cache import ArtifactDir, atomic_path, atomic_write_json
from llmfeatures.config import get_scale, pick
from llmfeatures.organism.train import TrainConfig, pack_documents, train_model

FINETUNE_VERSION = 1
PARTS: tuple[str, ...] = ("full", "early", "late")
RUNS: tuple[str, ...] = ("full", "early", "late", "icl_early", "icl_late")


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything chapter 7 sizes: the fine-tuning runs and the analyses that read them.

    ``n_steps``/``batch_size``/``lr``: every run (equal step budgets).  ``icl_family``: the
    few-shot family of the early-vs-late runs, ``n_icl_docs`` their training documents.
    ``sae_steps``/``sae_lr``/``sae_batch``: fine-tuning the base SAEs on the tuned model.
    ``n_eval_prompts``: few-shot prompts per task; ``n_val_docs``: pre-training val documents in
    the analysis corpus (all ``finetune_val`` documents are added); ``n_corr_tokens``: tokens for
    the activation correlations; ``match_threshold``: decoder cosine above which a Hungarian pair
    counts as matched; ``tie_threshold``: share of a feature's firings on recipe text or swapped
    entities above which it is "tied to the shift".
    """

    n_steps: int = 100
    batch_size: int = 12
    lr: float = 2e-3
    warmup_frac: float = 0.05
    icl_family: str = "pos"
    n_icl_docs: int = 1500
    sae_steps: int = 200
    sae_lr: float = 1e-3
    sae_batch: int = 512
    n_eval_prompts: int = 20
    n_val_docs: int = 600
    n_corr_tokens: int = 30_000
    match_threshold: float = 0.7
    tie_threshold: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_steps < 1 or self.batch_size < 1 or self.sae_steps < 0:
            raise ValueError("n_steps and batch_size must be >= 1 and sae_steps >= 0.")
        if not 0 < self.match_threshold < 1 or not 0 < self.tie_threshold < 1:
            raise ValueError("match_threshold and tie_threshold must lie strictly between 0 and 1.")

    def train_config(self) -> TrainConfig:
        """The organism's :class:`TrainConfig` for one fine-tuning run (no weight decay)."""
        return TrainConfig(n_steps=self.n_steps, batch_size=self.batch_size, lr=self.lr,
                           warmup_frac=self.warmup_frac, weight_decay=0.0,
                           eval_every=max(1, self.n_steps // 5), eval_rows=32,
                           checkpoint_steps=(self.n_steps,))


# book (the defaults): sized so that the whole chapter (five runs, tuned SAEs, analyses) computes
# cold in about 4.5 minutes on one core (benchmarks/finetune_chapter.py; budget 6 minutes).
# Measured on the gen-2 book organism: 150 steps of 16 rows at lr 1e-3 learn all 8 swapped facts
# but the chapter then takes about 9.5 minutes; 100 steps of 12 rows at lr 2e-3 learn 7 of 8
# (100 x 12 at 1e-3: 5 of 8; 100 x 16 at 2e-3 and 120 x 12 at 2e-3: also 7 of 8).
FINETUNE_PRESETS: dict[str, FinetuneConfig] = {
    "ci": FinetuneConfig(n_steps=40, batch_size=8, lr=2e-3, n_icl_docs=300, sae_steps=100,
                         sae_batch=512, n_eval_prompts=8, n_val_docs=100, n_corr_tokens=8000),
    "book": FinetuneConfig(),
    "gpu": FinetuneConfig(n_steps=600, batch_size=32, lr=5e-4, n_icl_docs=6000, sae_steps=2000,
                          sae_batch=4096, n_eval_prompts=60, n_val_docs=2000,
                          n_corr_tokens=200_000),
    "paper": FinetuneConfig(n_steps=2000, batch_size=32, lr=3e-4, n_icl_docs=20_000,
                            sae_steps=5000, sae_batch=4096, n_eval_prompts=100, n_val_docs=5000,
                            n_corr_tokens=500_000),
}


def finetune_config(scale: str | None = None) -> FinetuneConfig:
    """The :class:`FinetuneConfig` preset for ``scale`` (default: the scale in force)."""
    return pick(FINETUNE_PRESETS, scale)


def tuned_blocks(n_layers: int, part: str) -> list[int]:
    """Blocks trained by ``part``: ``full`` all, ``early`` ``0..n//2-1``, ``late`` the rest."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose one of {', '.join(PARTS)}.")
    if n_layers < 2 and part != "full":
        raise ValueError(f"a {n_layers}-layer model has no early/late halves; use part='full'.")
    half = n_layers // 2
    return {"full": list(range(n_layers)), "early": list(range(half)),
            "late": list(range(half, n_layers))}[part]


def freeze_for(model: HookedTransformer, part: str) -> list[str]:
    """Set ``requires_grad`` for ``part`` (see :func:`tuned_blocks`); return the trained names.

    ``full`` trains every parameter; ``early``/``late`` only the parameters of their blocks.
    """
    blocks = tuned_blocks(model.cfg.n_layers, part)
    trained = []
    for name, p in model.named_parameters():
        on = part == "full" or (name.startswith("blocks.") and int(name.split(".")[1]) in blocks)
        p.requires_grad_(on)
        if on:
            trained.append(name)
    return trained


def run_part(name: str) -> str:
    """The block set of a run name: ``icl_early`` -> ``early``."""
    if name not in RUNS:
        raise ValueError(f"unknown run {name!r}; runs are {', '.join(RUNS)}.")
    return name.removeprefix("icl_")


def icl_documents(world, family: str, n_docs: int, seed: int = 0) -> list[str]:
    """``n_docs`` few-shot training documents of every task of ``family`` (4 to 8 items each),
    drawn with their own seed, so they are not the evaluation prompts."""
    from llmfeatures.organism.fewshot import render_items, sample_items

    if family not in world.fewshot_families:
        raise ValueError(f"unknown few-shot family {family!r}; valid: "
                         f"{', '.join(world.fewshot_families)}.")
    rng = random.Random(f"llmfeatures-finetune-icl-{seed}-{family}")
    tasks = world.fewshot_families[family]
    return [render_items(sample_items(rng, world.facts, family, rng.choice(tasks),
                                      rng.randint(4, 8))) for _ in range(n_docs)]


def finetune(model: HookedTransformer, train_rows: torch.Tensor, val_rows: torch.Tensor,
             part: str, cfg: FinetuneConfig) -> dict[str, list]:
    """Fine-tune ``model`` in place on ``train_rows`` ``[n_rows, n_ctx]``, only ``part``'s
    parameters, with the organism's loop; return its loss history."""
    freeze_for(model, part)
    try:
        return train_model(model, train_rows, val_rows, cfg.train_config(), seed=cfg.seed,
                           progress=False)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)


def finetune_dir(scale: str | None = None, config: FinetuneConfig | None = None) -> ArtifactDir:
    """The cache folder of the runs: keyed by the base organism's folder and the config."""
    from llmfeatures.organism.pipeline import organism_dir

    scale = get_scale(scale)
    config = config or finetune_config(scale)
    return ArtifactDir("finetune", scale, {"base": organism_dir(scale).path.name,
                                           "config": asdict(config)}, version=FINETUNE_VERSION)


def base_model(scale: str | None = None, device=None) -> HookedTransformer:
    """The organism (pre-trained weights) at ``scale``."""
    from llmfeatures.loaders import load_model

    return load_model("organism", scale=scale, device=device)


def _rows(model: HookedTransformer, texts: list[str]) -> torch.Tensor:
    return pack_documents(texts, model.tokenizer, model.cfg.n_ctx)


def finetuned_model(name: str, scale: str | None = None, config: FinetuneConfig | None = None,
                    device=None) -> tuple[HookedTransformer, dict[str, list]]:
    """Run ``name`` (one of :data:`RUNS`) unless cached; return the tuned model and history."""
    from llmfeatures.loaders import load_world
    from llmfeatures.organism.pipeline import _cpu_threads, organism_config

    part = run_part(name)
    scale = get_scale(scale)
    cfg = config or finetune_config(scale)
    art = finetune_dir(scale, cfg)
    model = base_model(scale, device)

    def build(folder) -> list[str]:
        world = load_world(scale)
        if name.startswith("icl_"):
            train = _rows(model, icl_documents(world, cfg.icl_family, cfg.n_icl_docs, cfg.seed))
            val = _rows(model, icl_documents(world, cfg.icl_family, 64, cfg.seed + 1))
        else:
            train, val = _rows(model, world.texts("finetune_train")), _rows(
                model, world.texts("finetune_val"))
        threads = organism_config(scale).cpu_threads
        t0, c0 = time.perf_counter(), time.process_time()
        with _cpu_threads(threads if next(model.parameters()).device.type == "cpu" else 0):
            history = finetune(model, train, val, part, cfg)
        history["wall_s"], history["cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
        (folder / "runs").mkdir(exist_ok=True)
        with atomic_path(folder / f"runs/{name}.pt") as tmp:
            torch.save({k: v.cpu() for k, v in model.state_dict().items()}, tmp)
        atomic_write_json(folder / f"runs/{name}.json", history)
        return [f"runs/{name}.pt", f"runs/{name}.json"]

    if not art.stage(name, build, version=FINETUNE_VERSION):
        state = torch.load(art.path / f"runs/{name}.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    model.eval()
    history = json.loads((art.path / f"runs/{name}.json").read_text())
    return model, history
