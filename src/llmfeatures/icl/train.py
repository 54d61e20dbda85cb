"""Training the regression transformer, with log-spaced checkpoints and a cache.

At every checkpoint the run records, on fixed held-out sequences:

* the squared error per basis and per number of in-context examples (``history``);
* Concept Decodability per layer and concept at the last x token (``cd``);
* the model weights (so figures and the patching experiment can reload any checkpoint).

:func:`trained_run` trains once per (scale, configuration) and stores everything in an
:class:`~llmfeatures.cache.ArtifactDir`; a later call (a book rebuild) only loads it.  The folder's
hash includes :data:`ICL_VERSION`: bump it when a change alters what training writes (the loop,
the evaluation sequences, the CD table); the run is then retrained instead of loaded.  The
headline metrics (:func:`summarize`) are recomputed from the stored tables on every load, so a
change to them needs no bump.

Layers follow the package's convention: layer ``L`` is ``blocks.L.hook_resid_post`` and
``-1`` the embeddings (see :mod:`llmfeatures.icl.decodability`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from llmfeatures.cache import ArtifactDir, CacheCorruptError, atomic_path, sha256_file
from llmfeatures.config import get_device, get_scale, pick, progress_disabled, seed_everything
from llmfeatures.icl.baselines import baseline_curves
from llmfeatures.icl.decodability import cd_by_layer
from llmfeatures.icl.model import ICLModelConfig, ICLTransformer, build_model, icl_loss
from llmfeatures.icl.tasks import CPU_TASK, TaskConfig, balanced_basis, sample_batch
from llmfeatures.organism.train import scheduled_lr

# 2: layers renumbered to the package convention (cd.csv's layer L = blocks.L.hook_resid_post,
#    -1 = the embeddings; version 1 counted the embeddings as layer 0)
ICL_VERSION = 2


@dataclass(frozen=True)
class ICLTrainConfig:
    """Everything that defines a chapter-6 training run (its hash names the cache folder).

    (The organism's language model is trained with :class:`llmfeatures.organism.train.TrainConfig`.)
    """

    task: TaskConfig = field(default_factory=TaskConfig)
    model: ICLModelConfig = field(default_factory=ICLModelConfig)
    batch_size: int = 128
    n_steps: int = 80_000
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.9999)
    warmup_steps: int = 0
    schedule: str = "constant"  # or "cosine" (decays to 10% of lr)
    grad_clip: float | None = 1.0
    # curriculum over concepts: ((step, n_bases), ...), from ``step`` on the training sequences
    # use only the first ``n_bases`` bases; empty = all bases from the start (the paper)
    curriculum: tuple[tuple[int, int], ...] = ()
    n_checkpoints: int = 20
    eval_per_basis: int = 250  # held-out sequences per basis for the loss curves
    cd_per_concept: int = 100
    knn_k: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if self.n_steps < 1 or self.n_checkpoints < 2:
            raise ValueError("need n_steps >= 1 and n_checkpoints >= 2")
        if self.curriculum:
            steps = [int(s) for s, _ in self.curriculum]
            counts = [int(n) for _, n in self.curriculum]
            if steps[0] != 0 or steps != sorted(set(steps)):
                raise ValueError(
                    f"curriculum steps must start at 0 and increase, got {steps}; "
                    "write it as ((0, n0), (step1, n1), ...)"
                )
            if not all(1 <= n <= self.task.n_bases for n in counts):
                raise ValueError(f"curriculum basis counts must lie in 1..{self.task.n_bases}, got {counts}")

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step``: linear warm-up over ``warmup_steps``, then constant or a
        cosine decay to 10% of ``lr`` (:func:`llmfeatures.organism.train.scheduled_lr`)."""
        return scheduled_lr(step, self.lr, self.n_steps, self.warmup_steps, 0.1,
                            cosine=self.schedule == "cosine")


def active_bases(cfg: ICLTrainConfig, step: int) -> int:
    """How many bases (the first ones) the training sequences draw from at ``step``."""
    n = cfg.task.n_bases
    for start, count in cfg.curriculum:
        if step >= start:
            n = count
    return n


TRAIN_PRESETS: dict[str, ICLTrainConfig] = {
    # The CPU presets (ci, book) differ from the paper in documented ways that buy speed:
    # a smaller task with concepts of unequal frequency (icl.tasks.CPU_TASK: D=4, 2 bases of
    # rank 2, K=5, drawn 60/40), token_format="pairs" (the y token repeats its x; skips the first plateau,
    # see icl.model) and the exact GELU (one fused op).  No curriculum: the order in which the
    # concepts are learned is the model's own (measured: a curriculum that brings the concepts
    # in one at a time got the first concept only, in the same steps).
    # about a minute on two CPU cores: the mechanics, not the finding
    "ci": ICLTrainConfig(
        task=CPU_TASK,
        model=ICLModelConfig(n_layers=3, d_model=48, n_heads=4, token_format="pairs", act_fn="gelu"),
        batch_size=64, n_steps=600, lr=3e-3, warmup_steps=50, schedule="cosine", n_checkpoints=8,
        eval_per_basis=100, cd_per_concept=50,
    ),
    # the rendered book: trained once on two CPU cores and shipped with the package
    # (icl/data/book_run, see shipped_run); retrain with RETRAIN_COMMAND
    "book": ICLTrainConfig(
        task=CPU_TASK,
        model=ICLModelConfig(n_layers=6, d_model=64, n_heads=4, token_format="pairs", act_fn="gelu"),
        batch_size=64, n_steps=80_000, lr=1e-3, betas=(0.9, 0.999), warmup_steps=200, schedule="cosine",
        n_checkpoints=16,
    ),
    # one GPU, well under an hour
    "gpu": ICLTrainConfig(
        model=ICLModelConfig(n_layers=12, d_model=256, n_heads=8), batch_size=128, n_steps=20_000,
        lr=3e-4, warmup_steps=500, schedule="cosine", n_checkpoints=20,
    ),
    # the paper: 12 layers, d_model 256, 8 heads, batch 128, 80K steps, Adam 1e-4 (0.9, 0.9999)
    "paper": ICLTrainConfig(),
}


def checkpoint_steps(n_steps: int, n_checkpoints: int) -> list[int]:
    """Step 0 plus log-spaced steps up to ``n_steps`` (unique, increasing)."""
    if n_checkpoints == 2:
        return [0, n_steps]
    steps = np.round(np.geomspace(1, n_steps, n_checkpoints - 1)).astype(int)
    return [0, *[int(s) for s in np.unique(steps)]]


@torch.no_grad()
def error_by_basis(model: ICLTransformer, task: TaskConfig, per_basis: int, seed: int = 4321) -> torch.Tensor:
    """Squared error per basis and context length on fixed held-out sequences: ``(n_bases, K)``."""
    labels = balanced_basis(task, per_basis)
    b = sample_batch(task, len(labels), basis=labels, generator=torch.Generator().manual_seed(seed),
                     device=model.cfg.device)
    err = (model.predict(b.xs, b.ys) - b.ys) ** 2  # (N, K)
    return err.view(task.n_bases, per_basis, task.K).mean(1).cpu()


@dataclass
class TrainResult:
    """In-memory result of :func:`train`: the final model, per-checkpoint records and weights."""

    model: ICLTransformer
    history: pd.DataFrame  # step, basis, n_examples, mse
    cd: pd.DataFrame  # step, layer, concept, cd
    states: dict[int, dict[str, torch.Tensor]]
    seconds: float


def train(cfg: ICLTrainConfig, device: torch.device | str | None = None, progress: bool = True) -> TrainResult:
    """Train a fresh model on the task of ``cfg``; evaluate at :func:`checkpoint_steps`."""
    dev = get_device(device)
    seed_everything(cfg.seed)
    model = build_model(cfg.model, cfg.task.D, cfg.task.K, device=dev, seed=cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    ckpts = set(checkpoint_steps(cfg.n_steps, cfg.n_checkpoints))
    hist, cds, states = [], [], {}
    t0 = time.time()

    def record(step: int) -> None:
        model.eval()
        err = error_by_basis(model, cfg.task, cfg.eval_per_basis)
        for basis in range(cfg.task.n_bases):
            hist.extend({"step": step, "basis": basis, "n_examples": n, "mse": float(err[basis, n])}
                        for n in range(cfg.task.K))
        cd = cd_by_layer(model, cfg.task, cfg.cd_per_concept, cfg.knn_k)
        cd.insert(0, "step", step)
        cds.append(cd)
        states[step] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        model.train()

    bar = tqdm(range(cfg.n_steps + 1), desc="training ICL transformer", disable=progress_disabled(progress))
    for step in bar:
        if step in ckpts:
            record(step)
        if step == cfg.n_steps:
            break
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at(step)
        n_active = active_bases(cfg, step)
        basis = None if n_active == cfg.task.n_bases else torch.randint(n_active, (cfg.batch_size,), generator=gen)
        b = sample_batch(cfg.task, cfg.batch_size, generator=gen, basis=basis, device=dev)
        loss = icl_loss(model.predict(b.xs, b.ys), b.ys)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if step % 25 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return TrainResult(model, pd.DataFrame(hist), pd.concat(cds, ignore_index=True), states,
                       time.time() - t0)


def _model_from_state(cfg: ICLTrainConfig, state: dict[str, torch.Tensor], device) -> ICLTransformer:
    model = build_model(cfg.model, cfg.task.D, cfg.task.K, device=device, seed=cfg.seed)
    model.load_state_dict(state)
    return model.eval()


@dataclass
class ICLRun:
    """A finished, cached training run: records, baselines and checkpoint weights on disk."""

    config: ICLTrainConfig
    path: Path
    history: pd.DataFrame
    cd: pd.DataFrame
    baselines: pd.DataFrame
    metrics: dict
    steps: list[int]

    def load_model(self, step: int | None = None, device: torch.device | str | None = None) -> ICLTransformer:
        """The model at checkpoint ``step`` (default: the last)."""
        step = self.steps[-1] if step is None else step
        if step not in self.steps:
            raise ValueError(f"no checkpoint at step {step}; available: {self.steps}")
        state = torch.load(self.path / "checkpoints" / f"step_{step:06d}.pt", map_location="cpu")
        return _model_from_state(self.config, state, get_device(device))


def run_config(scale: str | None = None, variant: str | None = None, **overrides) -> ICLTrainConfig:
    """The :data:`TRAIN_PRESETS` entry for ``scale`` with overrides applied.

    ``variant=None`` keeps the preset's own task; a name (see :meth:`TaskConfig.variant`) swaps in
    that task, with the preset's ``K`` and noise."""
    cfg = pick(TRAIN_PRESETS, scale)
    if variant is not None:
        cfg = replace(cfg, task=TaskConfig.variant(variant, K=cfg.task.K, noise_std=cfg.task.noise_std))
    return replace(cfg, **overrides)


def summarize(history: pd.DataFrame, cd: pd.DataFrame, baselines: pd.DataFrame, K: int) -> dict:
    """Headline numbers of a run (all at the last context position unless said otherwise)."""
    last = history[history.step == history.step.max()]
    first_step, last_step = cd.step.min(), cd.step.max()
    mean_cd = cd[cd.concept == "mean"]
    b = baselines[baselines.n_examples == K - 1].set_index("method").mse
    out = {
        "final_mse_at_K": float(last[last.n_examples == K - 1].mse.mean()),
        "lasso_mse_at_K": float(b.filter(like="LASSO").iloc[0]),
        "ridge_mse_at_K": float(b.filter(like="ridge").iloc[0]),
        "basis_ls_mse_at_K": float(b["least squares on true basis"]),
        "cd_best_layer_final": float(mean_cd[mean_cd.step == last_step].cd.max()),
        # layer L = blocks.L.hook_resid_post, -1 = the embeddings
        "cd_best_layer_index": int(mean_cd[mean_cd.step == last_step].set_index("layer").cd.idxmax()),
        "cd_best_layer_first": float(mean_cd[mean_cd.step == first_step].cd.max()),
        "one_step_gd_mse_at_K": float(b["one GD step on true basis"]),
    }
    return out


def concept_onsets(history: pd.DataFrame, cd: pd.DataFrame, layer: int, n_examples: int,
                   min_drop: float = 0.3, min_rise: float = 0.1,
                   agnostic: float | None = None) -> pd.DataFrame:
    """Per concept: when its error fell and when its CD rose, and whether together.

    ``error_onset`` is the first checkpoint at which ``-log10`` of the error with ``n_examples``
    examples has covered half of its rise (None if it never falls by ``min_drop`` decades, i.e.
    a factor of 2 for 0.3); ``cd_onset`` the same for the concept's CD at ``layer``
    (``blocks.{layer}.hook_resid_post``) with ``min_rise``
    (:func:`llmfeatures.icl.emergence.onset`).  ``gap`` counts checkpoints from the CD onset to
    the error onset (positive: CD first); ``together`` is true when they are at most one
    checkpoint apart.  Columns ``concept, error_onset, cd_onset, gap, together``.

    Part of an error's fall needs no concept at all (from predicting zero down to what ridge or
    LASSO reach without knowing the basis).  With ``agnostic``, the error of the best
    concept-agnostic baseline at ``n_examples``, three more columns time the part that does:
    ``below_agnostic``, the first checkpoint from which the error stays below ``agnostic``
    (None if it never gets there), and ``gap_agnostic`` / ``together_agnostic``, as ``gap`` and
    ``together`` but for ``below_agnostic`` against ``cd_onset``.
    """
    from llmfeatures.icl.emergence import onset

    steps = sorted(history.step.unique())

    def apart(a, b):
        return None if a is None or b is None else steps.index(a) - steps.index(b)

    rows = []
    for basis, g in history[history.n_examples == n_examples].groupby("basis"):
        g = g.sort_values("step")
        c = cd[(cd.layer == layer) & (cd.concept == str(basis))].sort_values("step")
        e_on = onset(g.step, -np.log10(g.mse.clip(lower=1e-12)), min_drop)
        c_on = onset(c.step, c.cd, min_rise)
        gap = apart(e_on, c_on)
        row = {"concept": int(basis), "error_onset": e_on, "cd_onset": c_on, "gap": gap,
               "together": gap is not None and abs(gap) <= 1}
        if agnostic is not None:
            above = np.flatnonzero(g.mse.to_numpy() >= agnostic)
            last_above = above[-1] if len(above) else -1
            below = None if last_above == len(g) - 1 else int(g.step.to_numpy()[last_above + 1])
            gap_a = apart(below, c_on)
            row.update({"below_agnostic": below, "gap_agnostic": gap_a,
                        "together_agnostic": gap_a is not None and abs(gap_a) <= 1})
        rows.append(row)
    return pd.DataFrame(rows)


def _load_tables(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return (pd.read_csv(folder / "history.csv"), pd.read_csv(folder / "cd.csv", dtype={"concept": str}),
            pd.read_csv(folder / "baselines.csv"))


def _weight_steps(folder: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (folder / "checkpoints").glob("step_*.pt"))


def trained_run(
    scale: str | None = None,
    variant: str | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    shipped: bool = True,
    **overrides,
) -> ICLRun:
    """Train (or load from the cache) the run for ``scale`` and task ``variant``.

    When a run with exactly this configuration ships with the package (:data:`SHIPPED_RUNS`,
    the ``book`` run) and ``shipped`` is true, it is loaded from the package data instead, after
    its files are checked against their recorded SHA-256 checksums.  ``shipped=False`` trains it
    here (into the cache), as :func:`retrain_shipped` does.
    """
    scale = get_scale(scale)
    cfg = run_config(scale, variant, **overrides)
    if shipped:
        run = shipped_run(scale)
        if run is not None and run.config == cfg:
            return run
    art = ArtifactDir("icl", scale, {"train": asdict(cfg)}, version=ICL_VERSION)

    def build_baselines(folder: Path) -> list[str]:
        df = baseline_curves(cfg.task, n_seqs=1000 if scale != "ci" else 100, device="cpu")
        with atomic_path(folder / "baselines.csv") as p:
            df.to_csv(p, index=False)
        return ["baselines.csv"]

    def build_train(folder: Path) -> list[str]:
        res = train(cfg, device=device, progress=progress)
        (folder / "checkpoints").mkdir(exist_ok=True)
        files = []
        for step, state in res.states.items():
            rel = f"checkpoints/step_{step:06d}.pt"
            with atomic_path(folder / rel) as p:
                torch.save(state, p)
            files.append(rel)
        for name, df in (("history.csv", res.history), ("cd.csv", res.cd)):
            with atomic_path(folder / name) as p:
                df.to_csv(p, index=False)
            files.append(name)
        with atomic_path(folder / "timing.json") as p:
            p.write_text(json.dumps({"train_seconds": res.seconds, "device": str(res.model.cfg.device),
                                     "torch_threads": torch.get_num_threads()}))
        return [*files, "timing.json"]

    art.stage("baselines", build_baselines)
    art.stage("train", build_train)
    history, cd, baselines = _load_tables(art.path)
    metrics = {**summarize(history, cd, baselines, cfg.task.K),
               **json.loads((art.path / "timing.json").read_text())}
    if any(art.metrics.get(k) != v for k, v in metrics.items()):
        art.add_metrics(**metrics)
    return ICLRun(cfg, art.path, history, cd, baselines, dict(art.metrics), _weight_steps(art.path))


# --------------------------------------------------------------------------------------------
# the run shipped with the package
# --------------------------------------------------------------------------------------------
SHIPPED_ROOT = Path(__file__).parent / "data"
SHIPPED_RUNS: dict[str, str] = {"book": "book_run"}  # scale -> folder under SHIPPED_ROOT
SHIPPED_MANIFEST = "manifest.json"
RETRAIN_COMMAND = "python benchmarks/icl_train.py --scale book --retrain-shipped --threads 1"


def _config_from_dict(d: dict) -> ICLTrainConfig:
    task = dict(d["task"])
    if task.get("basis_probs") is not None:
        task["basis_probs"] = tuple(task["basis_probs"])
    return ICLTrainConfig(
        **{**d, "task": TaskConfig(**task), "model": ICLModelConfig(**d["model"]),
           "betas": tuple(d["betas"]), "curriculum": tuple(tuple(c) for c in d["curriculum"])}
    )


def verify_shipped(folder: Path) -> dict:
    """Check every file of a shipped run against the SHA-256 in its manifest; return the manifest.

    Raises :class:`~llmfeatures.cache.CacheCorruptError` naming the first file that is missing
    or differs (reinstall the package, or rebuild the run with :data:`RETRAIN_COMMAND`).
    """
    path = Path(folder) / SHIPPED_MANIFEST
    if not path.is_file():
        raise CacheCorruptError(f"{folder} has no {SHIPPED_MANIFEST}; reinstall llmfeatures or run "
                                f"`{RETRAIN_COMMAND}`.")
    manifest = json.loads(path.read_text())
    for rel, digest in manifest["sha256"].items():
        f = Path(folder) / rel
        if not f.is_file() or sha256_file(f) != digest:
            raise CacheCorruptError(
                f"shipped ICL run file {f} is {'missing' if not f.is_file() else 'altered'} (its "
                f"SHA-256 differs from {path}); reinstall llmfeatures, or retrain it with "
                f"`{RETRAIN_COMMAND}`, or pass shipped=False to train a run of your own."
            )
    return manifest


def shipped_run(scale: str | None = None, root: Path | None = None) -> ICLRun | None:
    """The run shipped as package data for ``scale`` (None when that scale ships none), checked
    against its checksums (:func:`verify_shipped`).  Its history and CD table cover every
    checkpoint; weights are kept for a few (``run.steps``)."""
    scale = get_scale(scale)
    if scale not in SHIPPED_RUNS:
        return None
    folder = Path(root or SHIPPED_ROOT) / SHIPPED_RUNS[scale]
    if not folder.is_dir():
        return None
    manifest = verify_shipped(folder)
    cfg = _config_from_dict(manifest["config"])
    history, cd, baselines = _load_tables(folder)
    metrics = {**summarize(history, cd, baselines, cfg.task.K), "train_seconds": manifest["train_seconds"],
               "device": manifest["device"], "torch_threads": manifest["torch_threads"], "shipped": True}
    return ICLRun(cfg, folder, history, cd, baselines, metrics, _weight_steps(folder))


def export_shipped(run: ICLRun, dest: Path, weight_steps: list[int], command: str) -> Path:
    """Write ``run`` as a shipped run at ``dest``: its tables, the weights of ``weight_steps``
    and a manifest (configuration, command, timing, versions, SHA-256 of every file).  The
    folder is written next to ``dest`` and renamed onto it, so a failed export leaves the old
    one in place."""
    import platform

    missing = sorted(set(weight_steps) - set(run.steps))
    if missing:
        raise ValueError(f"the run has no weights at steps {missing}; available: {run.steps}")
    with atomic_path(dest) as tmp:
        (tmp / "checkpoints").mkdir(parents=True)
        files = ["history.csv", "cd.csv", "baselines.csv"]
        for name in files:
            (tmp / name).write_bytes((run.path / name).read_bytes())
        for step in weight_steps:
            rel = f"checkpoints/step_{step:06d}.pt"
            (tmp / rel).write_bytes((run.path / rel).read_bytes())
            files.append(rel)
        timing = json.loads((run.path / "timing.json").read_text())
        manifest = {
            "config": asdict(run.config),
            "command": command,
            "seed": run.config.seed,
            "train_seconds": timing["train_seconds"],
            "device": timing.get("device", "cpu"),
            "torch_threads": timing.get("torch_threads"),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "sha256": {rel: sha256_file(tmp / rel) for rel in files},
        }
        (tmp / SHIPPED_MANIFEST).write_text(json.dumps(manifest, indent=1))
    return Path(dest)


def retrain_shipped(scale: str = "book", device: torch.device | str | None = None,
                    n_weights: int = 4) -> Path:
    """Retrain the shipped run of ``scale`` from scratch (into the cache) and export it into the
    package data, keeping the weights of the first checkpoint and of the last ``n_weights - 1``
    (the checkpoints are log-spaced, so the last few span most of the training, where the
    concepts separate).  This is what :data:`RETRAIN_COMMAND` runs."""
    if scale not in SHIPPED_RUNS:
        raise ValueError(f"no run ships for scale {scale!r}; shipped scales: {sorted(SHIPPED_RUNS)}")
    run = trained_run(scale, device=device, shipped=False)
    return export_shipped(run, SHIPPED_ROOT / SHIPPED_RUNS[scale], shipped_weight_steps(run.steps, n_weights),
                          RETRAIN_COMMAND)


def shipped_weight_steps(steps: list[int], n_weights: int = 4) -> list[int]:
    """The checkpoints whose weights a shipped run keeps: the first and the last ``n_weights - 1``."""
    if n_weights < 2:
        raise ValueError(f"n_weights must be >= 2 (the first and the last checkpoint), got {n_weights}")
    return sorted({steps[0], *steps[-(n_weights - 1):]})
