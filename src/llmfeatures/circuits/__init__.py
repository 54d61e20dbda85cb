"""Chapter 2: attention and feed-forward hidden states, measured against the organism's truth.

Modules: :mod:`~llmfeatures.circuits.tasks` (planted tasks with right answers: facts, pronouns,
IOI for real models), :mod:`~llmfeatures.circuits.heads` (attention heads scored as feature
detectors against a random-key control), :mod:`~llmfeatures.circuits.lens` (the logit lens and
direct logit attribution), :mod:`~llmfeatures.circuits.ablation` (zero, mean and resample
ablation; activation patching with TransformerLens's helpers), :mod:`~llmfeatures.circuits.plots`
and :mod:`~llmfeatures.circuits.exercises`.

Layer ``L`` is ``blocks.L.hook_resid_post``; the stream before block 0 is
``blocks.0.hook_resid_pre`` (``hook_embed`` + ``hook_pos_embed``).
"""

from llmfeatures.circuits.lens import prepare_model

__all__ = ["prepare_model"]
