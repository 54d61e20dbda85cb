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
    frac = tab.pivot(index="layer", columns="family", values="frac_pure")
    assert (frac["sae"] > frac["neuron"] + 0.1).all(), frac  # among multi-token units
    assert (tab.n_multi_token <= tab.n_units).all()
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


# --------------------------------------------------------------------------------------------
# presence of the final features across checkpoints
# --------------------------------------------------------------------------------------------
def _planted_sae():
    """Latent 0 = relu(x[1] - 4): fires on tokens a, b, c of the planted model (e_k[1] = 8 - k);
    latent 1 = relu(x[0] - 4) mixes the token (e_k[0] = k) with the attended prefix mean."""
    from sae_lens import StandardSAE, StandardSAEConfig

    sae = StandardSAE(StandardSAEConfig(d_in=4, d_sae=2, apply_b_dec_to_input=False))
    with torch.no_grad():
        for p in sae.parameters():
            p.zero_()
        sae.W_enc[1, 0] = sae.W_enc[0, 1] = 1.0
        sae.b_enc[:] = -4.0
        sae.W_dec[0, 1] = sae.W_dec[1, 0] = 1.0
    return sae


def _permuted(model, perm):
    """The same function in a permuted residual basis (what training may do to a basis)."""
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        m.W_E[:] = model.W_E[:, perm]
        m.W_pos[:] = model.W_pos[:, perm]
        for name in ("W_Q", "W_K", "W_V"):
            getattr(m.blocks[0].attn, name)[:] = getattr(model.blocks[0].attn, name)[:, perm]
        m.blocks[0].attn.W_O[:] = model.blocks[0].attn.W_O[..., perm]
        m.blocks[0].attn.b_O[:] = model.blocks[0].attn.b_O[perm]
        m.blocks[0].mlp.W_in[:] = model.blocks[0].mlp.W_in[perm]
        m.blocks[0].mlp.W_out[:] = model.blocks[0].mlp.W_out[:, perm]
        m.blocks[0].mlp.b_out[:] = model.blocks[0].mlp.b_out[perm]
        m.W_U[:] = model.W_U[perm]
    return m


def test_presence_is_basis_free_and_drops_when_the_information_is_gone() -> None:
    import copy

    from llmfeatures.emergence.presence import PresenceConfig, feature_presence

    final = planted_model()
    rows = torch.cat([torch.zeros(64, 1, dtype=torch.long),
                      torch.randint(1, 8, (64, 7), generator=torch.Generator().manual_seed(0))], 1)
    x = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7]])
    rotated = _permuted(final, [2, 0, 3, 1])
    assert torch.allclose(rotated(x), final(x), atol=1e-5), "the permuted model is the same model"
    blind = copy.deepcopy(final)  # token identity scrambled: e_k of another token
    with torch.no_grad():
        blind.W_E[1:] = final.W_E[[5, 7, 1, 6, 2, 4, 3]]
    models = {0: blind, 1: rotated, 2: final}
    table = feature_presence([0, 1, 2], models.__getitem__, final, _planted_sae(), rows, 0,
                             PresenceConfig(n_docs=4, min_active=5, alpha=1e-3), progress=False)
    p = table.pivot(index="unit", columns="step", values="presence")
    assert list(p.index) == [0, 1] and (table.n_active >= 5).all()
    assert np.allclose(p[1], p[2], atol=1e-6), "a rotated basis carries the same features"
    assert (p[2] > 0.8).all(), p
    assert (p[0] < p[2] - 0.3).all(), "scrambled tokens hide the token-level latents"


def test_presence_onsets_and_validation() -> None:
    import pandas as pd

    from llmfeatures.emergence.presence import (
        PresenceConfig,
        feature_presence,
        presence_onsets,
        skill_onsets,
    )

    steps = [0, 10, 20, 40, 80]
    table = pd.DataFrame({"step": steps * 3, "unit": np.repeat([0, 1, 2], 5),
                          "presence": [.1, .1, .7, .8, .8,   # jumps between 10 and 20
                                       .6, .6, .6, .6, .62,  # present from the start
                                       .1, .2, .3, .4, .5]})  # gradual: half-way at 40
    on = presence_onsets(table).set_index("unit")
    assert on.loc[0, "onset"] == 20 and on.loc[0, "step_before"] == 10
    assert np.isnan(on.loc[1, "onset"]) and on.loc[1, "gain"] == pytest.approx(0.02)
    assert on.loc[2, "onset"] == 40
    tasks = pd.DataFrame({"step": steps * 2, "task": ["a"] * 5 + ["b"] * 5,
                          "accuracy": [0, 0, 0, 1, 1, .5, .5, .5, .5, .5]})
    s = skill_onsets(tasks)
    assert s["a"] == 40 and np.isnan(s["b"])
    with pytest.raises(ValueError, match="frac"):
        PresenceConfig(frac=1.5)
    with pytest.raises(ValueError, match="rows must be"):
        feature_presence([0], lambda s: None, planted_model(), _planted_sae(),
                         torch.zeros(3, 4, dtype=torch.long), 0)
    rows = torch.cat([torch.zeros(8, 1, dtype=torch.long), torch.full((8, 3), 7)], 1)
    with pytest.raises(ValueError, match="min_active"):  # token g never fires either latent
        feature_presence([0], lambda s: planted_model(), planted_model(), _planted_sae(), rows, 0)


@pytest.mark.slow
def test_presence_on_the_ci_organism() -> None:
    """The final model's latents are readable from its own last checkpoint far better than from
    the random initialisation (the null)."""
    from llmfeatures.emergence.presence import PresenceConfig, feature_presence, presence_onsets
    from llmfeatures.loaders import load_model, load_sae, load_world
    from llmfeatures.organism import middle_layer, organism_checkpoints
    from llmfeatures.organism.train import pack_documents

    torch.set_num_threads(1)
    final, layer = load_model("organism"), middle_layer()
    steps = organism_checkpoints()
    rows = pack_documents(load_world().texts("val")[:60], final.tokenizer, final.cfg.n_ctx)
    table = feature_presence([steps[0], steps[-1]],
                             lambda s: load_model("organism", checkpoint=s), final,
                             load_sae("organism", layer, model=final), rows, layer,
                             PresenceConfig(min_active=10), progress=False)
    med = table.groupby("step")["presence"].median()
    assert med[steps[-1]] > med[steps[0]] + 0.2, med
    on = presence_onsets(table)
    assert (on.onset.dropna() == steps[-1]).all() and on.onset.notna().mean() > 0.5


@pytest.mark.usefixtures("no_network")
def test_colab_presence_on_pythia_stand_ins() -> None:
    """The Colab path for Pythia: checkpoints (here two GPT-NeoX stand-ins of Pythia's
    architecture, converted by the real loader) read against the final model's SAE."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from llmfeatures.emergence.presence import feature_presence
    from llmfeatures.loaders import load_model
    from llmfeatures.organism.tokenizer import train_tokenizer
    from llmfeatures.organism.train import pack_documents

    texts = [f"the {a} saw the {b} near the {c}" for a in ("cat", "dog", "boy", "girl")
             for b in ("tree", "park", "shop") for c in ("river", "road")]
    tok = train_tokenizer(texts, vocab_size=300)
    cfg = GPTNeoXConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, vocab_size=len(tok), max_position_embeddings=64,
                        rotary_pct=0.25)
    ckpts = {}
    for step in (0, 100):
        torch.manual_seed(step)
        ckpts[step] = load_model("pythia-70m", hf_model=GPTNeoXForCausalLM(cfg).eval(),
                                 tokenizer=tok, device="cpu")
    torch.manual_seed(5)
    sae = StandardSAE(StandardSAEConfig(d_in=32, d_sae=16, metadata=SAEMetadata(
        hook_name="blocks.1.hook_resid_post")))
    rows = pack_documents(texts * 2, tok, 32)
    table = feature_presence([0, 100], ckpts.__getitem__, ckpts[100], sae, rows, 1,
                             progress=False)
    p = table.pivot(index="unit", columns="step", values="presence")
    assert len(p) > 0 and p.notna().all().all()
    assert p[100].median() > p[0].median(), "the final checkpoint reads its own SAE best"
