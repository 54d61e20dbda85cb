"""Chapter 4: lobes, the functional modularity of SAE features (Li et al., 2024, middle scale).

Features that fire in the same blocks of text form *lobes*.  :mod:`~llmfeatures.lobes.affinity`
turns the feature engine's block co-occurrence counts into five affinities and holds the
statistics (spectral clustering, AMI against a permutation null, logistic regression from decoder
direction to lobe, the winning lobe of a block); :mod:`~llmfeatures.lobes.analysis` runs them on
the organism (or a real model) with presets per scale; :mod:`~llmfeatures.lobes.plots` draws the
chapter's figures and :mod:`~llmfeatures.lobes.exercises` checks the reader's code.

Layer ``L`` is ``blocks.L.hook_resid_post``.
"""

from llmfeatures.lobes.affinity import (
    AFFINITIES,
    AFFINITY_LABELS,
    NullTest,
    affinities,
    affinity,
    ami_test,
    angular_similarity,
    contingency,
    domain_lobe_table,
    dominant_domain,
    lobe_accuracy,
    random_vector_accuracy,
    spectral_lobes,
    winning_lobes,
)
from llmfeatures.lobes.analysis import (
    GEOMETRY,
    LOBE_PRESETS,
    LobeConfig,
    LobeResult,
    analyse_lobes,
    block_winners,
    count_blocks,
    decoder_directions,
    domain_table,
    harvest_lobes,
    lobe_config,
    lobe_stats,
    middle_layer,
    sensitivity_grid,
    stats_config,
)

__all__ = [
    "AFFINITIES",
    "AFFINITY_LABELS",
    "GEOMETRY",
    "LOBE_PRESETS",
    "LobeConfig",
    "LobeResult",
    "NullTest",
    "affinities",
    "affinity",
    "ami_test",
    "analyse_lobes",
    "angular_similarity",
    "block_winners",
    "contingency",
    "count_blocks",
    "decoder_directions",
    "domain_lobe_table",
    "domain_table",
    "dominant_domain",
    "harvest_lobes",
    "lobe_accuracy",
    "lobe_config",
    "lobe_stats",
    "middle_layer",
    "random_vector_accuracy",
    "sensitivity_grid",
    "spectral_lobes",
    "stats_config",
    "winning_lobes",
]
