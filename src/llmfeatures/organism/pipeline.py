"""Build, cache and load the organism: world -> tokenizer -> model -> SAEs -> evaluation.

:func:`build_organism` runs the stages in order, each recorded in an
:class:`llmfeatures.cache.ArtifactDir` (``<cache>/organism/<scale>-<hash>/``) with the checksums of
its files.  Every file is written atomically, so an interrupted build leaves no half-written
file; run again, it resumes after the last finished stage.  A file whose checksum no longer
matches is reported, its stage rebuilt, and every stage that depends on it rebuilt too.

Stages and files (relative to the cache folder):

==============  =====================================================================
``world``       ``corpus.json`` (the train/val texts the model sees)
``tokenizer``   ``tokenizer.json``
``model``       ``model.pt`` (final state_dict), ``checkpoints/step_XXXXXX.pt``,
                ``loss.json``, ``loss.png``
``sae_L<l>``    ``saes/layer_<l>/`` (sae-lens format), one stage per layer
``eval``        ``eval.json``; the figures are also the manifest's metrics
==============  =====================================================================

The public functions (``organism_model``, ``organism_sae``, ``organism_checkpoints``,
``organism_info``) build whatever is missing and load the rest from the cache.

Code versions (see :mod:`llmfeatures.cache`): :data:`ORGANISM_VERSION` is part of the folder's
hash; bump it when a change alters what the world, tokenizer, model or SAE stages produce (the
world generator, the training loop, a file format).  :data:`STAGE_VERSIONS` versions single
stages; bump ``"eval"`` when only the evaluation changes, so that only it is recomputed.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer

from llmfeatures.cache import ArtifactDir, CacheCorruptError, atomic_path, atomic_write_json
from llmfeatures.config import get_device, get_scale, pick, seed_everything
from llmfeatures.organism.sae import SAETrainConfig, load_sae_folder, save_sae, train_sae
from llmfeatures.organism.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer
from llmfeatures.organism.train import (
    ModelConfig,
    TrainConfig,
    hooked_config,
    pack_documents,
    plot_loss,
    train_model,
)

ORGANISM_VERSION = 7  # 2: second generation (attributes, word game, formal/prose groups);
# 3: echoes; 4: SAE batches of 512 tokens (256 for the wide middle-layer SAE);
# 5-6: signs, cards, 20 people, small embedding init (book); 7: word-game comparisons and sorted lists
STAGE_VERSIONS: dict[str, int] = {"eval": 1}  # stages not listed are at version 1


def stage_version(stage: str) -> int:
    """The code version of a stage (``sae_L<l>`` stages share the ``"sae"`` entry)."""
    return STAGE_VERSIONS.get("sae" if stage.startswith("sae_L") else stage, 1)


@dataclass(frozen=True)
class OrganismConfig:
    """Everything that decides the organism besides its world (which has its own presets).

    ``cpu_threads`` fixes the number of torch threads used when building on the CPU (0: torch's
    default); the same thread count gives bit-identical weights.  On an idle 2-core machine two
    threads are the faster choice for the book organism (``benchmarks/organism_threads.py``:
    model 3.1k -> 6.0k tokens/s, wide SAE 2.8k -> 4.7k tokens/s from 1 to 2 threads), so the
    ``book`` preset uses 2.  On a machine shared with other jobs two threads oversubscribe the
    cores and can be several times slower (measured beside two single-threaded jobs: 4.5k
    tokens/s with 1 thread, 0.7k with 2); the small ``ci`` build keeps 1.
    """

    seed: int = 0
    vocab_size: int = 2048
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sae: SAETrainConfig = field(default_factory=SAETrainConfig)
    n_fewshot_prompts: int = 20
    n_probe_docs: int = 600
    cpu_threads: int = 1
    middle_sae: SAETrainConfig | None = None

    @property
    def middle_layer(self) -> int:
        """The middle layer ``(n_layers - 1) // 2`` (``blocks.L.hook_resid_post`` after half of
        the blocks, rounded down): where chapters 3-5 look, and where ``middle_sae`` applies."""
        return (self.model.n_layers - 1) // 2

    def sae_config(self, layer: int) -> SAETrainConfig:
        """How the SAE of ``layer`` is trained: ``middle_sae`` (wider, more tokens) on the middle
        layer when set, ``sae`` elsewhere."""
        if layer == self.middle_layer and self.middle_sae is not None:
            return self.middle_sae
        return self.sae


ORGANISM_PRESETS: dict[str, OrganismConfig] = {
    "ci": OrganismConfig(
        vocab_size=2048,
        model=ModelConfig(n_layers=3, d_model=128, n_heads=4, d_mlp=512, n_ctx=128),
        train=TrainConfig(n_steps=500, batch_size=16, lr=3e-3, eval_every=100, eval_rows=32),
        sae=SAETrainConfig(expansion=4, architecture="topk", k=16, training_tokens=250_000,
                           batch_tokens=512, lr=3e-3, dead_window=50),
        n_fewshot_prompts=10,
        n_probe_docs=300,
    ),
    "book": OrganismConfig(
        vocab_size=2048,
        model=ModelConfig(n_layers=6, d_model=128, n_heads=4, d_mlp=512, n_ctx=128, embed_init_scale=0.05),
        # 1500 steps (version 7): at 1000 the pair-level bars were marginal and seed-dependent
        # (layer-2 parallelism 6/10, facts 0.88-0.94 over seeds 0 and 1); at 1500, seeds 0 / 1:
        # parallelism 10/8 of 10 words alone, length |r| 0.43/0.41, facts 0.985/0.958, pronouns
        # and probes 1.0; 2.5 more minutes of training on 2 threads
        train=TrainConfig(n_steps=1500, batch_size=24, lr=2e-3, eval_every=100),
        # batches of 512 tokens: the same tokens in four times the optimiser steps keep latents
        # alive (measured on layer 0 of a book-size model: 21% dead with batches of 2048, 4% with
        # 512, in the same 48 CPU seconds)
        sae=SAETrainConfig(expansion=8, architecture="topk", k=16, training_tokens=1_200_000,
                           batch_tokens=512, lr=2e-3, dead_window=50),
        # the lobes of chapter 4 show in the decoder geometry only with a wide SAE (measured:
        # AMI 0.02-0.04 with 1024 latents, 0.22 with 4096); a wide SAE needs more tokens to
        # keep its latents alive, and smaller batches still (1.5M tokens, dead: 59% with batches
        # of 2048 on the version-3 organism; 23% with 512, 17% with 256 and with 128 on a
        # book-size model, at 390-450 CPU seconds)
        # 2M tokens: 12.2% dead latents (1.5M: 16.2%), measured on the version-4 book model;
        # version 6 (signs and cards): 24.7% dead with 2M, 14.0% with 3.5M (layer 0: 17.9% with
        # 0.7M tokens, 11.5% with 1.2M); whole build 730 s -> 1016 s on an idle machine
        middle_sae=SAETrainConfig(expansion=32, architecture="topk", k=16,
                                  training_tokens=3_500_000, batch_tokens=256, lr=2e-3,
                                  dead_window=50),
        cpu_threads=2,
    ),
    "gpu": OrganismConfig(
        vocab_size=4096,
        model=ModelConfig(n_layers=6, d_model=256, n_heads=8, d_mlp=1024, n_ctx=256),
        train=TrainConfig(n_steps=6000, batch_size=64, lr=1e-3, eval_every=250),
        sae=SAETrainConfig(expansion=16, architecture="topk", k=32, training_tokens=20_000_000,
                           batch_tokens=4096, lr=1e-3, dead_window=200),
        cpu_threads=0,
    ),
    "paper": OrganismConfig(
        vocab_size=8192,
        model=ModelConfig(n_layers=8, d_model=512, n_heads=8, d_mlp=2048, n_ctx=256),
        train=TrainConfig(n_steps=20000, batch_size=64, lr=6e-4, eval_every=500),
        sae=SAETrainConfig(expansion=16, architecture="topk", k=32, training_tokens=100_000_000,
                           batch_tokens=4096, lr=5e-4, dead_window=500),
        cpu_threads=0,
    ),
}


def organism_config(scale: str | None = None) -> OrganismConfig:
    """The organism preset for ``scale`` (default: the scale in force)."""
    return pick(ORGANISM_PRESETS, scale)


def _world_config(scale: str):
    from llmfeatures.organism.world import WORLD_PRESETS

    return pick(WORLD_PRESETS, scale)


def middle_layer(scale: str | None = None) -> int:
    """The organism's middle layer for ``scale`` (:attr:`OrganismConfig.middle_layer`)."""
    return organism_config(scale).middle_layer


def organism_dir(scale: str | None = None, config: OrganismConfig | None = None) -> ArtifactDir:
    """The cache folder of the organism for ``scale`` (its hash covers organism and world)."""
    scale = get_scale(scale)
    config = config or organism_config(scale)
    return ArtifactDir("organism", scale, {"organism": asdict(config),
                                           "world": asdict(_world_config(scale))},
                       version=ORGANISM_VERSION)


def stage_names(config: OrganismConfig) -> list[str]:
    """The stages in build order."""
    saes = [f"sae_L{layer}" for layer in range(config.model.n_layers)]
    return ["world", "tokenizer", "model", *saes, "eval"]


def _downstream(stage: str, config: OrganismConfig) -> list[str]:
    """Stages whose outputs depend on ``stage`` (they must be rebuilt after it)."""
    names = stage_names(config)
    if stage.startswith("sae_L"):
        return ["eval"]
    if stage == "eval":
        return []
    return names[names.index(stage) + 1 :]


@contextmanager
def _cpu_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (0: leave the setting alone)."""
    old = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def _build_lock(art: ArtifactDir) -> Iterator[None]:
    """One builder at a time per cache folder (two notebooks building at once wait in turn)."""
    from filelock import FileLock

    with FileLock(str(art.path / ".build.lock")):
        # another process may have finished stages while we waited
        art.manifest = art._read_manifest()
        # temporaries of a build that was killed (atomic_path names them .<name>.<random>.tmp)
        for stale in [*art.path.glob(".*.tmp"), *art.path.glob("*/.*.tmp")]:
            shutil.rmtree(stale, ignore_errors=True)
        yield


class _Builder:
    """The stage functions; each writes its files atomically and returns their relative paths."""

    def __init__(self, art: ArtifactDir, config: OrganismConfig, scale: str, device: torch.device):
        self.art, self.config, self.scale, self.device = art, config, scale, device
        self._world = None
        self.times: dict[str, float] = {}

    @property
    def world(self):
        if self._world is None:
            from llmfeatures.organism.world import build_world

            self._world = build_world(_world_config(self.scale))
        return self._world

    def corpus(self) -> dict[str, list[str]]:
        return json.loads((self.art.path / "corpus.json").read_text())

    def rows(self, split: str) -> torch.Tensor:
        tok = load_tokenizer(self.art.path / "tokenizer.json")
        return pack_documents(self.corpus()[split], tok, self.config.model.n_ctx)

    # -- stages --------------------------------------------------------------------------
    def build_world(self, folder: Path) -> list[str]:
        corpus = {"train": self.world.texts("train"), "val": self.world.texts("val")}
        atomic_write_json(folder / "corpus.json", corpus)
        return ["corpus.json"]

    def build_tokenizer(self, folder: Path) -> list[str]:
        tok = train_tokenizer(self.corpus()["train"], vocab_size=self.config.vocab_size)
        with atomic_path(folder / "tokenizer.json") as tmp:
            save_tokenizer(tok, tmp)
        return ["tokenizer.json"]

    def build_model(self, folder: Path) -> list[str]:
        cfg = self.config
        tok = load_tokenizer(folder / "tokenizer.json")
        train_rows, val_rows = self.rows("train"), self.rows("val")
        seed_everything(cfg.seed)
        model = HookedTransformer(hooked_config(cfg.model, len(tok), cfg.seed), tokenizer=tok)
        with torch.no_grad():
            model.embed.W_E.mul_(cfg.model.embed_init_scale)
        model.to(self.device, print_details=False)
        with atomic_path(folder / "checkpoints") as ck:
            ck.mkdir()

            def save_checkpoint(step: int, state: dict[str, torch.Tensor]) -> None:
                torch.save(state, ck / f"step_{step:06d}.pt")

            history = train_model(model, train_rows, val_rows, cfg.train, seed=cfg.seed,
                                  on_checkpoint=save_checkpoint)
        with atomic_path(folder / "model.pt") as tmp:
            torch.save({k: v.cpu() for k, v in model.state_dict().items()}, tmp)
        history["n_train_tokens"] = int(train_rows.numel())
        history["tokens_seen"] = int(cfg.train.n_steps * cfg.train.batch_size * cfg.model.n_ctx)
        atomic_write_json(folder / "loss.json", history)
        with atomic_path(folder / "loss.png") as tmp:
            plot_loss(history, tmp, title=f"Organism ({self.scale}) training loss")
        self.art.add_metrics(final_train_loss=history["loss"][-1],
                             final_val_loss=history["val_loss"][-1])
        return ["model.pt", "checkpoints", "loss.json", "loss.png"]

    def build_sae(self, layer: int, folder: Path) -> list[str]:
        model = load_model_from(self.art, self.config, device=self.device)
        sae = train_sae(model, self.rows("train"), layer, self.config.sae_config(layer),
                        seed=self.config.seed + layer, device=self.device)
        rel = f"saes/layer_{layer}"
        with atomic_path(folder / rel) as tmp:
            save_sae(sae, tmp)
        return [rel]

    def build_eval(self, folder: Path) -> list[str]:
        from llmfeatures.organism.evaluate import evaluate_organism

        model = load_model_from(self.art, self.config, device=self.device)
        saes = {layer: load_sae_folder(folder / f"saes/layer_{layer}", model, device=self.device)
                for layer in range(self.config.model.n_layers)}
        metrics = evaluate_organism(model, self.world, saes, sae_rows=self.rows("val"),
                                    n_fewshot_prompts=self.config.n_fewshot_prompts,
                                    n_probe_docs=self.config.n_probe_docs, seed=self.config.seed)
        atomic_write_json(folder / "eval.json", metrics)
        self.art.add_metrics(**metrics)
        return ["eval.json"]

    def run(self, stage: str) -> bool:
        """Build ``stage`` unless it is done by the current code; first forget every stage that
        depends on it."""
        version = stage_version(stage)
        if self.art.is_done(stage, version):
            return False
        for later in _downstream(stage, self.config):
            if later in self.art.manifest["stages"]:
                self.art.forget(later)
        if stage.startswith("sae_L"):
            layer = int(stage.removeprefix("sae_L"))

            def fn(folder: Path) -> list[str]:
                return self.build_sae(layer, folder)
        else:
            fn = getattr(self, f"build_{stage}")
        t0, c0 = time.perf_counter(), time.process_time()
        with _cpu_threads(self.config.cpu_threads if self.device.type == "cpu" else 0):
            self.art.stage(stage, fn, version=version)
        self.times[stage] = time.perf_counter() - t0
        # CPU seconds of this process: with one thread, about the wall time on an idle machine
        self.art.add_metrics(**{f"time_{stage}_s": self.times[stage],
                                f"cpu_{stage}_s": time.process_time() - c0})
        return True


def _build(scale: str | None, until: str | None = None, force: bool = False,
           device=None) -> ArtifactDir:
    scale = get_scale(scale)
    config = organism_config(scale)
    art = organism_dir(scale, config)
    names = stage_names(config)
    if until is not None and until not in names:
        raise ValueError(f"Unknown stage {until!r}; stages are {names}.")
    with _build_lock(art):
        if force:
            for name in names:
                art.forget(name)
        builder = _Builder(art, config, scale, get_device(device))
        for name in names[: names.index(until) + 1] if until else names:
            builder.run(name)
    return art


def build_organism(scale: str | None = None, *, force: bool = False) -> ArtifactDir:
    """Build every missing stage of the organism for ``scale``; return its cache folder.

    Resumes after the last finished stage; ``force=True`` rebuilds everything.  The quality
    figures are in ``build_organism().metrics``.
    """
    return _build(scale, force=force)


def load_model_from(art: ArtifactDir, config: OrganismConfig, checkpoint: int | None = None,
                    device=None) -> HookedTransformer:
    """Load the final model (or a training ``checkpoint``) from a built cache folder."""
    tok = load_tokenizer(art.path / "tokenizer.json")
    if checkpoint is None:
        path = art.path / "model.pt"
    else:
        steps = _checkpoint_steps(art)
        if checkpoint not in steps:
            raise ValueError(f"No checkpoint at step {checkpoint}; saved steps are {steps}.")
        path = art.path / "checkpoints" / f"step_{checkpoint:06d}.pt"
    device = get_device(device)
    model = HookedTransformer(hooked_config(config.model, len(tok), config.seed), tokenizer=tok,
                              move_to_device=False)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.to(device, print_details=False)
    model.eval()
    return model


def _checkpoint_steps(art: ArtifactDir) -> list[int]:
    return sorted(int(p.stem.removeprefix("step_")) for p in (art.path / "checkpoints").glob("step_*.pt"))


def organism_model(scale: str | None = None, checkpoint: int | None = None,
                   device=None) -> HookedTransformer:
    """The trained organism as a ``HookedTransformer`` with its tokenizer attached.

    Builds world, tokenizer and model if they are missing.  ``checkpoint`` picks a training
    step from :func:`organism_checkpoints` instead of the final weights.
    """
    art = _build(scale, until="model")
    return load_model_from(art, organism_config(scale), checkpoint, device)


def organism_sae(layer: int, scale: str | None = None, device=None):
    """The sae-lens SAE on ``blocks.{layer}.hook_resid_post`` of the organism (built if missing)."""
    config = organism_config(scale)
    if not isinstance(layer, int) or not 0 <= layer < config.model.n_layers:
        raise ValueError(
            f"layer={layer!r} does not exist: the {get_scale(scale)} organism has layers "
            f"0..{config.model.n_layers - 1}."
        )
    art = _build(scale, until=f"sae_L{layer}")
    return load_sae_folder(art.path / f"saes/layer_{layer}", device=str(get_device(device)))


def organism_checkpoints(scale: str | None = None) -> list[int]:
    """Training steps with a saved checkpoint (log-spaced: 0, 16, 32, 64, ..., final)."""
    return _checkpoint_steps(_build(scale, until="model"))


def _recorded(art: ArtifactDir, stage: str) -> bool:
    """``stage`` is in the manifest, well formed and built by the current code version."""
    try:
        return art.stage_version(stage) == stage_version(stage)
    except CacheCorruptError:
        return False


def organism_info(scale: str | None = None) -> dict[str, Any]:
    """What is cached for ``scale``: path, finished stages, file sizes, metrics (builds nothing)."""
    scale = get_scale(scale)
    config = organism_config(scale)
    art = organism_dir(scale, config)
    done = [s for s in stage_names(config) if _recorded(art, s)]
    sizes = {}
    for stage in done:
        for rel in art.stage_files(stage):
            p = art.path / rel
            sizes[rel] = p.stat().st_size if p.exists() else None
    return {
        "scale": scale,
        "path": str(art.path),
        "stages": stage_names(config),
        "stages_done": done,
        "complete": len(done) == len(stage_names(config)),
        "total_bytes": sum(v for v in sizes.values() if v),
        "sizes": sizes,
        "config": art.config,
        "metrics": dict(art.metrics),
    }
