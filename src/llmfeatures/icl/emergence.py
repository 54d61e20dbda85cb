"""Concept encoding emerging in a language model: ICL accuracy and CD over the organism's training.

At every saved training checkpoint of the organism (:func:`llmfeatures.organism.
organism_checkpoints`), :func:`icl_over_training` measures, on the few-shot families whose tasks
share their inputs (:func:`llmfeatures.icl.lm.shared_input_families`):

- greedy exact-match ICL accuracy per task (:func:`llmfeatures.icl.lm.icl_accuracy`), and
- Concept Decodability per family and layer with its input-only baseline
  (:func:`llmfeatures.icl.lm.cd_with_input_baseline`).

The result is cached (:class:`~llmfeatures.cache.ArtifactDir`, kind ``"icl_lm"``, atomic writes)
under a hash of the preset and of the organism's cache folder, so a rebuilt organism is measured
again.  :func:`onset` and :func:`co_emergence` turn the curves into the step where each quantity
rises.  Layers follow the package's convention: ``L`` is ``blocks.L.hook_resid_post``, ``-1`` the
embeddings (``blocks.0.hook_resid_pre``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from llmfeatures.cache import ArtifactDir, atomic_path
from llmfeatures.config import get_scale, pick, progress_disabled

EMERGENCE_VERSION = 1


@dataclass(frozen=True)
class EmergencePreset:
    """Sizes of the over-training measurement at one scale."""

    n_prompts: int  # prompts per task at every checkpoint
    n_shots: int = 4  # demonstrations per prompt (the paper's default)
    min_rise: float = 0.1  # a curve rising less than this has no onset
    seed: int = 0


EMERGENCE_PRESETS: dict[str, EmergencePreset] = {
    "ci": EmergencePreset(n_prompts=12),
    "book": EmergencePreset(n_prompts=40),
    "gpu": EmergencePreset(n_prompts=100),
    "paper": EmergencePreset(n_prompts=100),
}


def emergence_preset(scale: str | None = None) -> EmergencePreset:
    """The :class:`EmergencePreset` for ``scale`` (default: the scale in force)."""
    return pick(EMERGENCE_PRESETS, scale)


@dataclass
class Emergence:
    """Measurements over training.

    ``accuracy``: columns ``step, family, task, accuracy, n``; ``cd``: columns ``step, family,
    n_shots, layer, concept, cd, cd_input`` (see :func:`llmfeatures.icl.lm.cd_with_input_baseline`);
    ``chance``: ``{family: 1 / number of tasks}``.
    """

    accuracy: pd.DataFrame
    cd: pd.DataFrame
    chance: dict[str, float]

    @property
    def steps(self) -> list[int]:
        return sorted(int(s) for s in self.accuracy.step.unique())

    def summary(self) -> pd.DataFrame:
        """Per step and family: mean accuracy over tasks, the best block layer's mean CD (layers
        ``L >= 0``), that layer, the input-only CD there, the CD at the embeddings (which see only
        the prompt's length) and chance.  Columns ``step, family, accuracy, cd, best_layer,
        cd_input, cd_length, chance``."""
        from llmfeatures.icl.lm import baseline_table

        frames = [baseline_table(g.drop(columns="step")).assign(step=step)
                  for step, g in self.cd.groupby("step", sort=True)]
        out = pd.concat(frames, ignore_index=True).rename(columns={"layer": "best_layer"})
        acc = self.accuracy.groupby(["step", "family"], sort=False).accuracy.mean().reset_index()
        out = out.merge(acc, on=["step", "family"])
        out["chance"] = out.family.map(self.chance)
        return out[["step", "family", "accuracy", "cd", "best_layer", "cd_input", "cd_length",
                    "chance"]]


def onset(steps: Sequence[int], values: Sequence[float], min_rise: float = 0.1) -> int | None:
    """The first step at which ``values`` has covered half of its rise from the first step to
    its maximum; ``None`` if the curve never rises by ``min_rise`` above its first value."""
    steps, values = np.asarray(steps), np.asarray(values, float)
    if steps.shape != values.shape or len(steps) == 0:
        raise ValueError(f"steps and values must be non-empty and alike; got {steps.shape}, "
                         f"{values.shape}")
    order = np.argsort(steps)
    steps, values = steps[order], values[order]
    rise = values.max() - values[0]
    if rise < min_rise:
        return None
    return int(steps[np.argmax(values >= values[0] + rise / 2)])


def co_emergence(result: Emergence, min_rise: float | None = None) -> pd.DataFrame:
    """Onsets per family of accuracy and of best-layer CD, and how they relate.

    Columns ``family, accuracy_onset, cd_onset, gap, relation``: ``gap`` counts checkpoints
    from the CD onset to the accuracy onset (positive: CD first); ``relation`` is ``"together"``
    (at most one checkpoint apart), ``"CD first"``, ``"accuracy first"``, ``"only CD rises"``,
    ``"only accuracy rises"`` or ``"neither rises"``.
    """
    min_rise = emergence_preset().min_rise if min_rise is None else min_rise
    s = result.summary()
    steps = result.steps
    rows = []
    for family, g in s.groupby("family", sort=False):
        a = onset(g.step, g.accuracy, min_rise)
        c = onset(g.step, g.cd, min_rise)
        gap = None if a is None or c is None else steps.index(a) - steps.index(c)
        if gap is None:
            relation = {(True, True): "neither rises", (True, False): "only CD rises",
                        (False, True): "only accuracy rises"}[(a is None, c is None)]
        else:
            relation = "together" if abs(gap) <= 1 else "CD first" if gap > 0 else "accuracy first"
        rows.append({"family": family, "accuracy_onset": a, "cd_onset": c, "gap": gap,
                     "relation": relation})
    return pd.DataFrame(rows)


def measure_checkpoint(model, world, preset: EmergencePreset, families: Sequence[str] | None = None,
                       progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accuracy per task and CD (with input baseline) per family and layer of one model.

    Returns ``(accuracy, cd)`` as in :class:`Emergence`, without the ``step`` column.
    """
    import warnings

    from llmfeatures.icl import lm

    prompts = lm.shared_input_prompts(world, families, preset.n_shots, preset.n_prompts,
                                      preset.seed)
    with warnings.catch_warnings():  # long pos prompts lose their first demonstrations
        warnings.filterwarnings("ignore", message=".*truncate=True.*")
        acc = lm.icl_accuracy(model, prompts, truncate=True, progress=progress)
        cd = lm.cd_with_input_baseline(model, prompts, truncate=True, progress=progress)
    return acc, cd


def icl_over_training(
    scale: str | None = None,
    families: Sequence[str] | None = None,
    steps: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    **overrides,
) -> Emergence:
    """ICL accuracy and CD at every organism checkpoint (or ``steps``), cached per scale.

    ``overrides`` change fields of the scale's :class:`EmergencePreset`.  The first call measures
    (about 15 s per checkpoint at the ``book`` scale on one CPU thread); later calls load.
    """
    from llmfeatures import load_world
    from llmfeatures.organism.pipeline import organism_checkpoints, organism_dir, organism_model

    scale = get_scale(scale)
    preset = EmergencePreset(**{**asdict(emergence_preset(scale)), **overrides})
    all_steps = organism_checkpoints(scale)
    steps = all_steps if steps is None else sorted(int(s) for s in steps)
    missing = sorted(set(steps) - set(all_steps))
    if missing:
        raise ValueError(f"no organism checkpoint at steps {missing}; saved: {all_steps}")
    world = load_world(scale=scale)
    from llmfeatures.icl.lm import shared_input_families

    fams = shared_input_families(world)
    families = list(fams) if families is None else list(families)
    config = {"preset": asdict(preset), "families": families, "steps": list(steps),
              "organism": Path(organism_dir(scale).path).name}
    art = ArtifactDir("icl_lm", scale, config, version=EMERGENCE_VERSION)

    def build(folder: Path) -> list[str]:
        accs, cds = [], []
        for step in tqdm(steps, desc="checkpoints", disable=progress_disabled(progress)):
            model = organism_model(scale, checkpoint=step, device=device)
            acc, cd = measure_checkpoint(model, world, preset, families)
            accs.append(acc.assign(step=step))
            cds.append(cd.assign(step=step))
        for name, frames in (("accuracy.csv", accs), ("cd.csv", cds)):
            df = pd.concat(frames, ignore_index=True)
            df = df[["step", *[c for c in df.columns if c != "step"]]]
            with atomic_path(folder / name) as p:
                df.to_csv(p, index=False)
        return ["accuracy.csv", "cd.csv"]

    art.stage("measure", build, version=EMERGENCE_VERSION)
    accuracy = pd.read_csv(art.path / "accuracy.csv")
    cd = pd.read_csv(art.path / "cd.csv", dtype={"concept": str})
    return Emergence(accuracy, cd, {f: 1 / len(fams[f]) for f in families})
