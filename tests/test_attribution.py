"""Attribution (chapter 1): captum methods on a hand-set model where every score is known, the
completeness and randomisation checks, the planted-cause ranking on the ci organism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from llmfeatures.attribution import (
    attribute,
    fact_prompts,
    feature_target,
    logit_target,
    planted_rank_table,
    randomisation_test,
    randomised_model,
)
from tests.planted_models import planted_model


def _exact_logit1_scores(tokens: torch.Tensor, model) -> np.ndarray:
    """logit_1 = e_last[0] + mean_j e_j[0]: each token's share, exactly (the function is linear)."""
    e0 = model.W_E[tokens[0], 0].detach().numpy()
    want = e0 / len(e0)
    want[-1] += e0[-1]
    return want


@pytest.mark.parametrize("method", ["integrated_gradients", "grad_x_input"])
def test_gradient_methods_recover_the_planted_scores(method) -> None:
    m = planted_model()
    toks = torch.tensor([[0, 3, 7, 2, 5]])
    a = attribute(m, toks, logit_target([1]), method, n_steps=16)
    np.testing.assert_allclose(a.scores, _exact_logit1_scores(toks, m), atol=1e-5)
    assert a.output == pytest.approx(5 + (3 + 7 + 2 + 5) / 5, abs=1e-5)
    if method == "integrated_gradients":
        assert a.baseline_output == pytest.approx(0.0, abs=1e-6)
        assert a.completeness_gap < 1e-5


def test_occlusion_and_a_nonlinear_target() -> None:
    m = planted_model()
    toks = torch.tensor([[0, 3, 7, 2, 5]])
    occ = attribute(m, toks, logit_target([1]), "occlusion")
    np.testing.assert_allclose(occ.scores, _exact_logit1_scores(toks, m), atol=1e-5)
    # neuron 0 = relu(e_last[1]) = 8 - 5: only the last token matters, and IG is complete
    ig = attribute(m, toks, feature_target(0, 0), "integrated_gradients", n_steps=32)
    np.testing.assert_allclose(ig.scores, [0, 0, 0, 0, 3.0], atol=1e-4)
    assert ig.completeness_gap < 1e-3


def test_attribute_rejects_bad_input() -> None:
    m = planted_model()
    with pytest.raises(ValueError, match="method must be"):
        attribute(m, torch.tensor([[0, 1]]), logit_target([1]), "saliency")
    with pytest.raises(ValueError, match="one prompt"):
        attribute(m, torch.tensor([[0, 1], [0, 2]]), logit_target([1, 1]))


def test_randomised_model_changes_every_weight() -> None:
    m = planted_model()
    r = randomised_model(m, seed=1)
    assert not torch.equal(r.W_E, m.W_E) and torch.equal(m.W_E[1], torch.tensor([1.0, 7, 0, 0]))


@pytest.mark.slow
def test_attribution_on_the_ci_organism() -> None:
    from llmfeatures.loaders import load_model, load_world

    torch.set_num_threads(1)
    model, world = load_model("organism"), load_world()
    prompts = fact_prompts(world, 12, seed=0)
    tab = planted_rank_table(model, prompts, n_steps=32)
    ig = tab[tab.method == "integrated_gradients"]
    assert ig.completeness_gap.max() < 0.05
    assert ig.top_is_cause.mean() > 0.5, "IG must find the subject of most ci fact prompts"
    rho = randomisation_test(model, prompts.head(6), n_steps=16).spearman
    assert rho.mean() < 0.9
    with pytest.raises(ValueError, match="lacks columns"):
        planted_rank_table(model, pd.DataFrame({"prompt": ["x"]}))
