"""When do the final model's features appear?  Each SAE latent of the final model read out
linearly from the residual stream of every training checkpoint.

The residual basis of a checkpoint is not the final model's (the weights rotate while they
train), so a final latent cannot be applied to an earlier checkpoint directly, nor can decoder
directions be compared across checkpoints.  What can be asked is whether the *information* the
latent carries is already there: on the same tokens, a ridge regression (scikit-learn) from the
checkpoint's residual stream to the final latent's activation is fitted on half of the rows and
scored on the other half.  The **presence** of a latent at a checkpoint is the correlation of the
prediction with the true activation on the held-out half: near 1 when the checkpoint represents
the feature linearly, near the random-initialisation value when it does not.  The step-0 model
is the null: what random embeddings already give away about the token.

Layer ``L`` is ``blocks.L.hook_resid_post`` (for both the checkpoints and the final SAE).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from llmfeatures.config import pick, progress_disabled


@dataclass(frozen=True)
class PresenceConfig:
    """How many validation documents are read and when a latent counts as readable.

    ``min_active``: a latent is scored only when it fires on at least this many tokens of each
    half (too rare a latent gives a meaningless correlation).  ``alpha``: the ridge penalty on
    standardised activations.  ``frac`` and ``min_gain`` define an onset (:func:`presence_onsets`).
    """

    n_docs: int = 400
    min_active: int = 20
    alpha: float = 10.0
    frac: float = 0.5
    min_gain: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_docs < 4 or self.min_active < 2:
            raise ValueError(f"need n_docs >= 4 and min_active >= 2, got {self.n_docs}, "
                             f"{self.min_active}")
        if not 0 < self.frac < 1:
            raise ValueError(f"frac must lie in (0, 1), got {self.frac}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be positive, got {self.alpha}")


PRESENCE_PRESETS = {
    "ci": PresenceConfig(n_docs=120, min_active=10),
    "book": PresenceConfig(),
    "gpu": PresenceConfig(n_docs=2000),
    "paper": PresenceConfig(n_docs=2000),
}


def _split_rows(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n_rows)
    return np.sort(order[: n_rows // 2]), np.sort(order[n_rows // 2:])


def _acts(model, rows: torch.Tensor, layer: int) -> torch.Tensor:
    from llmfeatures.organism.sae import residual_activations

    return residual_activations(model, rows, layer).float()


def _column_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching columns of ``a`` and ``b`` ``[n, U]`` -> ``[U]``."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(0) / den, np.nan)


@torch.no_grad()
def feature_presence(
    steps: Sequence[int],
    load: Callable[[int], object],
    final_model,
    sae,
    rows: torch.Tensor,
    layer: int,
    config: PresenceConfig | None = None,
    units: Sequence[int] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Presence of the final SAE latents at every checkpoint.

    Parameters
    ----------
    steps, load:
        Training steps and a function returning the ``HookedTransformer`` of a step (called
        once per step, so only one checkpoint is in memory at a time).
    final_model, sae:
        The final model and its SAE on ``blocks.{layer}.hook_resid_post``.
    rows:
        Token ids ``[n_rows, n_ctx]`` (e.g. packed validation documents); special tokens are
        skipped.  Half the rows (seeded) fit the readout, the other half score it.
    units:
        Latents to score (default: every latent firing on at least ``min_active`` tokens of
        each half).

    Returns
    -------
    DataFrame with columns ``step``, ``unit``, ``presence`` (held-out correlation of the ridge
    prediction with the latent's activation) and ``n_active`` (held-out tokens where it fires).
    """
    config = config or PresenceConfig()
    if rows.ndim != 2 or len(rows) < 4:
        raise ValueError(f"rows must be [n_rows >= 4, n_ctx] token ids, got shape "
                         f"{tuple(rows.shape)}")
    tr, te = _split_rows(len(rows), config.seed)
    rows_tr, rows_te = rows[torch.as_tensor(tr)], rows[torch.as_tensor(te)]
    dev = next(sae.parameters()).device
    target = [sae.encode(_acts(final_model, r, layer).to(dev)).cpu().numpy()
              for r in (rows_tr, rows_te)]
    n_on = [(t > 0).sum(0) for t in target]
    if units is None:
        units = np.flatnonzero((n_on[0] >= config.min_active) & (n_on[1] >= config.min_active))
    units = np.asarray(units, dtype=int)
    if not len(units):
        raise ValueError(f"no latent fires on at least {config.min_active} tokens of each half of "
                         "the rows; pass more rows or lower PresenceConfig.min_active.")
    y_tr, y_te = target[0][:, units], target[1][:, units]
    frames = []
    for step in tqdm(list(steps), desc="checkpoints", disable=progress_disabled(progress)):
        model = load(int(step))
        x_tr, x_te = (_acts(model, r, layer).numpy() for r in (rows_tr, rows_te))
        if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
            raise ValueError(f"checkpoint {step} skips other tokens than the final model: its "
                             "tokenizer must be the final model's.")
        reg = make_pipeline(StandardScaler(), Ridge(alpha=config.alpha)).fit(x_tr, y_tr)
        frames.append(pd.DataFrame({"step": int(step), "unit": units,
                                    "presence": _column_corr(reg.predict(x_te), y_te),
                                    "n_active": n_on[1][units]}))
    return pd.concat(frames, ignore_index=True)


def presence_onsets(table: pd.DataFrame, frac: float = 0.5, min_gain: float = 0.2
                    ) -> pd.DataFrame:
    """Per latent: its presence at the first and the last step, and its onset: the first step at
    which it has covered ``frac`` of the way from the first to the last value (``step_before``
    is the checkpoint before).  Latents that gain less than ``min_gain`` get no onset (NaN):
    present from the start, or never readable.

    Columns ``unit``, ``first``, ``last``, ``gain``, ``onset``, ``step_before``.
    """
    rows = []
    for unit, g in table.sort_values("step").groupby("unit"):
        p = g["presence"].to_numpy(dtype=float)
        st = g["step"].to_numpy()
        first, last = p[0], p[-1]
        onset = before = np.nan
        if np.isfinite(first) and np.isfinite(last) and last - first >= min_gain:
            hit = np.flatnonzero(p >= first + frac * (last - first))
            i = int(hit[0])
            onset, before = float(st[i]), float(st[i - 1]) if i > 0 else np.nan
        rows.append({"unit": int(unit), "first": first, "last": last, "gain": last - first,
                     "onset": onset, "step_before": before})
    return pd.DataFrame(rows, columns=["unit", "first", "last", "gain", "onset", "step_before"])


def skill_onsets(tasks: pd.DataFrame, frac: float = 0.5) -> pd.Series:
    """Per task of a training scan (``step``, ``task``, ``accuracy``): the first step at which the
    accuracy has covered ``frac`` of the way from its first to its last value."""
    out = {}
    for task, g in tasks.sort_values("step").groupby("task"):
        a = g["accuracy"].to_numpy(dtype=float)
        hit = np.flatnonzero(a >= a[0] + frac * (a[-1] - a[0]))
        out[task] = float(g["step"].to_numpy()[hit[0]]) if a[-1] > a[0] and len(hit) else np.nan
    return pd.Series(out, name="onset")


def organism_presence(scale: str | None = None, layer: int | None = None,
                      config: PresenceConfig | None = None, progress: bool = True
                      ) -> pd.DataFrame:
    """:func:`feature_presence` of the organism's SAE latents (default: the middle layer) over
    all its saved checkpoints, the final model last, on validation documents (cached).

    Layer ``L`` is ``blocks.L.hook_resid_post``."""
    from llmfeatures.cache import ArtifactDir, atomic_path
    from llmfeatures.config import get_scale
    from llmfeatures.features.engine import fingerprint_module
    from llmfeatures.loaders import load_sae, load_world
    from llmfeatures.organism import middle_layer, organism_checkpoints, organism_model
    from llmfeatures.organism.train import pack_documents

    scale = get_scale(scale)
    config = config or pick(PRESENCE_PRESETS, scale)
    final = organism_model(scale)
    layer = middle_layer(scale) if layer is None else int(layer)
    steps = organism_checkpoints(scale)
    art = ArtifactDir("emergence", scale, {"presence": asdict(config), "layer": layer,
                                           "steps": steps, "model": fingerprint_module(final)},
                      version=1)

    def build(folder) -> list[str]:
        sae = load_sae("organism", layer, scale=scale, model=final)
        texts = load_world(scale).texts("val")[: config.n_docs]
        rows = pack_documents(texts, final.tokenizer, final.cfg.n_ctx)
        table = feature_presence(steps, lambda s: organism_model(scale, checkpoint=s), final, sae,
                                 rows, layer, config, progress=progress)
        with atomic_path(folder / "presence.csv") as tmp:
            table.to_csv(tmp, index=False)
        return ["presence.csv"]

    art.stage("presence", build)
    return pd.read_csv(art.path / "presence.csv")
