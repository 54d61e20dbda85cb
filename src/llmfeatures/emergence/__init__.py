"""Emergent features (chapter 1): monosemanticity of neurons, SAE latents and random directions
against the organism's planted truth, superposition in numbers, feature visualisation by input
optimisation, and features appearing over training checkpoints (probes, and the final SAE
latents read back through every checkpoint).

Layer ``L`` is ``blocks.L.hook_resid_post``; MLP neurons of layer ``L`` are
``blocks.L.mlp.hook_post``; the embeddings are ``blocks.0.hook_resid_pre`` (layer ``-1``).
"""

from llmfeatures.emergence.monosemantic import (
    RandomDirections,
    concept_spread,
    monosemanticity,
    neuron_concepts,
    random_direction_stats,
    single_token_units,
    top_label_codes,
    top_purity,
    unit_purity,
)
from llmfeatures.emergence.presence import (
    PRESENCE_PRESETS,
    PresenceConfig,
    feature_presence,
    organism_presence,
    presence_onsets,
    skill_onsets,
)
from llmfeatures.emergence.training import (
    SCAN_PRESETS,
    TrainingScanConfig,
    onsets,
    scan_checkpoint,
    training_scan,
)
from llmfeatures.emergence.visualize import (
    CHAPTER_PRESETS,
    ChapterConfig,
    SearchConfig,
    SearchResult,
    concept_enrichment,
    concept_token_ids,
    gcg_step,
    optimise_input,
    score_sequences,
    tradeoff_curve,
)

__all__ = [
    "CHAPTER_PRESETS",
    "ChapterConfig",
    "PRESENCE_PRESETS",
    "PresenceConfig",
    "SCAN_PRESETS",
    "RandomDirections",
    "SearchConfig",
    "SearchResult",
    "TrainingScanConfig",
    "concept_enrichment",
    "concept_spread",
    "concept_token_ids",
    "feature_presence",
    "gcg_step",
    "monosemanticity",
    "neuron_concepts",
    "onsets",
    "optimise_input",
    "organism_presence",
    "presence_onsets",
    "random_direction_stats",
    "scan_checkpoint",
    "score_sequences",
    "single_token_units",
    "skill_onsets",
    "top_label_codes",
    "top_purity",
    "tradeoff_curve",
    "training_scan",
    "unit_purity",
]
