"""Chapter 6: concept encoding and decoding in in-context learning (Han et al., 2024).

Modules: :mod:`~llmfeatures.icl.tasks` (the sparse-regression mixture),
:mod:`~llmfeatures.icl.baselines` (exact reference predictors), :mod:`~llmfeatures.icl.model`
(the HookedTransformer on real-valued tokens), :mod:`~llmfeatures.icl.train` (training with
checkpoints and cached results), :mod:`~llmfeatures.icl.decodability` (Concept Decodability),
:mod:`~llmfeatures.icl.patching` (the causal check), :mod:`~llmfeatures.icl.lm` (the
language-model half: shared-input task families, CD beside its input-only baseline),
:mod:`~llmfeatures.icl.emergence` (accuracy and CD over the organism's training checkpoints),
:mod:`~llmfeatures.icl.plots` and :mod:`~llmfeatures.icl.exercises`.
"""
