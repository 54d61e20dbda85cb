"""Feature attribution over input embeddings, with the sanity checks that validate it (chapter 1).

Every method scores each input token of a prompt for its contribution to one scalar output of a
``HookedTransformer``: the logit of a target token at the last position, or an SAE latent /
MLP neuron read at the last position (see :func:`logit_target` and :func:`feature_target`).
The input is the token embedding (``hook_embed``); positional embeddings stay fixed, so the
baseline of integrated gradients is "no token content" (zero token embedding at every position).

- :func:`attribute`: captum's ``IntegratedGradients``, ``InputXGradient`` (gradient x input) and
  ``Occlusion``; token scores ``[batch, pos]`` and, for IG, the completeness gap;
- :func:`randomised_model`: the model-randomisation sanity test's re-initialised copy;
- :func:`planted_positions` / :func:`planted_rank_table`: how often a method ranks the planted
  cause (the subject of a fact prompt, the named person of a pronoun prompt) first.
"""

from llmfeatures.attribution.core import (
    METHODS,
    Attribution,
    attribute,
    fact_prompts,
    feature_target,
    logit_diff_target,
    logit_target,
    planted_positions,
    planted_rank_table,
    pronoun_prompts,
    randomisation_test,
    randomised_model,
)

__all__ = [
    "METHODS",
    "Attribution",
    "attribute",
    "fact_prompts",
    "feature_target",
    "logit_diff_target",
    "logit_target",
    "planted_positions",
    "planted_rank_table",
    "pronoun_prompts",
    "randomisation_test",
    "randomised_model",
]
