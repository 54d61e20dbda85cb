"""Chapter 3: crystals (parallelograms of related words), their distractors, and LDA.

Layer convention: layer ``L`` is ``blocks.L.hook_resid_post``; ``-1`` is the embeddings.
"""

from llmfeatures.crystals.geometry import (
    DistractorTest,
    first_component,
    length_distractor,
    mean_pairwise_cosine,
    pair_representations,
    parallelism,
    word_representations,
)

__all__ = [
    "DistractorTest",
    "first_component",
    "length_distractor",
    "mean_pairwise_cosine",
    "pair_representations",
    "parallelism",
    "word_representations",
]
