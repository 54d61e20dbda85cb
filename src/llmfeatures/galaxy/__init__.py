"""Chapter 5, galaxies: the large-scale shape of the SAE point cloud.

- :mod:`llmfeatures.galaxy.core`: spectra, power-law fits, participation ratio, k-NN entropy;
- :mod:`llmfeatures.galaxy.analysis`: every layer of the organism (or of any decoders);
- :mod:`llmfeatures.galaxy.gemma`: the paper-scale path, Gemma Scope decoders read from the Hub;
- :mod:`llmfeatures.galaxy.plots` and :mod:`llmfeatures.galaxy.exercises`: the chapter's figures
  and exercise checks.

Layer ``L`` is the SAE on ``blocks.L.hook_resid_post``.
"""

from llmfeatures.galaxy.analysis import (
    GEMMA_CONFIG,
    PAPER_ALPHA,
    PAPER_GAUSSIAN_SLOPE,
    PAPER_NEGENTROPY,
    PAPER_RANKS,
    Galaxy,
    GalaxyConfig,
    galaxy_config,
    galaxy_layers,
    organism_galaxy,
)
from llmfeatures.galaxy.core import (
    ClusteringEntropy,
    PowerLawFit,
    clustering_entropy,
    entropy,
    fit_power_law,
    gaussian_entropy,
    gaussian_points,
    knn_entropy,
    knn_entropy_bias,
    participation_ratio,
    pca_cloud,
    rank_range,
    reference_knn_entropy,
    shuffle_columns,
    spectrum,
    spectrum_from_cov,
)

__all__ = [
    "GEMMA_CONFIG", "PAPER_ALPHA", "PAPER_GAUSSIAN_SLOPE", "PAPER_NEGENTROPY", "PAPER_RANKS", "ClusteringEntropy", "Galaxy",
    "GalaxyConfig", "PowerLawFit", "clustering_entropy", "entropy", "fit_power_law",
    "galaxy_config", "galaxy_layers", "gaussian_entropy", "gaussian_points", "knn_entropy",
    "knn_entropy_bias", "organism_galaxy", "participation_ratio", "pca_cloud", "rank_range",
    "reference_knn_entropy", "shuffle_columns", "spectrum", "spectrum_from_cov",
]
