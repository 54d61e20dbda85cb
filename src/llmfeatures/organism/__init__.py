"""The embedded model organism: a generated world with planted structure, its corpus and tasks.

:func:`build_world` gives the seeded :class:`World` (facts, relations, lexicon, documents per split,
evaluation sets, few-shot prompts).  The tokenizer, trained model and SAEs live in sibling modules.
"""

from llmfeatures.organism.world import WORLD_PRESETS, World, WorldConfig, build_world

__all__ = ["WORLD_PRESETS", "World", "WorldConfig", "build_world"]
