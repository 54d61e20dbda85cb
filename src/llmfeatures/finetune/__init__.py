"""Chapter 7: fine-tuning drift.  How the organism's features move when it is fine-tuned, whether
their explanations survive, and why tuning the early layers matters for in-context learning.

- :mod:`~llmfeatures.finetune.runs`: :class:`FinetuneConfig` (presets per scale), the cached runs
  (full / early / late on the shifted world, early / late on a few-shot family);
- :mod:`~llmfeatures.finetune.analysis`: behaviour, SAE fit and loss recovered, Hungarian matching,
  per-feature drift, the planted test, explanations re-validated;
- :mod:`~llmfeatures.finetune.pipeline`: :func:`chapter_results`, everything above, cached;
- :mod:`~llmfeatures.finetune.exercises`: the notebook's check functions.

Layer ``L`` is ``blocks.L.hook_resid_post``; the embeddings are ``blocks.0.hook_resid_pre``.
"""

from llmfeatures.finetune.analysis import (
    behaviour,
    column_correlation,
    drift_test,
    drift_tests_by_layer,
    explanations_hold,
    feature_drift,
    finetune_sae,
    loss_recovered,
    match_decoders,
    matching_summary,
    sae_fit,
)
from llmfeatures.finetune.pipeline import base_saes, chapter_results, tuned_saes
from llmfeatures.finetune.runs import (
    FINETUNE_PRESETS,
    RUNS,
    FinetuneConfig,
    finetune,
    finetune_config,
    finetune_dir,
    finetuned_model,
    freeze_for,
    icl_documents,
    tuned_blocks,
)

__all__ = [
    "FINETUNE_PRESETS", "RUNS", "FinetuneConfig", "base_saes", "behaviour", "chapter_results",
    "column_correlation", "drift_test", "drift_tests_by_layer", "explanations_hold", "feature_drift", "finetune",
    "finetune_config", "finetune_dir", "finetune_sae", "finetuned_model", "freeze_for",
    "icl_documents", "loss_recovered", "match_decoders", "matching_summary", "sae_fit",
    "tuned_blocks", "tuned_saes",
]
