"""Chapter 7 at the paper's scale: a base model and its fine-tuned (chat) version, one SAE.

The standard pair is Gemma-2-2b and Gemma-2-2b-it with the Gemma Scope SAE trained on the base
model (``load_sae("gemma-2-2b", 12, model=base)``).  The chat weights are converted with the
base model's architecture through the loader's offline path::

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from llmfeatures.loaders import load_model, load_sae
    base = load_model("gemma-2-2b", dtype="float16")
    hf_it = AutoModelForCausalLM.from_pretrained("google/gemma-2-2b-it", torch_dtype="float16")
    chat = load_model("gemma-2-2b", hf_model=hf_it, tokenizer=base.tokenizer, dtype="float16")
    sae = load_sae("gemma-2-2b", 12, model=base)
    fit, drift = compare_pair(base, chat, sae, 12, texts)

:func:`compare_pair` needs no ground truth: it reports how well the SAE fits each model (FVE, L0,
dead latents, loss recovered) and, per latent, the correlation of its activations on the same
tokens, so the most-drifted latents can be read with their dashboards.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from llmfeatures.finetune.analysis import column_correlation, latent_activations, sae_fit
from llmfeatures.organism.train import pack_documents


def texts_to_rows(model, texts: Sequence[str], n_ctx: int | None = None) -> torch.Tensor:
    """Pack ``texts`` into token rows ``[n_rows, n_ctx]`` (default: the model's context,
    at most 1024 tokens), each starting with BOS."""
    n_ctx = min(n_ctx or model.cfg.n_ctx, 1024)
    return pack_documents(list(texts), model.tokenizer, n_ctx)


def compare_pair(base, tuned, sae, layer: int, texts: Sequence[str], n_ctx: int | None = None,
                 loss_rows: int = 16) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same ``sae`` (trained on ``base``, layer ``blocks.layer.hook_resid_post``) on ``base``
    and on ``tuned`` over ``texts``.

    Returns ``fit`` (one row per model: ``fve``, ``l0``, ``dead_frac``, ``loss_recovered``) and
    ``drift`` (one row per latent alive on either model: ``corr`` of its activations on the same
    tokens, ``drift = 1 - corr``, ``freq_base``, ``freq_tuned``), most drifted first.
    Memory on a T4 (estimate): two Gemma-2-2b in float16 are 10.5 GB; keep ``n_ctx`` at 128 and a
    few hundred texts.
    """
    if base.cfg.d_model != tuned.cfg.d_model or base.cfg.n_layers != tuned.cfg.n_layers:
        raise ValueError("base and tuned must share the architecture (d_model and n_layers); "
                         "load the fine-tuned weights with the base model's loader.")
    rows = texts_to_rows(base, texts, n_ctx)
    fit = pd.concat([sae_fit(m, {layer: sae}, rows, loss_rows).assign(model=name)
                     for name, m in (("base", base), ("tuned", tuned))], ignore_index=True)
    a = latent_activations(base, sae, rows, layer)
    b = latent_activations(tuned, sae, rows, layer)
    fa, fb = (a > 0).float().mean(0).numpy(), (b > 0).float().mean(0).numpy()
    corr = column_correlation(a, b)
    drift = pd.DataFrame({"latent": np.arange(len(corr)), "corr": corr, "drift": 1 - corr,
                          "freq_base": fa, "freq_tuned": fb})
    drift = drift[(fa > 0) | (fb > 0)]
    return fit, drift.sort_values("drift", ascending=False).reset_index(drop=True)
