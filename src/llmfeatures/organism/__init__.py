"""The embedded model organism: a generated world with planted structure, its corpus and tasks.

:func:`build_world` gives the seeded :class:`World` (facts, relations, lexicon, documents per split,
evaluation sets, few-shot prompts).  The tokenizer, trained model and SAEs live in sibling modules;
the pipeline's public names (:func:`build_organism`, :func:`organism_model`, :func:`organism_sae`,
:func:`organism_checkpoints`, :func:`organism_info`, :func:`middle_layer`, :data:`ORGANISM_PRESETS`,
:class:`OrganismConfig`) are re-exported here but imported only on first use, because the pipeline
pulls in torch, TransformerLens and sae-lens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmfeatures.organism.world import WORLD_PRESETS, World, WorldConfig, build_world

if TYPE_CHECKING:
    from llmfeatures.organism.pipeline import (
        ORGANISM_PRESETS,
        OrganismConfig,
        build_organism,
        middle_layer,
        organism_checkpoints,
        organism_info,
        organism_model,
        organism_sae,
    )

_PIPELINE_NAMES = (
    "ORGANISM_PRESETS",
    "OrganismConfig",
    "build_organism",
    "middle_layer",
    "organism_checkpoints",
    "organism_info",
    "organism_model",
    "organism_sae",
)


def __getattr__(name: str) -> Any:
    """Import the pipeline (heavy) only when one of its names is first asked for."""
    if name in _PIPELINE_NAMES:
        from llmfeatures.organism import pipeline

        value = getattr(pipeline, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ORGANISM_PRESETS",
    "WORLD_PRESETS",
    "OrganismConfig",
    "World",
    "WorldConfig",
    "build_organism",
    "build_world",
    "middle_layer",
    "organism_checkpoints",
    "organism_info",
    "organism_model",
    "organism_sae",
]
