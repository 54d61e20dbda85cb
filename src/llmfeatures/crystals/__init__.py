"""Chapter 3: crystals (parallelograms of related words), their distractors, and LDA.

- :mod:`llmfeatures.crystals.geometry`: word representations (the word alone), difference vectors,
  parallelism against shuffled pairs, PC1 and the word-length distractor;
- :mod:`llmfeatures.crystals.context`: word representations averaged over corpus contexts that do
  not state the relation;
- :mod:`llmfeatures.crystals.lda`: LDA swept over its number of components, always scored by
  silhouette on held-out pairs, with the permuted-label null;
- :mod:`llmfeatures.crystals.quads`: parallelograms and trapezoids;
- :mod:`llmfeatures.crystals.search`: the crystal search among SAE decoder vectors (each word's
  decoded code, or its strongest latent's decoder vector), without relation labels, scored
  against planted pairs beside a shuffled-decoder control and random quadrilaterals;
- :mod:`llmfeatures.crystals.analysis`: everything on the organism (:func:`organism_crystals`);
- :mod:`llmfeatures.crystals.gemma`: the paper-scale path (Gemma-2-2b, Gemma Scope);
- :mod:`llmfeatures.crystals.plots` and :mod:`llmfeatures.crystals.exercises`.

Layer convention: layer ``L`` is ``blocks.L.hook_resid_post``; ``-1`` is the embeddings
(``blocks.0.hook_resid_pre``).
"""

from llmfeatures.crystals.analysis import (
    CrystalConfig,
    Crystals,
    crystal_config,
    distractor_table,
    leading_components,
    organism_crystals,
    token_counts,
)
from llmfeatures.crystals.context import (
    ContextRepresentations,
    context_representations,
    pair_partners,
)
from llmfeatures.crystals.geometry import (
    DistractorTest,
    first_component,
    length_distractor,
    mean_pairwise_cosine,
    pair_representations,
    parallelism,
    word_representations,
)
from llmfeatures.crystals.lda import (
    SHRINKAGE_GRID,
    LDASweep,
    choose_shrinkage,
    heldout_split,
    lda_projection,
    lda_sweep,
)
from llmfeatures.crystals.quads import (
    MIN_COSINE,
    MIN_RATIO,
    Quadrilateral,
    quadrilateral,
    shape_table,
)
from llmfeatures.crystals.search import (
    CrystalSearch,
    crystal_search,
    decoded_words,
    local_edges,
    planted_quadrilaterals,
    planted_quads,
    quad_scores,
    score_search,
    search_against_control,
    shuffled_decoder,
    strongest_features,
    word_codes,
    word_features,
)

__all__ = [
    "MIN_COSINE", "MIN_RATIO", "SHRINKAGE_GRID", "ContextRepresentations", "CrystalConfig", "CrystalSearch",
    "Crystals", "DistractorTest", "LDASweep", "Quadrilateral", "context_representations",
    "choose_shrinkage", "crystal_config", "crystal_search", "decoded_words", "distractor_table", "first_component", "heldout_split",
    "lda_projection", "lda_sweep", "leading_components", "length_distractor", "local_edges", "mean_pairwise_cosine",
    "organism_crystals", "pair_partners", "pair_representations", "parallelism",
    "planted_quadrilaterals", "planted_quads", "quad_scores", "quadrilateral", "score_search", "search_against_control",
    "shape_table", "shuffled_decoder", "strongest_features", "token_counts", "word_codes", "word_features",
    "word_representations",
]
