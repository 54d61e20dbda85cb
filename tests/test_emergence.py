"""Emergent features (chapter 1): purity against planted labels, the random-direction null, the
token search on a hand-set model whose maximising input is known, exercise checks, the training
scan, all on planted data and on the ci organism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmfeatures.emergence import (
    SearchConfig,
    concept_enrichment,
    gcg_step,
    onsets,
    optimise_input,
    top_purity,
)
from llmfeatures.emergence.exercises import (
    check_grad_x_input,
    check_purity,
    check_swap_candidates,
)
from tests.planted_models import planted_model


def test_top_purity_counts_labelled_examples_only() -> None:
    pur, lab = top_purity(np.array([[1, 1, 1, 0, -1], [2, 0, 1, 3, -1], [-1] * 5]), min_examples=4)
    assert pur[0] == pytest.approx(0.75) and lab[0] == 1
    assert pur[1] == pytest.approx(0.25) and np.isnan(pur[2])


def test_search_finds_the_planted_maximiser() -> None:
    """Neuron 0 = relu(8 - k) for last token k: the maximum, 7, is reached by ending in token 1."""
    m = planted_model()
    r = optimise_input(m, 0, 0, None, SearchConfig(length=3, batch=4, steps=6, top_k=3,
                                                    n_candidates=8, seed=0), progress=False)
    assert r.tokens.shape == (4, 3)
    assert (r.tokens[:, -1] == 1).all() and np.allclose(r.activation, 7.0)
    assert r.history[-1] == pytest.approx(7.0) and len(r.history) == 6
    again = optimise_input(m, 0, 0, None, SearchConfig(length=3, batch=4, steps=6, top_k=3,
                                                        n_candidates=8, seed=0), progress=False)
    assert np.array_equal(r.tokens, again.tokens), "the search is seeded"


def test_one_step_never_lowers_the_objective() -> None:
    m = planted_model()
    full = torch.tensor([[0, 7, 7, 7], [0, 2, 5, 6]])
    allowed = torch.ones(m.cfg.d_vocab, dtype=torch.bool)
    allowed[0] = False
    cfg = SearchConfig(length=3, batch=2, top_k=2, n_candidates=16)
    new, obj = gcg_step(m, full, 0, 0, None, allowed, cfg, torch.Generator().manual_seed(0))
    assert (new[:, 0] == 0).all() and (new[:, 1:] != 0).all(), "BOS stays, BOS is never proposed"
    assert obj[1] >= 2 + 0.1 * 2  # start: last token 6 -> neuron 2, pre-activation 2
    with pytest.raises(ValueError, match="fluency"):
        SearchConfig(fluency=-1)


def test_enrichment_and_onsets() -> None:
    e = concept_enrichment(np.array([[1, 2], [1, 5]]), np.array([1, 2]), n_allowed=8)
    assert e["share"] == 0.75 and e["chance"] == 0.25 and e["enrichment"] == 3.0
    import pandas as pd

    probes = pd.DataFrame({"step": [0, 10, 20, 0, 10, 20], "layer": [0] * 6,
                           "probe": ["a"] * 3 + ["b"] * 3,
                           "accuracy": [0.3, 0.35, 0.9, 0.5, 0.55, 0.6]})
    o = onsets(probes, jump=0.2)
    assert len(o) == 1 and o.iloc[0].step_before == 10 and o.iloc[0].step_after == 20


def test_checks_accept_right_and_reject_wrong_answers() -> None:
    def purity(codes):
        out = []
        for row in codes:
            c = row[row >= 0]
            out.append(np.bincount(c).max() / len(c) if len(c) else np.nan)
        return np.array(out)

    check_purity(purity)
    with pytest.raises(AssertionError, match="no labelled"):
        check_purity(lambda c: np.array([np.bincount(r[r >= 0]).max() / len(r) if (r >= 0).any()
                                         else 0.0 for r in c]))
    with pytest.raises(AssertionError, match="denominator"):
        check_purity(lambda c: np.array([np.bincount(r[r >= 0]).max() / len(r) if (r >= 0).any()
                                         else np.nan for r in c]))

    def gxi(f, x):
        x = x.clone().requires_grad_(True)
        g, = torch.autograd.grad(f(x).sum(), x)
        return (g * x).sum(-1)

    check_grad_x_input(gxi)
    with pytest.raises(AssertionError, match="gradients alone"):
        check_grad_x_input(lambda f, x: gxi(f, x) * 0 + torch.autograd.grad(
            f(x.requires_grad_(True)).sum(), x)[0].sum(-1))
    check_swap_candidates(lambda g, k: g.topk(k, dim=-1).indices)
    with pytest.raises(AssertionError, match="most negative"):
        check_swap_candidates(lambda g, k: (-g).topk(k, dim=-1).indices)


@pytest.mark.slow
def test_monosemanticity_on_the_ci_organism() -> None:
    from llmfeatures.emergence import monosemanticity, random_direction_stats
    from llmfeatures.features import StatsConfig, organism_feature_stats
    from llmfeatures.loaders import load_model

    torch.set_num_threads(1)
    model = load_model("organism")
    stats = organism_feature_stats(config=StatsConfig(neurons=True, cooccurrence=False),
                                   progress=False)
    layers = sorted(stats.sae)
    null = random_direction_stats(model, stats, layers, 64)
    tab = monosemanticity(stats, null, kinds=("domain",))
    assert set(tab.family) == {"sae", "neuron", "random"} and set(tab.layer) == set(layers)
    piv = tab.pivot(index="layer", columns="family", values="mean_purity")
    assert (piv["sae"] > piv["random"]).all(), "SAE latents must beat random directions"
    with pytest.raises(ValueError, match="neurons=True"):
        monosemanticity(organism_feature_stats(config=StatsConfig(cooccurrence=False),
                                               progress=False))


@pytest.mark.slow
def test_training_scan_on_the_ci_organism() -> None:
    from llmfeatures.emergence import training_scan
    from llmfeatures.organism import organism_checkpoints

    torch.set_num_threads(1)
    steps = organism_checkpoints()
    scan = training_scan(steps=[steps[0], steps[-1]], progress=False)
    p = scan["probes"].groupby("step")["accuracy"].mean()
    assert p[steps[-1]] > p[steps[0]], "probes of the trained model beat the initial ones"
    loss = scan["loss"].groupby("step")["loss"].mean()
    assert loss[steps[-1]] < loss[steps[0]]


@pytest.mark.usefixtures("no_network")
def test_colab_calls_on_a_gpt2_stand_in() -> None:
    """The Colab path: search and attribution on a GPT-2 loaded through the real loader."""
    from llmfeatures.attribution import attribute, feature_target, logit_target
    from llmfeatures.organism.tokenizer import train_tokenizer
    from tests.conftest import gpt2_stand_in

    texts = [f"the {a} saw the {b} near the {c}" for a in ("cat", "dog", "boy", "girl")
             for b in ("tree", "park", "shop") for c in ("river", "road")]
    model = gpt2_stand_in(train_tokenizer(texts, vocab_size=300))
    r = optimise_input(model, 1, 3, None, SearchConfig(length=4, batch=2, steps=3),
                       progress=False)
    assert r.tokens.shape == (2, 4) and np.isfinite(r.activation).all()
    assert r.history[-1] >= r.history[0]
    toks = model.to_tokens("the cat saw the tree")
    ig = attribute(model, toks, logit_target([5]), "integrated_gradients", n_steps=32)
    assert ig.completeness_gap < 0.05 and len(ig.scores) == toks.shape[1]
    assert np.isfinite(attribute(model, toks, feature_target(0, 2), "occlusion").scores).all()
