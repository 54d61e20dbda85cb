"""Chapter 7 (fine-tuning drift): loss recovered on planted "SAEs", Hungarian matching of a
permuted copy, frozen layers bit-identical after partial fine-tuning, the drift statistics, the
exercise checks, the ci organism's runs and the Colab path on a stand-in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from llmfeatures.finetune import (
    FinetuneConfig,
    column_correlation,
    drift_test,
    drift_tests_by_layer,
    finetune,
    finetune_sae,
    freeze_for,
    loss_recovered,
    match_decoders,
    matching_summary,
    tuned_blocks,
)
from llmfeatures.finetune import exercises as ex
from tests.conftest import gpt2_stand_in


def tiny_model(n_layers: int = 4, seed: int = 0):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=n_layers, d_model=16, n_heads=2, d_head=8, d_mlp=32,
                                  n_ctx=16, d_vocab=50, act_fn="gelu", normalization_type="LN",
                                  seed=seed)
    return HookedTransformer(cfg).eval()


def planted_rows(n: int = 48, seed: int = 0) -> torch.Tensor:
    """Rows whose next token is the current one plus one (a learnable rule)."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, 34, (n, 1), generator=g)
    return start + torch.arange(16)


class Scaled(torch.nn.Module):
    """``factor * x`` on the first ``keep`` dimensions, zero on the others."""

    def __init__(self, factor: float, keep: int | None = None):
        super().__init__()
        self.factor, self.keep = factor, keep

    def forward(self, x):
        out = self.factor * x
        if self.keep is not None:
            out[..., self.keep:] = 0
        return out


# ------------------------------------------------------------------------------ loss recovered
def test_loss_recovered_is_one_for_identity_and_zero_for_zero() -> None:
    model, rows = tiny_model(), planted_rows(8)
    for layer in range(model.cfg.n_layers):
        ident = loss_recovered(model, torch.nn.Identity(), rows, layer)
        zero = loss_recovered(model, Scaled(0.0), rows, layer)
        assert ident["recovered"] == pytest.approx(1.0, abs=1e-6)
        assert zero["recovered"] == pytest.approx(0.0, abs=1e-6)
        assert ident["spliced"] == pytest.approx(ident["clean"], abs=1e-6)
        assert zero["spliced"] == pytest.approx(zero["zero"], abs=1e-6)
        half = loss_recovered(model, Scaled(1.0, keep=8), rows, layer)["recovered"]
        assert half != pytest.approx(1.0, abs=1e-3)  # a partial reconstruction loses something


def test_loss_recovered_on_an_organism_sae() -> None:
    from llmfeatures.loaders import load_model, load_sae, load_world
    from llmfeatures.organism.train import pack_documents

    model = load_model("organism")
    sae = load_sae("organism", 0, model=model)
    rows = pack_documents(load_world().texts("val")[:40], model.tokenizer, model.cfg.n_ctx)
    r = loss_recovered(model, sae, rows, 0)
    assert 0.5 < r["recovered"] <= 1.0 + 1e-6, r
    assert r["clean"] < r["spliced"] < r["zero"]


def test_loss_recovered_shares_clean_and_zero_losses_between_saes() -> None:
    model, rows = tiny_model(), planted_rows(8)
    passes = []
    model.blocks[0].hook_resid_pre.add_hook(lambda act, hook: passes.append(1), is_permanent=True)
    memo: dict = {}
    first = loss_recovered(model, Scaled(1.0, keep=8), rows, 1, batch_size=8, losses=memo)
    assert len(passes) == 3 and set(memo) == {"clean", ("zero", 1)}  # clean, zero, spliced
    second = loss_recovered(model, Scaled(0.5), rows, 1, batch_size=8, losses=memo)
    assert len(passes) == 4  # only the spliced pass is new
    fresh = loss_recovered(model, Scaled(0.5), rows, 1, batch_size=8)
    assert second == pytest.approx(fresh) and second["clean"] == first["clean"]
    assert second["recovered"] != pytest.approx(first["recovered"])


def test_residual_streams_and_sparse_sae_metrics_match_the_per_layer_versions() -> None:
    from llmfeatures.loaders import load_model, load_sae, load_world
    from llmfeatures.organism.sae import (
        non_special,
        residual_activations,
        residual_streams,
        sae_metrics,
    )
    from llmfeatures.organism.train import pack_documents

    model = load_model("organism")
    rows = pack_documents(load_world().texts("val")[:30], model.tokenizer, model.cfg.n_ctx)
    layers = list(range(model.cfg.n_layers))
    streams = residual_streams(model, rows, layers[::-1], batch_size=7)
    assert sorted(streams) == layers
    for L in layers:
        assert torch.equal(streams[L], residual_activations(model, rows, L))
    assert len(streams[0]) == int(non_special(model, rows).sum()) < rows.numel()
    with pytest.raises(ValueError, match="out of range"):
        residual_streams(model, rows, [model.cfg.n_layers])

    sae = load_sae("organism", 0, model=model)
    acts = streams[0]
    m = sae_metrics(sae, acts, batch_size=1000)  # TopK: sparse encode and decode
    with torch.no_grad():
        f = sae.encode(acts)
        fve = 1 - (sae.decode(f) - acts).pow(2).sum() / (acts - acts.mean(0)).pow(2).sum()
    assert m["fve"] == pytest.approx(fve.item(), abs=1e-5)
    assert m["l0"] == pytest.approx((f > 0).sum(1).float().mean().item())
    assert m["dead_frac"] == pytest.approx(1 - (f > 0).any(0).float().mean().item())


# ------------------------------------------------------------------------------ matching
def test_hungarian_recovers_a_permuted_copy_exactly() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(200, 32))
    perm = rng.permutation(200)
    match, cos = match_decoders(w, w[perm] * rng.uniform(0.1, 3, (200, 1)))
    assert np.array_equal(match, np.argsort(perm))
    np.testing.assert_allclose(cos, 1.0, atol=1e-12)
    alive = np.ones(200, bool)
    s = matching_summary(match, cos, 0.7, alive, alive)
    assert s["matched_frac"] == 1.0 and s["gone"] == 0 and s["new"] == 0


def test_matching_counts_gone_and_new_latents() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(30, 64))
    w2 = w.copy()
    w2[:5] = rng.normal(size=(5, 64))  # five latents replaced by unrelated directions
    match, cos = match_decoders(w, w2)
    s = matching_summary(match, cos, 0.7, np.ones(30, bool), np.ones(30, bool))
    assert s["gone"] == 5 and s["new"] == 5
    assert s["matched_frac"] == pytest.approx(25 / 30)
    with pytest.raises(ValueError, match="same d"):
        match_decoders(w, w[:, :10])


# ------------------------------------------------------------------------------ partial tuning
@pytest.mark.parametrize("part", ["early", "late"])
def test_frozen_layers_are_bit_identical_after_partial_finetuning(part: str) -> None:
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = planted_rows(64)
    cfg = FinetuneConfig(n_steps=20, batch_size=8, lr=3e-3)
    finetune(model, rows, rows[:8], part, cfg)
    tuned = set(tuned_blocks(model.cfg.n_layers, part))
    changed = {k for k in before if not torch.equal(before[k], model.state_dict()[k])}
    trained = {k for k, _ in model.named_parameters()
               if k.startswith("blocks.") and int(k.split(".")[1]) in tuned}
    assert changed and changed <= trained, sorted(changed - trained)[:5]
    # the tuned half did move, every parameter outside it is bit-identical
    assert all(p.requires_grad for p in model.parameters())  # the freeze is undone afterwards
    assert tuned == ({0, 1} if part == "early" else {2, 3})


def test_full_finetuning_learns_the_planted_rule_and_bad_parts_are_refused() -> None:
    from llmfeatures.organism.train import evaluate_loss

    model, rows = tiny_model(), planted_rows(64)
    loss0 = evaluate_loss(model, rows)
    finetune(model, rows, rows[:8], "full", FinetuneConfig(n_steps=60, batch_size=16, lr=5e-3))
    assert evaluate_loss(model, rows) < 0.5 * loss0
    assert len(freeze_for(model, "full")) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="unknown part"):
        tuned_blocks(4, "middle")
    with pytest.raises(ValueError, match="no early/late"):
        tuned_blocks(1, "early")


# ------------------------------------------------------------------------------ drift pieces
def test_column_correlation_and_sae_finetuning() -> None:
    rng = np.random.default_rng(2)
    a = torch.tensor(rng.normal(size=(500, 4)))
    b = torch.stack([a[:, 0], -a[:, 1], torch.tensor(rng.normal(size=500)),
                     torch.zeros(500, dtype=a.dtype)], 1)
    c = column_correlation(a, b)
    assert c[0] == pytest.approx(1) and c[1] == pytest.approx(-1)
    assert abs(c[2]) < 0.15 and np.isnan(c[3])

    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=8, d_sae=32,
                                        metadata=SAEMetadata(hook_name="blocks.0.hook_resid_post")))
    acts = torch.randn(2000, 8) @ torch.randn(8, 8)
    w0 = sae.W_dec.detach().clone()
    err0 = (sae(acts) - acts).pow(2).mean().item()
    new = finetune_sae(sae, acts, steps=200, lr=1e-2, batch=256)
    with torch.no_grad():
        assert (new(acts) - acts).pow(2).mean().item() < 0.5 * err0
    assert torch.equal(sae.W_dec, w0)  # the base SAE is left untouched
    torch.testing.assert_close(new.W_dec.norm(dim=1), torch.ones(32))


def test_drift_test_sees_a_planted_difference_and_not_a_null() -> None:
    rng = np.random.default_rng(3)
    shift = pd.DataFrame({"group": "shift", "drift": rng.uniform(0.3, 1.0, 40)})
    still = pd.DataFrame({"group": "untouched", "drift": rng.uniform(0.0, 0.5, 60)})
    res = drift_test(pd.concat([shift, still]))
    assert res["p"] < 1e-6 and res["effect"] > 0.8
    null = pd.DataFrame({"group": ["shift", "untouched"] * 50, "drift": rng.uniform(size=100)})
    assert drift_test(null)["p"] > 0.01
    with pytest.raises(ValueError, match="two latents per group"):
        drift_test(shift)


def test_drift_tests_by_layer_count_only_latents_with_a_drift() -> None:
    rng = np.random.default_rng(4)
    ok = pd.DataFrame({"layer": 0, "group": ["shift"] * 20 + ["untouched"] * 20,
                       "drift": np.r_[rng.uniform(0.5, 1, 20), rng.uniform(0, 0.4, 20)]})
    # layer 1: four untouched latents, three of them silent on the correlation tokens (NaN)
    sparse = pd.DataFrame({"layer": 1, "group": ["shift"] * 9 + ["untouched"] * 4,
                           "drift": np.r_[rng.uniform(size=9), [0.1, np.nan, np.nan, np.nan]]})
    res = drift_tests_by_layer(pd.concat([ok, sparse]))
    assert res["layer"].tolist() == [0]
    assert res.loc[0, "n_untouched"] == 20 and res.loc[0, "p"] < 1e-4


# ------------------------------------------------------------------------------ exercises
def test_exercise_checks_accept_the_solutions_and_reject_wrong_answers() -> None:
    from scipy.optimize import linear_sum_assignment

    ex.check_loss_recovered(lambda m, s, r, L: loss_recovered(m, s, r, L)["recovered"])
    with pytest.raises(AssertionError):
        ex.check_loss_recovered(lambda m, s, r, L: 1 - loss_recovered(m, s, r, L)["recovered"])

    def hungarian(a, b):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        rows, cols = linear_sum_assignment(a @ b.T, maximize=True)
        return cols[np.argsort(rows)]

    def greedy(a, b):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        sim, out = a @ b.T, []
        for row in sim:
            row = row.copy()
            row[out] = -np.inf
            out.append(int(row.argmax()))
        return np.array(out)

    ex.check_hungarian(hungarian)
    with pytest.raises(AssertionError):
        ex.check_hungarian(greedy)
    with pytest.raises(AssertionError):
        ex.check_hungarian(lambda a, b: np.arange(len(a)))

    def surviving(before, after, partner):
        ok = (partner >= 0) & (after[np.clip(partner, 0, None)] == before)
        return ok.mean()

    ex.check_surviving(surviving)
    with pytest.raises(AssertionError):
        ex.check_surviving(lambda b, a, p: (a[p] == b).mean())


# ------------------------------------------------------------------------------ ci organism
def test_ci_runs_and_chapter_results() -> None:
    from llmfeatures.finetune import chapter_results, finetuned_model
    from llmfeatures.loaders import load_model

    base = load_model("organism")
    late, history = finetuned_model("late")
    half = base.cfg.n_layers // 2
    b, t = base.state_dict(), late.state_dict()
    for k in b:
        frozen = not k.startswith("blocks.") or int(k.split(".")[1]) < half
        if frozen:
            assert torch.equal(b[k], t[k]), k
    assert history["val_loss"][-1] < history["val_loss"][0]

    res = chapter_results()
    from llmfeatures.finetune import RUNS, finetune_dir

    assert {*RUNS, "saes", "results"} <= set(finetune_dir().manifest["stages"])  # all recorded
    beh = res["behaviour"]
    assert beh.loc["full", "swapped_new"] > beh.loc["base", "swapped_new"]
    assert beh.loc["full", "recipe_loss"] < beh.loc["base", "recipe_loss"]
    fit = res["sae_fit"]
    assert ((fit["loss_recovered"] > 0) & (fit["loss_recovered"] <= 1 + 1e-6)).all()
    assert {"shift", "untouched"} <= set(res["drift"]["group"])
    assert 0 <= res["drift_test"]["drift"]["p"] <= 1
    assert set(res["icl_cd"]["model"]) == {"base", "icl_early", "icl_late"}
    phases = res["phases"].set_index("phase")
    assert {"runs", "tuned_saes", "sae_fit", "feature_stats", "drift", "icl"} <= set(phases.index)
    assert (phases["wall_s"] >= 0).all() and phases["wall_s"].sum() <= res["time_s"]


# ------------------------------------------------------------------------------ Colab path
def test_compare_pair_on_gpt2_stand_ins(no_network) -> None:
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from llmfeatures.finetune.colab import compare_pair
    from llmfeatures.organism.tokenizer import train_tokenizer

    texts = [f"the {a} sat on the {b} while the {c} ran" for a in ("cat", "dog", "fox")
             for b in ("mat", "log", "rug") for c in ("boy", "girl")] * 3
    tok = train_tokenizer(texts, vocab_size=300)
    base = gpt2_stand_in(tok, seed=0)
    same = gpt2_stand_in(tok, seed=0)
    other = gpt2_stand_in(tok, seed=1)
    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=32, d_sae=64,
                                        metadata=SAEMetadata(hook_name="blocks.1.hook_resid_post")))
    fit, drift = compare_pair(base, same, sae, 1, texts, n_ctx=32)
    assert set(fit["model"]) == {"base", "tuned"}
    np.testing.assert_allclose(drift["corr"].dropna(), 1.0, atol=1e-5)  # same weights: no drift
    _, drift2 = compare_pair(base, other, sae, 1, texts, n_ctx=32)
    assert drift2["drift"].median() > 0.05
